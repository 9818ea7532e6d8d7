package provider

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Op is the call an answer belongs to: the same code means different things
// for a first submission, a re-submission and a query.
type Op string

// The operations of the answer table.
const (
	// OpSubmit is the first send of a withdrawal's request.
	OpSubmit Op = "submit"
	// OpResend is any later send of the same bytes: the request may have
	// reached the provider before, so no answer to it proves "no order".
	OpResend Op = "resend"
	// OpQuery is a status query. Its status rows also read callbacks,
	// which carry the query answer's fields.
	OpQuery Op = "query"
)

// Ops lists the operations in table order.
var Ops = []Op{OpSubmit, OpResend, OpQuery}

// Row is one line of the answer table: what one documented answer of one
// operation means on a set of channels. Error rows match the provider's
// error code; status rows (Status set) match the status value of a
// successful query answer or callback.
type Row struct {
	Channels   []withdrawal.Channel
	Op         Op
	HTTPStatus int // the documented HTTP status (0: Allinpay answers 200 with a code)
	Code       string
	Status     bool
	Kind       Kind
	// State is what a status row means, or FAILED for a rejection.
	State withdrawal.State
	// Refusal: the provider documents that this answer created nothing.
	// Whether that may end the withdrawal at once is Kind: Rejected on a
	// first send of a channel whose documents allow it, otherwise
	// Ambiguous with QueryNow, and FAILED only once a conclusive query
	// finds no order (see package decide).
	Refusal bool
	// Resubmit: the provider wants the identical request sent again.
	Resubmit bool
	// QueryNow: ask for the order at once rather than after a back-off
	// (the documents say "query, then decide").
	QueryNow   bool
	RetryAfter time.Duration
	// Alert: an operator must act (permission, key, configuration).
	Alert bool
	// Unconfirmed marks rows no primary source was found for; they are
	// listed as such in docs/providers.md and chosen on the safe side.
	Unconfirmed bool
	// Source cites the document the row comes from.
	Source string
	// Why explains the row in a few words.
	Why string
}

// Delays for RetryLater outcomes.
const (
	// RateLimitDelay is the wait after a 429 without Retry-After.
	RateLimitDelay = 2 * time.Second
	// ConfigErrorDelay is the wait after our own configuration error
	// (SIGN_ERROR, a request we could not build): long, because only an
	// operator can fix it, and retrying fast only adds noise.
	ConfigErrorDelay = 10 * time.Minute
)

// Channel sets of the table.
var (
	wxWithdraw = []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform}
	wxPlatform = []withdrawal.Channel{withdrawal.ChannelWeChatPlatform}
	wxEcom     = []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce}
	wxCancel   = []withdrawal.Channel{withdrawal.ChannelWeChatCancel}
	wxAll      = []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform, withdrawal.ChannelWeChatCancel}
	allinpay   = []withdrawal.Channel{withdrawal.ChannelAllinpayShopoint}
)

// Sources cited by the table. Seeds are the provider documents the product
// was specified from; the pages are WeChat Pay's own.
const (
	srcSeed001      = "seed 001 (电商平台提现API) 错误码"
	srcSeed002      = "seed 002 (注销商户提现申请) 错误码 + 「提交时遇到任何错误…调用查询…再决定」"
	srcSeed002Sys   = "seed 002 「当返回错误码为SYSTEMERROR时,请不要更换商户提现申请单号」"
	srcSeed003      = "seed 003 (电商平台提现状态查询API) 错误码 / status 枚举值"
	srcSeed004      = "seed 004 (资金管理提现) code 3 表示失败 / withdrawStatus 1 提现中, 3 提现失败"
	srcWxErrors     = "pay.weixin.qq.com/wiki/doc/apiv3/Share/error_code.shtml (APIv3 通用错误码)"
	srcWxEcomQuery  = "pay.weixin.qq.com/docs/partner/apis/batch-transfer-accounts-money/withdrawal/query-sub-merchant-withdraw-by-id.html"
	srcWxEcomSubmit = "pay.weixin.qq.com/docs/partner/apis/batch-transfer-accounts-money/withdrawal/create-sub-merchant-withdraw.html (error table not retrieved)"
	srcWxCancelGet  = "pay.weixin.qq.com/docs/partner/apis/withdrawal-apply/withdrawal-apply/get-apply-by-applyment-id.html"
	srcSandbox      = "no primary source: sandbox convention, configurable per account"
)

