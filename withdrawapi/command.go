// Package withdrawapi is the Go client contract of the withdrawal
// orchestrator's topics, for the services on either side of them:
//
//   - Upstream services build a typed command (WeChatEcommerce,
//     WeChatPlatform, WeChatCancel, AllinpayShopoint), check it with
//     Validate — the intake's own rules, so a command that passes is not
//     rejected except for ACCOUNT_NOT_CONFIGURED or REQUEST_CONFLICT, which
//     need the running service — and produce Marshal's bytes to
//     CommandsTopic under Key.
//   - Downstream ledgers decode each message of EventsTopic with
//     DecodeEvent, drop redeliveries by EventID, and apply each
//     withdrawal's events in Version order (Event.Follows, or Deduper).
//
// The wire format is specified language-neutrally in api/asyncapi.yaml and
// api/schemas of this module; this package is one implementation of it.
//
// Stability: this package follows the module's contract, not its
// internals. Within a major version, exported names keep their meaning;
// new channels, fields, event types, states and reason codes may be added,
// so switch statements over them need a default case.
package withdrawapi

import (
	"encoding/json"
	"fmt"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// The default topic names (the services' WITHDRAW_*_TOPIC settings).
const (
	CommandsTopic   = "withdraw.commands"
	EventsTopic     = "withdraw.events"
	DeadLetterTopic = "withdraw.commands.dlq"
)

// Channel names the provider API that pays a withdrawal out.
type Channel string

// The channels.
const (
	ChannelWeChatEcommerce  Channel = "wechatpay_ecommerce"
	ChannelWeChatPlatform   Channel = "wechatpay_platform"
	ChannelWeChatCancel     Channel = "wechatpay_cancel"
	ChannelAllinpayShopoint Channel = "allinpay_shopoint"
)

// Command is a withdrawal command of one channel.
type Command interface {
	// Channel is the command's channel.
	Channel() Channel
	// Key is the Kafka message key: the command's out_request_no.
	Key() []byte
	// Validate checks the command with the intake's rules (default
	// per-account limits). It returns nil or a *Rejection.
	Validate() error
	// Marshal returns the message value: JSON that the intake decodes to
	// exactly this command. It fails with a *Rejection for a command that
	// does not validate, so that nothing invalid is produced.
	Marshal() ([]byte, error)

	internal() *withdrawal.Command
}

// WeChatEcommerce is 二级商户余额提现: a sub-merchant's balance paid out.
type WeChatEcommerce struct {
	Account      string // provider account of the service's configuration; "" is "default"
	OutRequestNo string // 1-32 letters and digits; the idempotency key with channel and account
	Amount       int64  // fen
	SubMchID     string // digits
	AccountType  string // BASIC (when empty), OPERATION or FEES
	Remark       string // ≤ 56 characters
	BankMemo     string // ≤ 32 characters
}

// WeChatPlatform is 电商平台提现: the platform's own balance paid out.
type WeChatPlatform struct {
	Account      string
	OutRequestNo string // 1-32 letters and digits
	Amount       int64  // fen
	AccountType  string // BASIC, OPERATION or FEES (required)
	Remark       string // ≤ 255 characters
	BankMemo     string // ≤ 32 characters
}

// WeChatCancel is 注销商户提现申请: a cancelled sub-merchant's balance paid
// to a payee. Payee values are sent in plaintext: protect the topic.
type WeChatCancel struct {
	Account        string
	OutRequestNo   string // 1-32 letters and digits
	Amount         int64  // fen, ≤ 100,000,000 (100万元)
	SubMchID       string
	OutAccountType string // BASIC_ACCOUNT or OPERATE_ACCOUNT
	PayeeType      string // CONTRIBUTION_MERCHANT, SERVICE_PROVIDER_MERCHANT, OTHER_MERCHANT, OTHER_MCH, INDIVIDUAL
	PayeeMchID     string // required unless INDIVIDUAL, empty for INDIVIDUAL
	PayeeInfo      PayeeInfo
	// ProofMediaList and AdditionalMaterials are the provider's objects,
	// passed on as given (at most 3 deep).
	ProofMediaList      json.RawMessage
	AdditionalMaterials json.RawMessage
	Remark              string // ≤ 1024 characters
}

// PayeeInfo is the receiving bank account of a WeChatCancel.
type PayeeInfo struct {
	AccountType     string // ACCOUNT_TYPE_CORPORATE or ACCOUNT_TYPE_PRIVATE
	AccountBank     string
	AccountName     string // ≤ 214 bytes
	AccountNumber   string // ≤ 214 bytes
	BankBranchID    string
	BankName        string
	IdentityDocType string // IDENTIFICATION_TYPE_…; empty: no identity_info (required for INDIVIDUAL)
	IdentityName    string
	IdentityNo      string
}

// AllinpayShopoint is Allinpay's shopoint withdraw of one or more balances.
type AllinpayShopoint struct {
	Account      string
	OutRequestNo string // 1-60 letters, digits, '-', '_'
	// Amount is optional: 0 means the sum of the details; otherwise it must
	// equal that sum.
	Amount  int64
	Details []AllinpayDetail // 1-100
}

// AllinpayDetail is one balance of an AllinpayShopoint. Exactly one of
// AccountUserID (> 0), ExternalCode and IsPlatform names it.
type AllinpayDetail struct {
	AccountUserID int64
	ExternalCode  string
	IsPlatform    bool
	Amount        int64  // fen
	Summary       string // ≤ 50 characters (100 for a 结算通 account)
}

func (c *WeChatEcommerce) Channel() Channel  { return ChannelWeChatEcommerce }
func (c *WeChatPlatform) Channel() Channel   { return ChannelWeChatPlatform }
func (c *WeChatCancel) Channel() Channel     { return ChannelWeChatCancel }
func (c *AllinpayShopoint) Channel() Channel { return ChannelAllinpayShopoint }

func (c *WeChatEcommerce) Key() []byte  { return []byte(c.OutRequestNo) }
func (c *WeChatPlatform) Key() []byte   { return []byte(c.OutRequestNo) }
func (c *WeChatCancel) Key() []byte     { return []byte(c.OutRequestNo) }
func (c *AllinpayShopoint) Key() []byte { return []byte(c.OutRequestNo) }

func (c *WeChatEcommerce) Validate() error  { return validate(c) }
func (c *WeChatPlatform) Validate() error   { return validate(c) }
func (c *WeChatCancel) Validate() error     { return validate(c) }
func (c *AllinpayShopoint) Validate() error { return validate(c) }

func (c *WeChatEcommerce) Marshal() ([]byte, error)  { return marshal(c) }
func (c *WeChatPlatform) Marshal() ([]byte, error)   { return marshal(c) }
func (c *WeChatCancel) Marshal() ([]byte, error)     { return marshal(c) }
func (c *AllinpayShopoint) Marshal() ([]byte, error) { return marshal(c) }

func (c *WeChatEcommerce) internal() *withdrawal.Command {
	return &withdrawal.Command{Channel: withdrawal.ChannelWeChatEcommerce, Account: c.Account, OutRequestNo: c.OutRequestNo,
		Amount: c.Amount, SubMchID: c.SubMchID, AccountType: c.AccountType, Remark: c.Remark, BankMemo: c.BankMemo}
}

func (c *WeChatPlatform) internal() *withdrawal.Command {
	return &withdrawal.Command{Channel: withdrawal.ChannelWeChatPlatform, Account: c.Account, OutRequestNo: c.OutRequestNo,
		Amount: c.Amount, AccountType: c.AccountType, Remark: c.Remark, BankMemo: c.BankMemo}
}

func (c *WeChatCancel) internal() *withdrawal.Command {
	p := c.PayeeInfo
	payee := &withdrawal.PayeeInfo{AccountType: p.AccountType, BankAccountInfo: &withdrawal.BankAccountInfo{
		AccountBank: p.AccountBank, AccountName: p.AccountName, AccountNumber: p.AccountNumber,
		BankBranchID: p.BankBranchID, BankName: p.BankName}}
	if p.IdentityDocType != "" || p.IdentityName != "" || p.IdentityNo != "" {
		payee.IdentityInfo = &withdrawal.IdentityInfo{IDDocType: p.IdentityDocType, IdentificationName: p.IdentityName, IdentificationNo: p.IdentityNo}
	}
	return &withdrawal.Command{Channel: withdrawal.ChannelWeChatCancel, Account: c.Account, OutRequestNo: c.OutRequestNo,
		Amount: c.Amount, SubMchID: c.SubMchID, OutAccountType: c.OutAccountType, PayeeType: c.PayeeType,
		PayeeMchID: c.PayeeMchID, PayeeInfo: payee, ProofMediaList: c.ProofMediaList,
		AdditionalMaterials: c.AdditionalMaterials, Remark: c.Remark}
}

func (c *AllinpayShopoint) internal() *withdrawal.Command {
	cmd := &withdrawal.Command{Channel: withdrawal.ChannelAllinpayShopoint, Account: c.Account, OutRequestNo: c.OutRequestNo, Amount: c.Amount}
	for _, d := range c.Details {
		det := withdrawal.AllinpayDetail{ExternalCode: d.ExternalCode, IsPlatform: d.IsPlatform, Amount: d.Amount, Summary: d.Summary}
		if d.AccountUserID != 0 {
			id := d.AccountUserID
			det.AccountUserID = &id
		}
		cmd.Details = append(cmd.Details, det)
	}
	return cmd
}

// validate runs the intake's checks on the command as it will be read:
// what Marshal produces, decoded by the intake's strict decoder, so that
// text the decoder refuses (a NUL, a free-form object too deep) is caught
// here too.
func validate(c Command) error {
	_, err := encode(c)
	return err
}

func marshal(c Command) ([]byte, error) { return encode(c) }

func encode(c Command) ([]byte, error) {
	cmd := c.internal()
	if cmd.Account == "" {
		cmd.Account = withdrawal.DefaultAccount
	}
	value, err := json.Marshal(cmd)
	if err != nil {
		// Only a free-form field that is not JSON gets here.
		return nil, &Rejection{Code: ReasonInvalidFieldType, Reason: fmt.Sprintf("not JSON: %v", err)}
	}
	decoded, err := withdrawal.Decode(value)
	if err != nil {
		return nil, rejectionOf(err)
	}
	if r := withdrawal.Validate(decoded); r != nil {
		return nil, rejectionOf(r)
	}
	return value, nil
}
