package withdrawal

import (
	"strconv"
	"unicode/utf8"
)

// Rules holds the validation limits that depend on the provider account
// rather than on the channel.
type Rules struct {
	// AllinpaySummaryMax is the longest Allinpay detail summary: 50, or 100
	// when the platform (大B) is a 结算通 merchant.
	AllinpaySummaryMax int
	// AllinpayMaxDetails caps the details of one Allinpay withdraw. Allinpay
	// publishes no limit; this is our guard against a runaway command.
	AllinpayMaxDetails int
}

// DefaultRules are the limits for an account with no overrides.
var DefaultRules = Rules{AllinpaySummaryMax: 50, AllinpayMaxDetails: 100}

// Enumerations, from the provider documents (seeds 000–004).
var (
	wechatAccountTypes    = []string{"BASIC", "OPERATION", "FEES"}
	cancelOutAccountTypes = []string{"BASIC_ACCOUNT", "OPERATE_ACCOUNT"}
	// OTHER_MCH appears in the provider's own request example (seed 002)
	// beside the documented OTHER_MERCHANT; both are accepted and passed
	// through as sent.
	cancelPayeeTypes       = []string{"CONTRIBUTION_MERCHANT", "SERVICE_PROVIDER_MERCHANT", "OTHER_MERCHANT", "OTHER_MCH", "INDIVIDUAL"}
	payeeAccountCorporate  = "ACCOUNT_TYPE_CORPORATE"
	payeeAccountPrivate    = "ACCOUNT_TYPE_PRIVATE"
	payeeAccountTypes      = []string{payeeAccountCorporate, payeeAccountPrivate}
	identificationDocTypes = []string{
		"IDENTIFICATION_TYPE_IDCARD", "IDENTIFICATION_TYPE_OVERSEA_PASSPORT",
		"IDENTIFICATION_TYPE_HONGKONG_PASSPORT", "IDENTIFICATION_TYPE_MACAO_PASSPORT",
		"IDENTIFICATION_TYPE_TAIWAN_PASSPORT", "IDENTIFICATION_TYPE_FOREIGN_RESIDENT",
		"IDENTIFICATION_TYPE_HONGKONG_MACAO_RESIDENT", "IDENTIFICATION_TYPE_TAIWAN_RESIDENT",
	}
)

// maxSensitiveBytes bounds names, account and ID numbers, in UTF-8 bytes.
// Each is RSA-OAEP encrypted (SHA-1) with WeChat Pay's 2048-bit key, which
// takes at most 256 − 2·20 − 2 = 214 bytes: a longer value could be accepted
// but never sent. Bank account formats vary too much for a character rule;
// the provider checks them.
const maxSensitiveBytes = 214

// Validate checks a decoded command against its channel's rules with
// DefaultRules. It returns nil or a *Rejection naming the first problem.
func Validate(c *Command) *Rejection { return ValidateWith(c, DefaultRules) }

// ValidateWith checks a decoded command against its channel's rules.
func ValidateWith(c *Command, rules Rules) *Rejection {
	if !c.Channel.Valid() {
		return reject(ReasonInvalidChannel, "channel", "must be one of %v", Channels)
	}
	if !validAccountName(c.Account) {
		return reject(ReasonInvalidAccount, "account", "must be 1-64 letters, digits, '_', '-' or '.'")
	}
	if r := validateOutRequestNo(c.Channel, c.OutRequestNo); r != nil {
		return r
	}
	if r := notAllowed(c); r != nil {
		return r
	}
	var r *Rejection
	switch c.Channel {
	case ChannelWeChatEcommerce:
		r = validateEcommerce(c)
	case ChannelWeChatPlatform:
		r = validatePlatform(c)
	case ChannelWeChatCancel:
		r = validateCancel(c)
	case ChannelAllinpayShopoint:
		r = validateAllinpay(c, rules)
	}
	if r != nil {
		return r
	}
	return validateTotal(c)
}

func validateEcommerce(c *Command) *Rejection {
	return first(
		required("sub_mchid", c.SubMchID, 32),
		mchID("sub_mchid", c.SubMchID),
		// account_type is optional for the e-commerce API (BASIC when absent).
		optionalEnum("account_type", c.AccountType, wechatAccountTypes),
		maxLen("remark", c.Remark, 56),
		maxLen("bank_memo", c.BankMemo, 32),
	)
}

func validatePlatform(c *Command) *Rejection {
	return first(
		required("account_type", c.AccountType, 0),
		optionalEnum("account_type", c.AccountType, wechatAccountTypes),
		maxLen("remark", c.Remark, 255),
		maxLen("bank_memo", c.BankMemo, 32),
	)
}