// wxRefusals are the refusals the platform withdraw documents (seed 001);
// the e-commerce withdraw uses the same API family but its table was not
// found, so there they lead to a query before any conclusion.
var wxRefusals = []struct {
	status int
	code   string
	alert  bool
	why    string
}{
	{400, "PARAM_ERROR", false, "参数错误 (also: same out_request_no, other parameters)"},
	{400, "INVALID_REQUEST", false, "当前请求已经超过有效期"},
	{403, "NO_AUTH", true, "无接口权限"},
	{403, "NOT_ENOUGH", false, "商户号账户可用余额不足"},
	{403, "REQUEST_BLOCKED", false, "提现权限被冻结"},
	{403, "CONTRACT_NOT_CONFIRM", false, "提现权限已关闭"},
	{403, "ACCOUNT_ERROR", false, "没有绑定结算银行卡"},
	{403, "ACCOUNT_NOT_VERIFIED", false, "结算银行卡信息有误"},
}

// Table is the decision table of every documented provider answer, per
// channel and operation. A code that is not here is Ambiguous (never a
// rejection); see ClassifyError for the HTTP fallbacks. The re-send rows are
// derived from the submit rows (resendRow), so a refusal can never be read
// differently for a re-send by accident.
var Table = buildTable()

func buildTable() []Row {
	var t []Row
	add := func(r Row) { t = append(t, r) }

	// Submissions: platform (seed 001), the documented refusals.
	for _, r := range wxRefusals {
		add(Row{Channels: wxPlatform, Op: OpSubmit, HTTPStatus: r.status, Code: r.code, Kind: KindRejected,
			State: withdrawal.StateFailed, Refusal: true, Alert: r.alert, Source: srcSeed001, Why: r.why})
	}
	// E-commerce: the same codes, unconfirmed for this API: query first.
	for _, r := range wxRefusals {
		add(Row{Channels: wxEcom, Op: OpSubmit, HTTPStatus: r.status, Code: r.code, Kind: KindAmbiguous,
			Refusal: true, QueryNow: true, Alert: r.alert, Unconfirmed: true, Source: srcWxEcomSubmit,
			Why: r.why + "; not documented for this API: query, conclude from the query"})
	}
	// Cancelled-merchant withdraw (seed 002): on any error, query first.
	for _, r := range []struct {
		status int
		code   string
		alert  bool
		why    string
	}{
		{403, "NO_AUTH", true, "商户暂无权限使用此功能"},
		{400, "PARAM_ERROR", false, "参数错误 / 相同单号但参数不一致"},
		{403, "NOTENOUGH", false, "二级商户号账户可用余额不足"},
	} {
		add(Row{Channels: wxCancel, Op: OpSubmit, HTTPStatus: r.status, Code: r.code, Kind: KindAmbiguous,
			Refusal: true, QueryNow: true, Alert: r.alert, Source: srcSeed002, Why: r.why + "; query, conclude from the query"})
	}
	add(Row{Channels: wxCancel, Op: OpSubmit, HTTPStatus: 400, Code: "RESOURCE_ALREADY_EXISTS", Kind: KindAmbiguous,
		QueryNow: true, Source: srcSeed002, Why: "重复提交: the application exists, query it"})

	// Every WeChat channel, submissions and queries.
	for _, op := range []Op{OpSubmit, OpQuery} {
		add(Row{Channels: wxAll, Op: op, HTTPStatus: 401, Code: "SIGN_ERROR", Kind: KindRetryLater,
			RetryAfter: ConfigErrorDelay, Alert: true, Source: srcWxErrors,
			Why: "our signature or key is wrong: nothing processed, the money is still owed; fix configuration"})
		for _, c := range []string{"FREQUENCY_LIMITED", "RATE_LIMITED", "RATELIMIT_EXCEEDED"} {
			add(Row{Channels: wxAll, Op: op, HTTPStatus: 429, Code: c, Kind: KindRetryLater,
				RetryAfter: RateLimitDelay, Source: srcWxErrors + "; seed 002 (429 FREQUENCY_LIMITED)", Why: "请求未受理: same request later"})
		}
		add(Row{Channels: wxAll, Op: op, HTTPStatus: 500, Code: "SYSTEM_ERROR", Kind: KindAmbiguous,
			Source: srcWxErrors, Why: "provider error: same number, identical request, or query"})
		add(Row{Channels: wxAll, Op: op, HTTPStatus: 500, Code: "SYSTEMERROR", Kind: KindAmbiguous,
			Source: srcSeed002Sys, Why: "older spelling of SYSTEM_ERROR"})
	}

	// Queries (seed 003 and WeChat's query pages).
	add(Row{Channels: wxWithdraw, Op: OpQuery, HTTPStatus: 404, Code: "ORDER_NOT_EXISTS", Kind: KindNotFound,
		Source: srcSeed003, Why: "该提现单号不存在: conclusive only after 08:00 Beijing the next day"})
	add(Row{Channels: wxWithdraw, Op: OpQuery, HTTPStatus: 404, Code: "ORDER_NOT_EXIST", Kind: KindNotFound,
		Source: srcWxErrors, Why: "the generic 404 spelling, seen on the e-commerce query"})
	add(Row{Channels: wxWithdraw, Op: OpQuery, HTTPStatus: 404, Code: "RESOURCE_NOT_EXISTS", Kind: KindNotFound,
		Unconfirmed: true, Source: srcWxErrors, Why: "404 spelling of newer APIs"})
	add(Row{Channels: wxCancel, Op: OpQuery, HTTPStatus: 404, Code: "NOT_FOUND", Kind: KindNotFound,
		Source: srcWxCancelGet, Why: "单号不存在 (documented on the applyment-id query; the out-request-no query is taken to answer alike)"})
	add(Row{Channels: wxAll, Op: OpQuery, HTTPStatus: 400, Code: "PARAM_ERROR", Kind: KindAmbiguous, Alert: true,
		Source: srcSeed003, Why: "our query is malformed: says nothing about the order"})
	add(Row{Channels: wxAll, Op: OpQuery, HTTPStatus: 403, Code: "NO_AUTH", Kind: KindAmbiguous, Alert: true,
		Source: srcSeed003, Why: "no query permission: says nothing about the order"})

	// Statuses of a found order (queries and callbacks).
	for _, s := range []struct {
		code     string
		state    withdrawal.State
		resubmit bool
		why      string
	}{
		{"CREATE_SUCCESS", withdrawal.StateSubmitted, false, "受理成功"},
		{"SUCCESS", withdrawal.StateSucceeded, false, "提现成功 (a bank refund may still follow)"},
		{"FAIL", withdrawal.StateFailed, false, "提现失败"},
		{"REFUND", withdrawal.StateReversed, false, "提现退票"},
		{"CLOSE", withdrawal.StateFailed, false, "关单"},
		{"INIT", withdrawal.StateSubmitted, true, "业务单已创建, 需要重入驱动到受理成功: resend the identical request or wait 7 days"},
	} {
		add(Row{Channels: wxWithdraw, Op: OpQuery, Status: true, Code: s.code, Kind: KindAccepted, State: s.state,
			Resubmit: s.resubmit, Source: srcSeed003 + "; " + srcWxEcomQuery, Why: s.why})
	}
	add(Row{Channels: wxCancel, Op: OpQuery, Status: true, Code: "SUBMITTED", Kind: KindAccepted,
		State: withdrawal.StateSubmitted, Source: srcWxCancelGet, Why: "withdrawl_apply.state of the documented example"})
	for _, s := range []struct {
		code  string
		state withdrawal.State
	}{
		{"REVIEWING", withdrawal.StateSubmitted}, {"AUDITING", withdrawal.StateSubmitted},
		{"APPROVED", withdrawal.StateSubmitted}, {"PAYING", withdrawal.StateSubmitted},
		{"PAY_SUCCEED", withdrawal.StateSucceeded}, {"PAY_FAIL", withdrawal.StateFailed},
		{"REJECTED", withdrawal.StateFailed}, {"BANK_REFUNDED", withdrawal.StateReversed},
	} {
		add(Row{Channels: wxCancel, Op: OpQuery, Status: true, Code: s.code, Kind: KindAccepted, State: s.state,
			Unconfirmed: true, Source: "no primary source (value set of a newer cancel flow); state page lists no enum",
			Why: "withdrawl_apply.state"})
	}

	// Allinpay shopoint (seed 004). Code 0 is a success answer.
	add(Row{Channels: allinpay, Op: OpSubmit, Code: "3", Kind: KindRejected, State: withdrawal.StateFailed, Refusal: true,
		Source: srcSeed004, Why: "表示失败, 具体失败原因参见msg"})
	add(Row{Channels: allinpay, Op: OpQuery, Code: "3", Kind: KindAmbiguous, Alert: true,
		Source: srcSeed004, Why: "the query failed: says nothing about the order"})
	add(Row{Channels: allinpay, Op: OpQuery, Code: AllinpayNotFoundCode, Kind: KindNotFound, Unconfirmed: true,
		Source: srcSandbox + " (allinpay_not_found_code)", Why: "no such order"})
	add(Row{Channels: allinpay, Op: OpQuery, Status: true, Code: "1", Kind: KindAccepted, State: withdrawal.StateSubmitted,
		Source: srcSeed004, Why: "提现中"})
	add(Row{Channels: allinpay, Op: OpQuery, Status: true, Code: "2", Kind: KindAccepted, State: withdrawal.StateSucceeded,
		Unconfirmed: true, Source: srcSandbox + " (allinpay_statuses)", Why: "success"})
	add(Row{Channels: allinpay, Op: OpQuery, Status: true, Code: "3", Kind: KindAccepted, State: withdrawal.StateFailed,
		Source: srcSeed004, Why: "提现失败"})

	// Re-sends: every submit error row again, read for a request that may
	// have arrived before.
	for _, r := range t {
		if r.Op == OpSubmit {
			t = append(t, resendRow(r))
		}
	}
	return t
}

