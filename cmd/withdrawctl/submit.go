package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// details collects repeated --detail flags.
type details []withdrawal.AllinpayDetail

func (d *details) String() string { return "" }

// Set parses "account_user_id=100,amount=100,summary=提现" (or external_code=…,
// or is_platform=true).
func (d *details) Set(v string) error {
	var det withdrawal.AllinpayDetail
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want key=value pairs separated by commas", kv)
		}
		switch strings.TrimSpace(k) {
		case "account_user_id":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("account_user_id %q: %w", val, err)
			}
			det.AccountUserID = &n
		case "external_code":
			det.ExternalCode = val
		case "is_platform":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("is_platform %q: %w", val, err)
			}
			det.IsPlatform = b
		case "amount":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("amount %q: want fen, an integer", val)
			}
			det.Amount = n
		case "summary":
			det.Summary = val
		default:
			return fmt.Errorf("unknown detail key %q (account_user_id, external_code, is_platform, amount, summary)", k)
		}
	}
	*d = append(*d, det)
	return nil
}

func (c *cli) submit(args []string) error {
	fs := c.flags("submit", "[flags] [--file cmd.json | --file - | --channel … --out-request-no … --amount …]",
		`Validates a withdrawal command locally (the intake's own decoding and validation rules) and
produces it to the commands topic, keyed by out_request_no. An invalid command is not produced:
its reason code is printed and the exit status is 2. The command comes from --file (a JSON file,
"-" for stdin, sent byte for byte) or is built from the flags below.

Examples:
  withdrawctl submit --channel wechatpay_platform --out-request-no 2026112200001 --amount 100 --account-type BASIC
  withdrawctl submit --channel wechatpay_ecommerce --sub-mchid 1900000109 --out-request-no N1 --amount 100
  withdrawctl submit --channel allinpay_shopoint --out-request-no A1 --detail account_user_id=100,amount=100,summary=提现
  withdrawctl submit --file cancel.json      # wechatpay_cancel with payee_info: from a file`)
	brokerList := c.setting(fs, "kafka-brokers")
	topic := c.setting(fs, "commands-topic")
	file := fs.String("file", "", "JSON file with the command (\"-\": standard input); excludes the command flags")
	dryRun := fs.Bool("dry-run", false, "validate and print the command, produce nothing")
	timeout := fs.Duration("timeout", 30*time.Second, "give up producing after this long")
	var cmd withdrawal.Command
	fs.StringVar((*string)(&cmd.Channel), "channel", "", "wechatpay_ecommerce, wechatpay_platform, wechatpay_cancel or allinpay_shopoint")
	fs.StringVar(&cmd.Account, "account", "", "provider account of the configuration (default \"default\")")
	fs.StringVar(&cmd.OutRequestNo, "out-request-no", "", "the idempotency key with channel and account; never reuse one for another withdrawal")
	fs.Int64Var(&cmd.Amount, "amount", 0, "amount in fen (分), an integer; Allinpay: optional, must equal the sum of the details")
	fs.StringVar(&cmd.SubMchID, "sub-mchid", "", "WeChat sub-merchant id (e-commerce, cancel)")
	fs.StringVar(&cmd.AccountType, "account-type", "", "WeChat account_type: BASIC, OPERATION, FEES")
	fs.StringVar(&cmd.Remark, "remark", "", "remark")
	fs.StringVar(&cmd.BankMemo, "bank-memo", "", "bank_memo (WeChat e-commerce, platform)")
	fs.StringVar(&cmd.OutAccountType, "out-account-type", "", "cancel: out_account_type")
	fs.StringVar(&cmd.PayeeType, "payee-type", "", "cancel: payee_type")
	fs.StringVar(&cmd.PayeeMchID, "payee-mchid", "", "cancel: payee_mchid")
	payeeFile := fs.String("payee-info-file", "", "cancel: JSON file with payee_info (keep it out of shell history)")
	var dets details
	fs.Var(&dets, "detail", "Allinpay detail `account_user_id=100,amount=100[,summary=…]` (or external_code=…, is_platform=true); repeatable")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("submit: unexpected arguments %v", pos)
	}

	var value []byte
	fromFlags := cmd.Channel != "" || cmd.OutRequestNo != "" || cmd.Amount != 0 || len(dets) > 0
	switch {
	case *file != "" && fromFlags:
		return errors.New("submit: --file excludes the command flags (--channel, --out-request-no, …)")
	case *file == "-":
		if value, err = io.ReadAll(c.stdin); err != nil {
			return fmt.Errorf("submit: read stdin: %w", err)
		}
	case *file != "":
		if value, err = os.ReadFile(*file); err != nil {
			return fmt.Errorf("submit: %w", err)
		}
	case fromFlags:
		cmd.Details = dets
		if *payeeFile != "" {
			b, err := os.ReadFile(*payeeFile)
			if err != nil {
				return fmt.Errorf("submit: %w", err)
			}
			cmd.PayeeInfo = new(withdrawal.PayeeInfo)
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(cmd.PayeeInfo); err != nil {
				return fmt.Errorf("submit: %s: %w", *payeeFile, err)
			}
		}
		if value, err = json.Marshal(&cmd); err != nil {
			return err
		}
	default:
		fs.Usage()
		return errors.New("submit: give --file or the command flags")
	}
	value = bytes.TrimSpace(value)

	decoded, err := withdrawal.Decode(value)
	var und *withdrawal.Undecodable
	var rej *withdrawal.Rejection
	switch {
	case errors.As(err, &und):
		return &exitError{2, fmt.Errorf("not a command (the intake would dead-letter it): %s", und.Reason)}
	case errors.As(err, &rej):
		return invalid(c, rej)
	case err != nil:
		return err
	}
	if rej := withdrawal.Validate(decoded); rej != nil {
		return invalid(c, rej)
	}
	if *dryRun {
		fmt.Fprintf(c.stdout, "valid: %s %s/%s amount %d fen (not produced: --dry-run)\n",
			decoded.Channel, decoded.Account, decoded.OutRequestNo, decoded.TotalAmount())
		return nil
	}
	bl, err := brokers(*brokerList)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p, off, err := kafkautil.Produce(ctx, bl, *topic, []byte(decoded.OutRequestNo), value, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "produced %s %s/%s amount %d fen to %s partition %d offset %d\n",
		decoded.Channel, decoded.Account, decoded.OutRequestNo, decoded.TotalAmount(), *topic, p, off)
	fmt.Fprintf(c.stdout, "follow it: withdrawctl events --out-request-no %s --from beginning\n", decoded.OutRequestNo)
	return nil
}

// invalid reports a rejection the way the intake would.
func invalid(c *cli, rej *withdrawal.Rejection) error {
	fmt.Fprintf(c.stdout, "invalid: reason_code=%s", rej.Code)
	if rej.Field != "" {
		fmt.Fprintf(c.stdout, " field=%s", rej.Field)
	}
	fmt.Fprintf(c.stdout, " reason=%q\n", rej.Reason)
	return &exitError{2, fmt.Errorf("command not produced: %s", rej.Code)}
}
