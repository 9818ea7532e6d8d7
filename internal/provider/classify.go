package provider

import (
	"net/http"
	"strconv"
	"time"
)

// Protocol distinguishes the two providers' code spaces.
type Protocol string

// The protocols.
const (
	ProtocolWeChat   Protocol = "wechatpay"
	ProtocolAllinpay Protocol = "allinpay"
)

// Client-side codes, for failures that carry no provider code.
const (
	// CodeTransport: no answer (timeout, reset, DNS, connection refused).
	CodeTransport = "TRANSPORT_ERROR"
	// CodeUnverified: an answer whose signature did not verify.
	CodeUnverified = "UNVERIFIED_ANSWER"
	// CodeUnparseable: an answer we could not parse.
	CodeUnparseable = "UNPARSEABLE_ANSWER"
	// CodeUnexpected: a verified answer that contradicts the order (another
	// out_request_no, amount, provider id or merchant; a missing status).
	CodeUnexpected = "UNEXPECTED_ANSWER"
)

// ClassifyUnverified classifies an answer whose signature did not verify or
// that could not be parsed. A success status is never trusted; a 429 or 401
// is still safe to retry since nothing is concluded from it; everything
// else is Ambiguous, because a forged "rejection" could make us pay twice.
func ClassifyUnverified(httpStatus int, code string, err error) Outcome {
	o := Outcome{Kind: KindAmbiguous, HTTPStatus: httpStatus, Code: code, Err: err, Alert: true}
	switch httpStatus {
	case http.StatusTooManyRequests:
		o.Kind, o.RetryAfter, o.Alert = KindRetryLater, RateLimitDelay, false
	case http.StatusUnauthorized:
		o.Kind, o.RetryAfter = KindRetryLater, ConfigErrorDelay
	}
	return o
}

// ParseRetryAfter reads a Retry-After header given in seconds; 0 if absent
// or unparseable. The HTTP-date form is not used by either provider.
func ParseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