// resendRow is a submit row as it reads for a re-send. A refusal of a
// request that may have arrived before does not prove "no order" (WeChat
// answers PARAM_ERROR to "same number, other parameters"; Allinpay code 3 to
// a duplicate orderId): it is Ambiguous, query now. Everything else reads
// as for a first send.
func resendRow(r Row) Row {
	r.Op = OpResend
	if r.Kind == KindRejected {
		r.Kind, r.State, r.QueryNow = KindAmbiguous, "", true
		r.Why += "; on a re-send: query, conclude from the query"
	}
	return r
}

// AllinpayNotFoundCode is the Allinpay query answer code taken to mean "no
// such order". Allinpay's query API is unconfirmed; the sandbox uses this
// value and accounts may override it (Account.AllinpayNotFoundCode).
const AllinpayNotFoundCode = "4"

type tableKey struct {
	ch     withdrawal.Channel
	op     Op
	code   string
	status bool
}

var tableIndex = func() map[tableKey]Row {
	m := make(map[tableKey]Row, 4*len(Table))
	for _, r := range Table {
		for _, ch := range r.Channels {
			m[tableKey{ch, r.Op, r.Code, r.Status}] = r
		}
	}
	return m
}()

// Lookup returns the error row of a code for a channel and operation.
func Lookup(ch withdrawal.Channel, op Op, code string) (Row, bool) {
	r, ok := tableIndex[tableKey{ch, op, code, false}]
	return r, ok
}

