package withdrawapi

import (
	"errors"
	"fmt"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// ReasonCode is the stable cause of a rejection: the reason_code of a
// withdrawal.rejected event. Codes are only ever added.
type ReasonCode string

// The reason codes (README "Rejection reason codes"; api/schemas/common.json).
const (
	ReasonInvalidFieldType           ReasonCode = "INVALID_FIELD_TYPE"
	ReasonUnknownField               ReasonCode = "UNKNOWN_FIELD"
	ReasonDuplicateField             ReasonCode = "DUPLICATE_FIELD"
	ReasonFieldNotAllowed            ReasonCode = "FIELD_NOT_ALLOWED"
	ReasonInvalidChannel             ReasonCode = "INVALID_CHANNEL"
	ReasonInvalidAccount             ReasonCode = "INVALID_ACCOUNT"
	ReasonAccountNotConfigured       ReasonCode = "ACCOUNT_NOT_CONFIGURED"
	ReasonInvalidMchID               ReasonCode = "INVALID_MCHID"
	ReasonInvalidOutRequestNo        ReasonCode = "INVALID_OUT_REQUEST_NO"
	ReasonInvalidAmount              ReasonCode = "INVALID_AMOUNT"
	ReasonAmountOverLimit            ReasonCode = "AMOUNT_OVER_LIMIT"
	ReasonAmountMismatch             ReasonCode = "AMOUNT_MISMATCH"
	ReasonFieldRequired              ReasonCode = "FIELD_REQUIRED"
	ReasonFieldTooLong               ReasonCode = "FIELD_TOO_LONG"
	ReasonInvalidEnum                ReasonCode = "INVALID_ENUM"
	ReasonPayeeMchIDRequired         ReasonCode = "PAYEE_MCHID_REQUIRED"
	ReasonPayeeMchIDNotAllowed       ReasonCode = "PAYEE_MCHID_NOT_ALLOWED"
	ReasonPayeeMchIDMismatch         ReasonCode = "PAYEE_MCHID_MISMATCH"
	ReasonPayeeAccountTypeNotAllowed ReasonCode = "PAYEE_ACCOUNT_TYPE_NOT_ALLOWED"
	ReasonDetailsRequired            ReasonCode = "DETAILS_REQUIRED"
	ReasonDetailTargetInvalid        ReasonCode = "DETAIL_TARGET_INVALID"
	ReasonRequestConflict            ReasonCode = "REQUEST_CONFLICT"
)

// Rejection is why a command is invalid: what the intake would answer with
// a withdrawal.rejected event.
type Rejection struct {
	Code   ReasonCode
	Field  string // JSON path of the field at fault, when there is one ("details[1].amount")
	Reason string // the rule broken; never a value of the command
}

// Error implements error.
func (r *Rejection) Error() string {
	if r.Field != "" {
		return fmt.Sprintf("%s: %s: %s", r.Code, r.Field, r.Reason)
	}
	return fmt.Sprintf("%s: %s", r.Code, r.Reason)
}

func rejectionOf(err error) *Rejection {
	var r *withdrawal.Rejection
	if errors.As(err, &r) {
		return &Rejection{Code: ReasonCode(r.Code), Field: r.Field, Reason: r.Reason}
	}
	// Undecodable: what Marshal produces is always an object with an
	// out_request_no unless out_request_no is empty.
	return &Rejection{Code: ReasonInvalidOutRequestNo, Field: "out_request_no", Reason: "required"}
}