func validateCancel(c *Command) *Rejection {
	if r := first(
		required("sub_mchid", c.SubMchID, 32),
		mchID("sub_mchid", c.SubMchID),
		required("out_account_type", c.OutAccountType, 0),
		optionalEnum("out_account_type", c.OutAccountType, cancelOutAccountTypes),
		required("payee_type", c.PayeeType, 0),
		optionalEnum("payee_type", c.PayeeType, cancelPayeeTypes),
		maxLen("payee_mchid", c.PayeeMchID, 32),
		mchID("payee_mchid", c.PayeeMchID),
		maxLen("remark", c.Remark, 1024),
	); r != nil {
		return r
	}
	switch {
	case c.PayeeType == "INDIVIDUAL" && c.PayeeMchID != "":
		return reject(ReasonPayeeMchIDNotAllowed, "payee_mchid", "must be empty when payee_type is INDIVIDUAL")
	case c.PayeeType != "INDIVIDUAL" && c.PayeeMchID == "":
		return reject(ReasonPayeeMchIDRequired, "payee_mchid", "required unless payee_type is INDIVIDUAL")
	case c.PayeeType == "CONTRIBUTION_MERCHANT" && c.PayeeMchID != c.SubMchID:
		return reject(ReasonPayeeMchIDMismatch, "payee_mchid", "must equal sub_mchid when payee_type is CONTRIBUTION_MERCHANT")
	}
	return validatePayeeInfo(c.PayeeType, c.PayeeInfo)
}

func validatePayeeInfo(payeeType string, p *PayeeInfo) *Rejection {
	if p == nil {
		return reject(ReasonFieldRequired, "payee_info", "required")
	}
	if r := first(
		required("payee_info.account_type", p.AccountType, 0),
		optionalEnum("payee_info.account_type", p.AccountType, payeeAccountTypes),
	); r != nil {
		return r
	}
	switch {
	case payeeType == "INDIVIDUAL" && p.AccountType != payeeAccountPrivate:
		return reject(ReasonPayeeAccountTypeNotAllowed, "payee_info.account_type", "an INDIVIDUAL payee needs %s", payeeAccountPrivate)
	case payeeType == "SERVICE_PROVIDER_MERCHANT" && p.AccountType != payeeAccountCorporate:
		return reject(ReasonPayeeAccountTypeNotAllowed, "payee_info.account_type", "the platform receives on a %s account", payeeAccountCorporate)
	}
	b := p.BankAccountInfo
	if b == nil {
		return reject(ReasonFieldRequired, "payee_info.bank_account_info", "required")
	}
	if r := first(
		required("payee_info.bank_account_info.account_bank", b.AccountBank, 128),
		sensitive("payee_info.bank_account_info.account_name", b.AccountName),
		sensitive("payee_info.bank_account_info.account_number", b.AccountNumber),
		maxLen("payee_info.bank_account_info.bank_branch_id", b.BankBranchID, 32),
		maxLen("payee_info.bank_account_info.bank_name", b.BankName, 128),
	); r != nil {
		return r
	}
	id := p.IdentityInfo
	if id == nil {
		// The provider needs the holder's identity to pay a private account.
		if payeeType == "INDIVIDUAL" {
			return reject(ReasonFieldRequired, "payee_info.identity_info", "required when payee_type is INDIVIDUAL")
		}
		return nil
	}
	return first(
		required("payee_info.identity_info.id_doc_type", id.IDDocType, 0),
		optionalEnum("payee_info.identity_info.id_doc_type", id.IDDocType, identificationDocTypes),
		sensitive("payee_info.identity_info.identification_name", id.IdentificationName),
		sensitive("payee_info.identity_info.identification_no", id.IdentificationNo),
	)
}

func validateAllinpay(c *Command, rules Rules) *Rejection {
	if len(c.Details) == 0 {
		return reject(ReasonDetailsRequired, "details", "at least one detail is required")
	}
	if len(c.Details) > rules.AllinpayMaxDetails {
		return reject(ReasonDetailsRequired, "details", "at most %d details per withdrawal", rules.AllinpayMaxDetails)
	}
	var sum int64
	for i, d := range c.Details {
		field := "details[" + strconv.Itoa(i) + "]"
		targets := 0
		if d.AccountUserID != nil {
			targets++
			// accountUserId is Integer(11) at the provider.
			if *d.AccountUserID <= 0 || *d.AccountUserID > 99_999_999_999 {
				return reject(ReasonInvalidFieldType, field+".account_user_id", "must be a positive integer of at most 11 digits")
			}
		}
		if d.ExternalCode != "" {
			targets++
		}
		if d.IsPlatform {
			targets++
		}
		if targets != 1 {
			return reject(ReasonDetailTargetInvalid, field, "exactly one of account_user_id, external_code, is_platform must be set (got %d)", targets)
		}
		if r := first(
			maxLen(field+".external_code", d.ExternalCode, 30),
			maxLen(field+".summary", d.Summary, rules.AllinpaySummaryMax),
		); r != nil {
			return r
		}
		if d.Amount <= 0 {
			return reject(ReasonInvalidAmount, field+".amount", "must be a positive number of fen")
		}
		if d.Amount > ChannelAllinpayShopoint.MaxAmountFen() {
			return reject(ReasonAmountOverLimit, field+".amount", "at most %d fen", ChannelAllinpayShopoint.MaxAmountFen())
		}
		sum += d.Amount // cannot overflow: ≤ 100 details of < 1e14 each
	}
	if c.Amount != 0 && c.Amount != sum {
		return reject(ReasonAmountMismatch, "amount", "must be absent or the sum of the details' amounts")
	}
	return nil
}

