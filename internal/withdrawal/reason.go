package withdrawal

import "fmt"

// ReasonCode is the stable, machine-readable cause of a rejection, sent as
// reason_code in withdrawal.rejected events. Upstream services switch on
// these values: never rename one, only add.
type ReasonCode string

// The rejection reasons. The README lists them with examples.
const (
	// ReasonInvalidFieldType: a field has the wrong JSON type ("amount": "1").
	ReasonInvalidFieldType ReasonCode = "INVALID_FIELD_TYPE"
	// ReasonUnknownField: the command has a field no channel defines; it is
	// refused rather than ignored, so that a typo never drops a parameter.
	// Names match byte for byte: "Amount" is not amount.
	ReasonUnknownField ReasonCode = "UNKNOWN_FIELD"
	// ReasonDuplicateField: a name appears twice in one JSON object, at any
	// level. Parsers disagree on which one counts, so neither is trusted.
	ReasonDuplicateField ReasonCode = "DUPLICATE_FIELD"
	// ReasonFieldNotAllowed: a field of another channel is set.
	ReasonFieldNotAllowed ReasonCode = "FIELD_NOT_ALLOWED"
	// ReasonInvalidChannel: channel is missing or not one we support.
	ReasonInvalidChannel ReasonCode = "INVALID_CHANNEL"
	// ReasonInvalidAccount: account is malformed.
	ReasonInvalidAccount ReasonCode = "INVALID_ACCOUNT"
	// ReasonAccountNotConfigured: no provider account of that name exists
	// for the channel.
	ReasonAccountNotConfigured ReasonCode = "ACCOUNT_NOT_CONFIGURED"
	// ReasonInvalidMchID: sub_mchid or payee_mchid is not digits only, as
	// WeChat Pay merchant numbers are.
	ReasonInvalidMchID ReasonCode = "INVALID_MCHID"
	// ReasonInvalidOutRequestNo: too long or has characters the provider
	// refuses.
	ReasonInvalidOutRequestNo ReasonCode = "INVALID_OUT_REQUEST_NO"
	// ReasonInvalidAmount: the amount is missing, zero or negative.
	ReasonInvalidAmount ReasonCode = "INVALID_AMOUNT"
	// ReasonAmountOverLimit: the amount is above the channel's limit.
	ReasonAmountOverLimit ReasonCode = "AMOUNT_OVER_LIMIT"
	// ReasonAmountMismatch: amount is not the sum of the Allinpay details.
	ReasonAmountMismatch ReasonCode = "AMOUNT_MISMATCH"
	// ReasonFieldRequired: a field the channel requires is empty.
	ReasonFieldRequired ReasonCode = "FIELD_REQUIRED"
	// ReasonFieldTooLong: a text field is longer than the provider allows.
	ReasonFieldTooLong ReasonCode = "FIELD_TOO_LONG"
	// ReasonInvalidEnum: an enumerated field has a value outside its set.
	ReasonInvalidEnum ReasonCode = "INVALID_ENUM"
	// ReasonPayeeMchIDRequired: payee_mchid is missing for a merchant payee.
	ReasonPayeeMchIDRequired ReasonCode = "PAYEE_MCHID_REQUIRED"
	// ReasonPayeeMchIDNotAllowed: payee_mchid is set for an INDIVIDUAL payee.
	ReasonPayeeMchIDNotAllowed ReasonCode = "PAYEE_MCHID_NOT_ALLOWED"
	// ReasonPayeeMchIDMismatch: a CONTRIBUTION_MERCHANT payee must be the
	// sub-merchant itself.
	ReasonPayeeMchIDMismatch ReasonCode = "PAYEE_MCHID_MISMATCH"
	// ReasonPayeeAccountTypeNotAllowed: the bank account type does not fit
	// the payee type (an individual needs a private account, the platform a
	// corporate one).
	ReasonPayeeAccountTypeNotAllowed ReasonCode = "PAYEE_ACCOUNT_TYPE_NOT_ALLOWED"
	// ReasonDetailsRequired: an Allinpay command has no details, or too many.
	ReasonDetailsRequired ReasonCode = "DETAILS_REQUIRED"
	// ReasonDetailTargetInvalid: a detail names not exactly one of
	// account_user_id, external_code and is_platform.
	ReasonDetailTargetInvalid ReasonCode = "DETAIL_TARGET_INVALID"
	// ReasonRequestConflict: a withdrawal with the same (channel, account,
	// out_request_no) exists with other parameters; it is left untouched.
	ReasonRequestConflict ReasonCode = "REQUEST_CONFLICT"
)

// ReasonCodes lists every reason code, for documentation and tests.
var ReasonCodes = []ReasonCode{
	ReasonInvalidFieldType, ReasonUnknownField, ReasonDuplicateField, ReasonFieldNotAllowed, ReasonInvalidChannel,
	ReasonInvalidAccount, ReasonAccountNotConfigured, ReasonInvalidMchID, ReasonInvalidOutRequestNo, ReasonInvalidAmount,
	ReasonAmountOverLimit, ReasonAmountMismatch, ReasonFieldRequired, ReasonFieldTooLong,
	ReasonInvalidEnum, ReasonPayeeMchIDRequired, ReasonPayeeMchIDNotAllowed, ReasonPayeeMchIDMismatch,
	ReasonPayeeAccountTypeNotAllowed, ReasonDetailsRequired, ReasonDetailTargetInvalid, ReasonRequestConflict,
}

// Rejection is why a command that could be identified was refused. It
// becomes a withdrawal.rejected event; the command never reaches a provider.
//
// A rejection names the field and the rule it breaks, never a value from
// the command: events are read far more widely than payee data may be, and
// a value sent in the wrong field (an account number as payee_type) is
// payee data all the same.
type Rejection struct {
	Code ReasonCode
	// Field is the JSON path of the offending field, when there is one.
	Field string
	// Reason is a human-readable statement of the rule, for example the
	// allowed values or the limit.
	Reason string
}

// Error implements error.
func (r *Rejection) Error() string {
	if r.Field != "" {
		return fmt.Sprintf("%s: %s: %s", r.Code, r.Field, r.Reason)
	}
	return fmt.Sprintf("%s: %s", r.Code, r.Reason)
}

func reject(code ReasonCode, field, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Undecodable is why a message could not be identified as a command at all
// (not JSON, not an object, no out_request_no, too large). Such a message
// goes to the dead-letter topic with its original bytes.
type Undecodable struct {
	Reason string
}

// Error implements error.
func (u *Undecodable) Error() string { return "undecodable command: " + u.Reason }