// IsRefusal reports whether a submission answered with code created nothing
// by the documents of ch. The decision module reads it from reason_code of
// an UNKNOWN withdrawal: a conclusive "not found" after a refusal is FAILED,
// after anything else the identical request is sent again.
func IsRefusal(ch withdrawal.Channel, code string) bool {
	r, ok := Lookup(ch, OpSubmit, code)
	return ok && r.Refusal
}

// StatusMapping maps one provider status to an internal state.
type StatusMapping struct {
	State withdrawal.State
	// Resubmit: the provider wants the identical request sent again.
	Resubmit bool
	// Unconfirmed marks values taken from secondary sources.
	Unconfirmed bool
}

// MapStatus maps a raw provider status of a channel to the internal state.
// ok is false for a status not in the table: the caller keeps the current
// state and records the raw status.
func MapStatus(ch withdrawal.Channel, raw string) (StatusMapping, bool) {
	r, ok := tableIndex[tableKey{ch, OpQuery, raw, true}]
	if !ok {
		return StatusMapping{}, false
	}
	return StatusMapping{State: r.State, Resubmit: r.Resubmit, Unconfirmed: r.Unconfirmed}, true
}

// StatusTable returns the status rows of a channel as a map (a copy).
func StatusTable(ch withdrawal.Channel) map[string]StatusMapping {
	m := map[string]StatusMapping{}
	for k, r := range tableIndex {
		if k.ch == ch && k.status {
			m[k.code] = StatusMapping{State: r.State, Resubmit: r.Resubmit, Unconfirmed: r.Unconfirmed}
		}
	}
	return m
}

