package provider

import (
	"log/slog"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Kind is the class of a provider answer: what the caller may conclude.
type Kind string

// The kinds of answer. Only Accepted and Rejected are definite; everything
// the client cannot prove is Ambiguous.
const (
	// KindAccepted: a verified success answer. For Submit, the provider took
	// the order; for a query, it found the order (see QueryResult.State).
	KindAccepted Kind = "ACCEPTED"
	// KindRejected: the provider definitely refused this request and created
	// no order for it (see Outcome.Code). Submit only: a refused query says
	// nothing about the withdrawal and is Ambiguous instead.
	KindRejected Kind = "REJECTED"
	// KindAmbiguous: the order may or may not exist (timeout, reset, 5xx,
	// SYSTEM_ERROR, an unverifiable or unparseable answer, an unknown code).
	// The withdrawal is UNKNOWN: query, or resend the identical Request.
	KindAmbiguous Kind = "AMBIGUOUS"
	// KindRetryLater: the provider did not process the request (429, or our
	// own configuration error such as SIGN_ERROR); send the same Request
	// again after RetryAfter.
	KindRetryLater Kind = "RETRY_LATER"
	// KindNotFound: a verified "no such order" answer to a query. It proves
	// nothing before the provider's visibility delay (WeChat: 08:00 Beijing
	// the next day); the poller decides when it becomes conclusive.
	KindNotFound Kind = "NOT_FOUND"
)

// Definite reports whether the kind settles the question asked.
func (k Kind) Definite() bool { return k == KindAccepted || k == KindRejected }

// Outcome is the classified answer to one provider call.
type Outcome struct {
	Kind Kind
	// ProviderRef is the provider's id of the order: WeChat withdraw_id or
	// applyment_id, Allinpay withdrawTId(s) joined by ','.
	ProviderRef string
	// ProviderStatus is the raw status the answer carried, if any (a WeChat
	// submit answer carries none).
	ProviderStatus string
	// Code and Message are the provider's error code and message, or one of
	// the client's own codes (Code* constants) for failures with no answer.
	Code    string
	Message string
	// HTTPStatus is the HTTP status of the answer, 0 when none arrived.
	HTTPStatus int
	// RequestID is the provider's request id (WeChat Request-ID), for
	// support tickets.
	RequestID string
	// RetryAfter is how long to wait before sending again (RetryLater).
	RetryAfter time.Duration
	// Alert marks a problem an operator must fix (SIGN_ERROR, NO_AUTH on a
	// query, an unverifiable answer): page, do not just retry silently.
	Alert bool
	// QueryNow: the documents ask for a query before anything else
	// (cancel-withdraw after any error, RESOURCE_ALREADY_EXISTS, a refusal
	// of a re-send): Ambiguous, ask at once rather than after a back-off.
	QueryNow bool
	// Refusal: the answer is one the provider documents as creating
	// nothing (see Row.Refusal). It ends a withdrawal only where Kind is
	// Rejected; elsewhere a query decides.
	Refusal bool
	// State is the internal state the answer implies, "" when it implies
	// none (Ambiguous, RetryLater, NotFound).
	State withdrawal.State
	// Err is the underlying error, if any. Its text never contains secrets
	// or payee data.
	Err error
}

// LogValue implements slog.LogValuer: the fields worth a log line.
func (o Outcome) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("kind", string(o.Kind))}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("provider_ref", o.ProviderRef)
	add("provider_status", o.ProviderStatus)
	add("code", o.Code)
	add("message", o.Message)
	add("request_id", o.RequestID)
	add("state", string(o.State))
	if o.HTTPStatus != 0 {
		attrs = append(attrs, slog.Int("http_status", o.HTTPStatus))
	}
	if o.RetryAfter > 0 {
		attrs = append(attrs, slog.Duration("retry_after", o.RetryAfter))
	}
	if o.Alert {
		attrs = append(attrs, slog.Bool("alert", true))
	}
	if o.Err != nil {
		attrs = append(attrs, slog.String("err", o.Err.Error()))
	}
	return slog.GroupValue(attrs...)
}

// QueryResult is the classified answer to a status query. Outcome.Kind is
// Accepted (found: see State), NotFound, Ambiguous or RetryLater.
type QueryResult struct {
	Outcome
	// Resubmit is set when the provider asks for the identical request to be
	// sent again (WeChat INIT: 业务单已创建, 需要重入驱动到受理成功).
	Resubmit bool
	// Amount is the amount the provider reports, in fen; 0 when absent.
	Amount int64
	// OutRequestNo and SubMchID are the order's identity as the answer
	// states it (Allinpay: orderId), "" when absent. The decision module
	// checks them, Amount and ProviderRef against the stored order before
	// the answer may move a state.
	OutRequestNo string
	SubMchID     string
	// Reason is the provider's failure reason (WeChat reason / fail_reason,
	// Allinpay withdrawStatusDesc), Solution its advice, when given.
	Reason   string
	Solution string
	// Details are the per-detail statuses of an Allinpay withdraw.
	Details []DetailStatus
}

// DetailStatus is the status of one line of a multi-detail withdraw.
type DetailStatus struct {
	ProviderRef    string
	Status         string
	Description    string
	AmountFen      int64
	FeeFen         int64
	State          withdrawal.State
	AccountUserID  int64
	ExternalCode   string
	IsPlatformLine bool
}
