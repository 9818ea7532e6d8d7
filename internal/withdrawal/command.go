package withdrawal

import (
	"encoding/json"
	"log/slog"

	"github.com/paycore/withdraw/internal/pii"
)

// DefaultAccount is the provider account a command uses when it names none.
const DefaultAccount = "default"

// Command is one withdrawal request as upstream publishes it on the commands
// topic. It is the union of the four channels' fields; which ones are
// required depends on Channel (see Validate). Channel-specific fields keep the
// provider's own names so that upstream teams can read the provider documents.
//
// Amounts are fen. For allinpay_shopoint the amount of each detail is given
// and Amount, when present, must equal their sum.
type Command struct {
	Channel      Channel `json:"channel"`
	Account      string  `json:"account,omitempty"`
	OutRequestNo string  `json:"out_request_no"`
	Amount       int64   `json:"amount,omitempty"`

	// WeChat e-commerce and platform withdraw.
	SubMchID    string `json:"sub_mchid,omitempty"`
	AccountType string `json:"account_type,omitempty"`
	Remark      string `json:"remark,omitempty"`
	BankMemo    string `json:"bank_memo,omitempty"`

	// WeChat cancelled-merchant withdraw (sub_mchid and remark shared above).
	OutAccountType      string          `json:"out_account_type,omitempty"`
	PayeeType           string          `json:"payee_type,omitempty"`
	PayeeMchID          string          `json:"payee_mchid,omitempty"`
	PayeeInfo           *PayeeInfo      `json:"payee_info,omitempty"`
	ProofMediaList      json.RawMessage `json:"proof_media_list,omitempty"`
	AdditionalMaterials json.RawMessage `json:"additional_materials,omitempty"`

	// Allinpay shopoint withdraw.
	Details []AllinpayDetail `json:"details,omitempty"`
}

// PayeeInfo is the receiving bank account of a cancelled-merchant withdraw.
// Names, account numbers and ID numbers in it are sensitive: they are
// encrypted at rest (see package pii), never logged, and RSA-OAEP encrypted
// with WeChat Pay's key only when the provider request is built.
type PayeeInfo struct {
	AccountType     string           `json:"account_type"`
	BankAccountInfo *BankAccountInfo `json:"bank_account_info,omitempty"`
	IdentityInfo    *IdentityInfo    `json:"identity_info,omitempty"`
}

// BankAccountInfo is the bank account part of PayeeInfo.
type BankAccountInfo struct {
	AccountBank   string `json:"account_bank"`
	AccountName   string `json:"account_name"`   // sensitive
	AccountNumber string `json:"account_number"` // sensitive
	BankBranchID  string `json:"bank_branch_id,omitempty"`
	BankName      string `json:"bank_name,omitempty"`
}

// IdentityInfo is the identity document part of PayeeInfo.
type IdentityInfo struct {
	IDDocType          string `json:"id_doc_type"`
	IdentificationName string `json:"identification_name"` // sensitive
	IdentificationNo   string `json:"identification_no"`   // sensitive
}

// AllinpayDetail is one line of an Allinpay multi-detail withdraw. Exactly
// one of AccountUserID, ExternalCode and IsPlatform identifies whose balance
// is withdrawn.
type AllinpayDetail struct {
	AccountUserID *int64 `json:"account_user_id,omitempty"`
	ExternalCode  string `json:"external_code,omitempty"`
	IsPlatform    bool   `json:"is_platform,omitempty"`
	Amount        int64  `json:"amount"`
	Summary       string `json:"summary,omitempty"`
}

// Key is the idempotency key of a withdrawal: a second command with the same
// key is the same withdrawal.
type Key struct {
	Channel      Channel
	Account      string
	OutRequestNo string
}

// Key returns the command's idempotency key.
func (c *Command) Key() Key {
	return Key{Channel: c.Channel, Account: c.Account, OutRequestNo: c.OutRequestNo}
}

// TotalAmount is the amount of money the command moves, in fen: Amount for
// the WeChat channels, the sum of the details for Allinpay.
func (c *Command) TotalAmount() int64 {
	if c.Channel != ChannelAllinpayShopoint {
		return c.Amount
	}
	var sum int64
	for _, d := range c.Details {
		sum += d.Amount
	}
	return sum
}

// MerchantKey names the merchant whose balance the withdrawal draws on. The
// dispatcher allows at most N in-flight submissions per merchant key, because
// the providers ask merchants to control concurrency per merchant.
func (c *Command) MerchantKey() string {
	switch c.Channel {
	case ChannelWeChatEcommerce, ChannelWeChatCancel:
		// Both draw on the sub-merchant's balance: one key for both.
		return "wechatpay:" + c.Account + ":" + c.SubMchID
	case ChannelWeChatPlatform:
		return "wechatpay:" + c.Account + ":platform"
	default:
		return "allinpay:" + c.Account
	}
}

// Masked returns a copy of p with the names masked to their first
// character (pii.MaskName) and the account and ID numbers to their last four
// (pii.Mask). It returns nil for nil.
func (p *PayeeInfo) Masked() *PayeeInfo {
	if p == nil {
		return nil
	}
	m := *p
	if p.BankAccountInfo != nil {
		b := *p.BankAccountInfo
		b.AccountName = pii.MaskName(b.AccountName)
		b.AccountNumber = pii.Mask(b.AccountNumber)
		m.BankAccountInfo = &b
	}
	if p.IdentityInfo != nil {
		id := *p.IdentityInfo
		id.IdentificationName = pii.MaskName(id.IdentificationName)
		id.IdentificationNo = pii.Mask(id.IdentificationNo)
		m.IdentityInfo = &id
	}
	return &m
}

// LogValue implements slog.LogValuer: a command in a log line shows its
// identity and amount only, never payee data, whatever the handler.
func (c *Command) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("channel", string(c.Channel)),
		slog.String("account", c.Account),
		slog.String("out_request_no", c.OutRequestNo),
		slog.Int64("amount", c.TotalAmount()),
	)
}

// LogValue implements slog.LogValuer: payee data logs masked.
func (p *PayeeInfo) LogValue() slog.Value {
	b, _ := json.Marshal(p.Masked())
	return slog.StringValue(string(b))
}