// ClassifyError classifies a verified, non-success answer of a channel: an
// HTTP status (WeChat; 0 for Allinpay) with the provider's error code. An
// unknown code is Ambiguous; an unknown code with 429 is RetryLater, with
// 401 RetryLater and an alert.
func ClassifyError(ch withdrawal.Channel, op Op, httpStatus int, code, message string) Outcome {
	o := Outcome{HTTPStatus: httpStatus, Code: code, Message: message}
	r, ok := Lookup(ch, op, code)
	switch {
	case ok:
		o.Kind, o.State, o.Refusal, o.QueryNow = r.Kind, r.State, r.Refusal, r.QueryNow
		o.RetryAfter, o.Alert = r.RetryAfter, r.Alert
	case httpStatus == http.StatusTooManyRequests:
		o.Kind, o.RetryAfter = KindRetryLater, RateLimitDelay
	case httpStatus == http.StatusUnauthorized:
		o.Kind, o.RetryAfter, o.Alert = KindRetryLater, ConfigErrorDelay, true
	default:
		// 5xx, unknown 4xx codes, unknown Allinpay codes: we cannot prove
		// that no order exists, so we must not say so.
		o.Kind = KindAmbiguous
	}
	if o.Kind != KindRejected {
		o.State = ""
	}
	return o
}

// CodeOther is the metric label of every code outside the table and the
// client's own codes: label values never come from an answer's bytes.
const CodeOther = "other"

// clientCodes are the codes the clients write themselves.
var clientCodes = map[string]bool{CodeTransport: true, CodeUnverified: true, CodeUnparseable: true,
	CodeUnexpected: true, CodeBuildFailed: true, "": true}

// CodeLabel is the value of a metric's code label for an answer's code:
// the code itself when the table (of any channel) or the client knows it,
// else CodeOther. A hostile or broken endpoint cannot create series.
func CodeLabel(code string) string {
	if clientCodes[code] || knownCodes[code] {
		return code
	}
	return CodeOther
}

var knownCodes = func() map[string]bool {
	m := map[string]bool{}
	for _, r := range Table {
		m[r.Code] = true
	}
	return m
}()

// TableMarkdown renders the table for docs/providers.md, one line per
// (channel set, operation, code or status), in table order.
func TableMarkdown() string {
	var b strings.Builder
	b.WriteString("| channels | op | HTTP | code / status | decision | source |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	rows := append([]Row(nil), Table...)
	order := map[Op]int{OpSubmit: 0, OpResend: 1, OpQuery: 2}
	sort.SliceStable(rows, func(i, j int) bool { return order[rows[i].Op] < order[rows[j].Op] })
	for _, r := range rows {
		chs := make([]string, len(r.Channels))
		for i, c := range r.Channels {
			chs[i] = string(c)
		}
		http := "–"
		if r.HTTPStatus != 0 {
			http = fmt.Sprint(r.HTTPStatus)
		}
		code := "`" + r.Code + "`"
		if r.Status {
			code = "status `" + r.Code + "`"
		}
		src := r.Source
		if r.Unconfirmed {
			src = "***unconfirmed*** " + src
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", strings.Join(chs, ", "), r.Op, http, code, r.decision(), src)
	}
	return b.String()
}

// decision is the row's outcome in words, for the docs.
func (r Row) decision() string {
	var parts []string
	switch {
	case r.Status:
		parts = append(parts, string(r.State))
	case r.Kind == KindRejected:
		parts = append(parts, "FAILED")
	default:
		parts = append(parts, string(r.Kind))
	}
	if r.Refusal && r.Kind != KindRejected {
		parts = append(parts, "refusal: FAILED only after a conclusive query finds nothing")
	}
	if r.QueryNow {
		parts = append(parts, "query now")
	}
	if r.Resubmit {
		parts = append(parts, "resend identical")
	}
	if r.RetryAfter > 0 {
		parts = append(parts, "retry after "+r.RetryAfter.String())
	}
	if r.Alert {
		parts = append(parts, "alert")
	}
	return strings.Join(parts, "; ") + " — " + r.Why
}
