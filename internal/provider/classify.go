package provider

import (
	"net/http"
	"strconv"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Protocol distinguishes the two providers' code spaces.
type Protocol string

// The protocols.
const (
	ProtocolWeChat   Protocol = "wechatpay"
	ProtocolAllinpay Protocol = "allinpay"
)

// Op is the kind of call an answer belongs to: the same code can mean
// different things for a submission and a query.
type Op string

// The operations.
const (
	OpSubmit Op = "submit"
	OpQuery  Op = "query"
)

// Delays for RetryLater outcomes.
const (
	// RateLimitDelay is the wait after a 429 without Retry-After.
	RateLimitDelay = 2 * time.Second
	// ConfigErrorDelay is the wait after our own configuration error
	// (SIGN_ERROR, a request we could not build): long, because only an
	// operator can fix it, and retrying fast only adds noise.
	ConfigErrorDelay = 10 * time.Minute
)

// Client-side codes, for failures that carry no provider code.
const (
	// CodeTransport: no answer (timeout, reset, DNS, connection refused).
	CodeTransport = "TRANSPORT_ERROR"
	// CodeUnverified: an answer whose signature did not verify.
	CodeUnverified = "UNVERIFIED_ANSWER"
	// CodeUnparseable: an answer we could not parse.
	CodeUnparseable = "UNPARSEABLE_ANSWER"
	// CodeUnexpected: a verified answer that contradicts the request (an
	// other out_request_no, a missing status).
	CodeUnexpected = "UNEXPECTED_ANSWER"
)

// Rule is one row of the classification table.
type Rule struct {
	Protocol Protocol
	// Op is the operation the row applies to; "" applies to both.
	Op Op
	// HTTPStatus is the documented status of the code (informational for
	// WeChat: the code decides; 0 for Allinpay).
	HTTPStatus int
	Code       string
	Kind       Kind
	// OnResend replaces Kind when the request was a Resend ("" = same Kind).
	OnResend   Kind
	RetryAfter time.Duration
	Alert      bool
	Exists     bool
	// Why explains the row; the docs table is generated from it.
	Why string
}

// Rules is the classification table of every documented error code. A code
// that is not here is Ambiguous: an unknown code is never a rejection.
//
// The choices that are not obvious:
//   - PARAM_ERROR is a definite rejection of this request, but WeChat also
//     answers it to "same out_request_no, other parameters": an order may
//     then exist under our number. That cannot happen for a byte-identical
//     resend, yet a resend is exactly where a mismatch would hide (a rebuilt
//     body), so on a Resend it is Ambiguous and a query decides.
//   - SIGN_ERROR (401) means WeChat could not authenticate us: no order was
//     created and the money is still owed, so it is not FAILED; it is
//     RetryLater with a long delay and an alert, because the fix is ours.
//   - RESOURCE_ALREADY_EXISTS (cancel-withdraw) proves the order exists:
//     Ambiguous with Exists, query now; never a rejection.
//   - Allinpay code 3 on a Resend is Ambiguous for the same reason.
//   - Queries are never Rejected: a refused query says nothing about the
//     withdrawal. PARAM_ERROR / NO_AUTH on a query are Ambiguous + Alert.
var Rules = []Rule{
	// WeChat Pay v3, definite rejections of a submission (seeds 001, 002).
	{ProtocolWeChat, OpSubmit, 400, "PARAM_ERROR", KindRejected, KindAmbiguous, 0, false, false, "参数错误; on a Resend possibly 'same number, other parameters': query"},
	{ProtocolWeChat, OpSubmit, 400, "INVALID_REQUEST", KindRejected, "", 0, false, false, "当前请求已经超过有效期"},
	{ProtocolWeChat, OpSubmit, 403, "NO_AUTH", KindRejected, "", 0, true, false, "无接口权限"},
	{ProtocolWeChat, OpSubmit, 403, "NOT_ENOUGH", KindRejected, "", 0, false, false, "商户号账户可用余额不足"},
	{ProtocolWeChat, OpSubmit, 403, "NOTENOUGH", KindRejected, "", 0, false, false, "二级商户号账户可用余额不足 (cancel-withdraw spelling)"},
	{ProtocolWeChat, OpSubmit, 403, "REQUEST_BLOCKED", KindRejected, "", 0, false, false, "提现权限被冻结"},
	{ProtocolWeChat, OpSubmit, 403, "CONTRACT_NOT_CONFIRM", KindRejected, "", 0, false, false, "提现权限已关闭"},
	{ProtocolWeChat, OpSubmit, 403, "ACCOUNT_ERROR", KindRejected, "", 0, false, false, "没有绑定结算银行卡"},
	{ProtocolWeChat, OpSubmit, 403, "ACCOUNT_NOT_VERIFIED", KindRejected, "", 0, false, false, "结算银行卡信息有误"},
	{ProtocolWeChat, OpSubmit, 400, "RESOURCE_ALREADY_EXISTS", KindAmbiguous, "", 0, false, true, "cancel-withdraw duplicate: the order exists, query now"},
	// WeChat Pay v3, both operations.
	{ProtocolWeChat, "", 401, "SIGN_ERROR", KindRetryLater, "", ConfigErrorDelay, true, false, "our signature or key is wrong: nothing created, fix config"},
	{ProtocolWeChat, "", 429, "FREQUENCY_LIMITED", KindRetryLater, "", RateLimitDelay, false, false, "频率限制"},
	{ProtocolWeChat, "", 429, "RATE_LIMITED", KindRetryLater, "", RateLimitDelay, false, false, "rate limited"},
	{ProtocolWeChat, "", 500, "SYSTEM_ERROR", KindAmbiguous, "", 0, false, false, "provider error: resend identical request or query"},
	{ProtocolWeChat, "", 500, "SYSTEMERROR", KindAmbiguous, "", 0, false, false, "older spelling of SYSTEM_ERROR"},
	// WeChat Pay v3, queries.
	{ProtocolWeChat, OpQuery, 404, "ORDER_NOT_EXISTS", KindNotFound, "", 0, false, false, "no order (yet): conclusive only after the visibility delay"},
	{ProtocolWeChat, OpQuery, 404, "ORDER_NOT_EXIST", KindNotFound, "", 0, false, false, "variant spelling"},
	{ProtocolWeChat, OpQuery, 404, "RESOURCE_NOT_EXISTS", KindNotFound, "", 0, false, false, "variant used by newer APIs"},
	{ProtocolWeChat, OpQuery, 400, "PARAM_ERROR", KindAmbiguous, "", 0, true, false, "our query is malformed: says nothing about the order"},
	{ProtocolWeChat, OpQuery, 403, "NO_AUTH", KindAmbiguous, "", 0, true, false, "no query permission: says nothing about the order"},
	// Allinpay shopoint (seed 004): code 0 is handled by the client.
	{ProtocolAllinpay, OpSubmit, 0, "3", KindRejected, KindAmbiguous, 0, false, false, "表示失败, 具体失败原因参见msg; on a Resend possibly a duplicate orderId: query"},
	{ProtocolAllinpay, OpQuery, 0, "3", KindAmbiguous, "", 0, true, false, "query failed: says nothing about the order"},
	{ProtocolAllinpay, OpQuery, 0, AllinpayNotFoundCode, KindNotFound, "", 0, false, false, "unconfirmed: sandbox convention for 'no such order', configurable"},
}

// AllinpayNotFoundCode is the Allinpay query answer code taken to mean "no
// such order". Allinpay's query API is unconfirmed; the sandbox uses this
// value and accounts may override it (Account.AllinpayNotFoundCode).
const AllinpayNotFoundCode = "4"

// ruleIndex is Rules keyed for lookup; built once.
var ruleIndex = func() map[ruleKey]Rule {
	m := make(map[ruleKey]Rule, len(Rules))
	for _, r := range Rules {
		ops := []Op{r.Op}
		if r.Op == "" {
			ops = []Op{OpSubmit, OpQuery}
		}
		for _, op := range ops {
			m[ruleKey{r.Protocol, op, r.Code}] = r
		}
	}
	return m
}()

type ruleKey struct {
	p    Protocol
	op   Op
	code string
}

// Lookup returns the table row for a code, and whether there is one.
func Lookup(p Protocol, op Op, code string) (Rule, bool) {
	r, ok := ruleIndex[ruleKey{p, op, code}]
	return r, ok
}

// ClassifyError classifies a verified, non-success answer: an HTTP status
// (WeChat; 0 for Allinpay) with the provider's error code. resend says the
// request may have reached the provider before. An unknown code is
// Ambiguous; an unknown code with 429 is RetryLater.
func ClassifyError(p Protocol, op Op, httpStatus int, code, message string, resend bool) Outcome {
	o := Outcome{HTTPStatus: httpStatus, Code: code, Message: message}
	r, ok := Lookup(p, op, code)
	switch {
	case ok:
		o.Kind = r.Kind
		if resend && r.OnResend != "" {
			o.Kind = r.OnResend
		}
		o.RetryAfter, o.Alert, o.Exists = r.RetryAfter, r.Alert, r.Exists
	case httpStatus == http.StatusTooManyRequests:
		o.Kind, o.RetryAfter = KindRetryLater, RateLimitDelay
	case httpStatus == http.StatusUnauthorized:
		o.Kind, o.RetryAfter, o.Alert = KindRetryLater, ConfigErrorDelay, true
	default:
		// 5xx, unknown 4xx codes, unknown Allinpay codes: we cannot prove
		// that no order exists, so we must not say so.
		o.Kind = KindAmbiguous
	}
	if o.Kind == KindRejected {
		o.State = withdrawal.StateFailed
	}
	return o
}

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
