package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/paycore/withdraw/api"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// schema prints one of the embedded contract files.
func (c *cli) schema(args []string) error {
	fs := c.flags("schema", "[command | command.<channel> | event | event.<type> | event.envelope | common | asyncapi]",
		`Prints a JSON Schema (2020-12) of the topics' messages, as in api/schemas of the source, or
the AsyncAPI document (asyncapi). Without an argument, lists the names. The schemas' $ref values
are relative file names: save them side by side (withdrawctl schema NAME > NAME.json).

Examples:
  withdrawctl schema command                        # any command: oneOf by channel
  withdrawctl schema command.wechatpay_cancel
  withdrawctl schema event.rejected                 # reason_code enumerates the rejection reasons`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		fmt.Fprintln(c.stdout, "asyncapi")
		for _, n := range api.SchemaNames() {
			fmt.Fprintln(c.stdout, n)
		}
		return nil
	case 1:
	default:
		return fmt.Errorf("schema: one name at most, got %v", pos)
	}
	name := strings.TrimSuffix(pos[0], ".json")
	if name == "asyncapi" || name == "asyncapi.yaml" {
		_, err := c.stdout.Write(api.AsyncAPI())
		return err
	}
	b, ok := api.Schema(name)
	if !ok {
		return fmt.Errorf("schema: no schema %q (withdrawctl schema lists them)", pos[0])
	}
	_, err = c.stdout.Write(b)
	return err
}

// validate checks a command file offline with the intake's rules. Its exit
// statuses are those of validators (0 valid, 1 invalid, 2 usage) so that
// scripts and CI can call it like one; submit keeps 2 for "not produced".
func (c *cli) validate(args []string) error {
	fs := c.flags("validate", "FILE | -",
		`Checks one withdrawal command offline with the intake's own decoding and validation rules
(withdrawal.Decode and Validate, the default per-account limits): the verdict is the intake's,
except that whether the account is configured (ACCOUNT_NOT_CONFIGURED) and whether the key was
used before with other parameters (REQUEST_CONFLICT) need the running service. "-" reads stdin.
Nothing is produced.

Exit status: 0 valid, 1 invalid (the reason code and field are printed, as the rejection event
would carry them; a message the intake would dead-letter prints "undecodable"), 2 usage error.

Examples:
  withdrawctl validate cancel.json
  withdrawctl schema command.wechatpay_platform     # the same rules as a JSON Schema`)
	pos, err := parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{2, err}
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{2, errors.New("validate: want exactly one FILE (\"-\" for stdin)")}
	}
	var value []byte
	if pos[0] == "-" {
		value, err = io.ReadAll(c.stdin)
	} else {
		value, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return &exitError{2, fmt.Errorf("validate: %w", err)}
	}
	cmd, err := withdrawal.Decode(value)
	var und *withdrawal.Undecodable
	var rej *withdrawal.Rejection
	switch {
	case errors.As(err, &und):
		fmt.Fprintf(c.stdout, "undecodable: %s (the intake would dead-letter it)\n", und.Reason)
		return &exitError{1, errors.New("not a command")}
	case errors.As(err, &rej):
	case err != nil:
		return err
	default:
		rej = withdrawal.Validate(cmd)
	}
	if rej != nil {
		fmt.Fprintf(c.stdout, "invalid: reason_code=%s", rej.Code)
		if rej.Field != "" {
			fmt.Fprintf(c.stdout, " field=%s", rej.Field)
		}
		fmt.Fprintf(c.stdout, " reason=%q\n", rej.Reason)
		return &exitError{1, fmt.Errorf("invalid command: %s", rej.Code)}
	}
	fmt.Fprintf(c.stdout, "valid: %s %s/%s amount %d fen\n", cmd.Channel, cmd.Account, cmd.OutRequestNo, cmd.TotalAmount())
	return nil
}