// validateTotal checks the money moved by the whole command.
func validateTotal(c *Command) *Rejection {
	total := c.TotalAmount()
	if total <= 0 {
		return reject(ReasonInvalidAmount, "amount", "must be a positive number of fen")
	}
	if limit := c.Channel.MaxAmountFen(); total > limit {
		return reject(ReasonAmountOverLimit, "amount", "exceeds the channel limit of %d fen", limit)
	}
	return nil
}

// validateOutRequestNo applies the providers' character rules: WeChat's
// withdraw numbers must be letters and digits (字母数字), Allinpay's orderId
// also takes '-' and '_' here since it is a free String(60).
func validateOutRequestNo(ch Channel, no string) *Rejection {
	if len(no) > ch.MaxOutRequestNoLen() {
		return reject(ReasonInvalidOutRequestNo, "out_request_no", "longer than %d characters", ch.MaxOutRequestNoLen())
	}
	for i := 0; i < len(no); i++ {
		b := no[i]
		alnum := b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		if !alnum && !(ch == ChannelAllinpayShopoint && (b == '-' || b == '_')) {
			return reject(ReasonInvalidOutRequestNo, "out_request_no", "character %d is not allowed (letters and digits only)", i+1)
		}
	}
	return nil
}

// notAllowed refuses fields that belong to another channel, so that a
// command is never silently paid without a parameter upstream thought it set.
func notAllowed(c *Command) *Rejection {
	set := map[string]bool{
		"sub_mchid":            c.SubMchID != "",
		"account_type":         c.AccountType != "",
		"bank_memo":            c.BankMemo != "",
		"remark":               c.Remark != "",
		"out_account_type":     c.OutAccountType != "",
		"payee_type":           c.PayeeType != "",
		"payee_mchid":          c.PayeeMchID != "",
		"payee_info":           c.PayeeInfo != nil,
		"proof_media_list":     len(c.ProofMediaList) > 0,
		"additional_materials": len(c.AdditionalMaterials) > 0,
		"details":              len(c.Details) > 0,
	}
	allowed := map[Channel][]string{
		ChannelWeChatEcommerce:  {"sub_mchid", "account_type", "bank_memo", "remark"},
		ChannelWeChatPlatform:   {"account_type", "bank_memo", "remark"},
		ChannelWeChatCancel:     {"sub_mchid", "out_account_type", "payee_type", "payee_mchid", "payee_info", "proof_media_list", "additional_materials", "remark"},
		ChannelAllinpayShopoint: {"details"},
	}[c.Channel]
	for _, f := range allowed {
		delete(set, f)
	}
	// Report in a fixed order so the same command always gets the same reason.
	for _, f := range []string{"sub_mchid", "account_type", "bank_memo", "remark", "out_account_type", "payee_type", "payee_mchid", "payee_info", "proof_media_list", "additional_materials", "details"} {
		if set[f] {
			return reject(ReasonFieldNotAllowed, f, "not a field of the command's channel")
		}
	}
	return nil
}

func validAccountName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_' || b == '-' || b == '.') {
			return false
		}
	}
	return true
}

// required rejects an empty value and, when max > 0, one longer than max
// characters.
func required(field, v string, max int) *Rejection {
	if v == "" {
		return reject(ReasonFieldRequired, field, "required")
	}
	if max > 0 {
		return maxLen(field, v, max)
	}
	return nil
}

// sensitive requires a payee value that fits one RSA-OAEP block.
func sensitive(field, v string) *Rejection {
	if v == "" {
		return reject(ReasonFieldRequired, field, "required")
	}
	if len(v) > maxSensitiveBytes {
		return reject(ReasonFieldTooLong, field, "longer than %d bytes of UTF-8 (one RSA-OAEP block)", maxSensitiveBytes)
	}
	return nil
}

// maxLen rejects a value longer than max characters (not bytes: the
// providers count 汉字 as one).
func maxLen(field, v string, max int) *Rejection {
	if utf8.RuneCountInString(v) > max {
		return reject(ReasonFieldTooLong, field, "longer than %d characters", max)
	}
	return nil
}

// mchID rejects a merchant number that is not ASCII digits only, as WeChat
// Pay's are; an empty one is left to required.
func mchID(field, v string) *Rejection {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return reject(ReasonInvalidMchID, field, "must be digits only")
		}
	}
	return nil
}

func optionalEnum(field, v string, allowed []string) *Rejection {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return reject(ReasonInvalidEnum, field, "must be one of %v", allowed)
}

func first(rs ...*Rejection) *Rejection {
	for _, r := range rs {
		if r != nil {
			return r
		}
	}
	return nil
}
