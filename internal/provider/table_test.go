package provider

import (
	"flag"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/paycore/withdraw/internal/withdrawal"
)

var update = flag.Bool("update", false, "rewrite docs/providers.md's generated answer table")

func TestAnswerTable(t *testing.T) {
	seen := map[tableKey]bool{}
	for _, r := range Table {
		if r.Source == "" || r.Why == "" || len(r.Channels) == 0 {
			t.Errorf("row %s %s %s: every row names its channels, source and reason", r.Op, r.Code, r.Kind)
		}
		for _, ch := range r.Channels {
			k := tableKey{ch, r.Op, r.Code, r.Status}
			if seen[k] {
				t.Errorf("duplicate row %v", k)
			}
			seen[k] = true
			if r.Status {
				m, ok := MapStatus(ch, r.Code)
				if !ok || m.State != r.State || m.Resubmit != r.Resubmit {
					t.Errorf("%v: MapStatus %+v does not follow the row", k, m)
				}
				continue
			}
			o := ClassifyError(ch, r.Op, r.HTTPStatus, r.Code, "m")
			if o.Kind != r.Kind || o.Alert != r.Alert || o.QueryNow != r.QueryNow || o.Refusal != r.Refusal || o.RetryAfter != r.RetryAfter {
				t.Errorf("%v: %+v does not follow the table", k, o)
			}
			if (o.Kind == KindRejected) != (o.State == withdrawal.StateFailed) {
				t.Errorf("%v: rejection ⇔ FAILED broken: %+v", k, o)
			}
			// The money rules: only a first send of a channel whose
			// documents allow it may end a withdrawal from its answer.
			if o.Kind == KindRejected && (r.Op != OpSubmit || ch == withdrawal.ChannelWeChatCancel) {
				t.Errorf("%v: a %s answer on %s must never be a rejection", k, r.Op, ch)
			}
			if r.Op == OpSubmit {
				re, ok := Lookup(ch, OpResend, r.Code)
				if !ok {
					t.Errorf("%v: no re-send row", k)
				} else if re.Refusal != r.Refusal || (r.Kind == KindRejected && (re.Kind != KindAmbiguous || !re.QueryNow)) {
					t.Errorf("%v: re-send row %+v", k, re)
				}
			}
		}
	}
	// Every code the documents list is in the table, per channel.
	for _, c := range []struct {
		chs   []withdrawal.Channel
		op    Op
		codes []string
	}{
		{wxPlatform, OpSubmit, []string{"NO_AUTH", "NOT_ENOUGH", "REQUEST_BLOCKED", "CONTRACT_NOT_CONFIRM", "INVALID_REQUEST", "ACCOUNT_ERROR", "ACCOUNT_NOT_VERIFIED", "PARAM_ERROR"}}, // seed 001
		{wxCancel, OpSubmit, []string{"NO_AUTH", "PARAM_ERROR", "RESOURCE_ALREADY_EXISTS", "NOTENOUGH", "FREQUENCY_LIMITED", "SYSTEMERROR"}},                                            // seed 002
		{wxWithdraw, OpQuery, []string{"NO_AUTH", "PARAM_ERROR", "ORDER_NOT_EXISTS"}},                                                                                                   // seed 003
		{wxCancel, OpQuery, []string{"NO_AUTH", "NOT_FOUND"}},
		{wxAll, OpSubmit, []string{"SIGN_ERROR", "SYSTEM_ERROR", "FREQUENCY_LIMITED"}},
		{allinpay, OpSubmit, []string{"3"}}, // seed 004
	} {
		for _, ch := range c.chs {
			for _, code := range c.codes {
				if _, ok := Lookup(ch, c.op, code); !ok {
					t.Errorf("%s %s %s: documented, not in the table", ch, c.op, code)
				}
			}
		}
	}
	if r, _ := Lookup(withdrawal.ChannelWeChatCancel, OpQuery, "NOT_FOUND"); r.Kind != KindNotFound {
		t.Errorf("cancel query 404 NOT_FOUND must be NotFound, is %s", r.Kind)
	}
}

// TestCancelSubmitErrorsAreQueriedFirst: seed 002 says "提交时遇到任何错误…
// 调用查询…再决定": no answer to a cancel submission ends the withdrawal.
func TestCancelSubmitErrorsAreQueriedFirst(t *testing.T) {
	for _, code := range []string{"NO_AUTH", "PARAM_ERROR", "NOTENOUGH", "RESOURCE_ALREADY_EXISTS", "SOMETHING_NEW"} {
		for _, op := range []Op{OpSubmit, OpResend} {
			o := ClassifyError(withdrawal.ChannelWeChatCancel, op, 403, code, "m")
			if o.Kind == KindRejected || o.State != "" {
				t.Errorf("cancel %s %s: %s %s", op, code, o.Kind, o.State)
			}
			if code != "SOMETHING_NEW" && !o.QueryNow {
				t.Errorf("cancel %s %s: must be queried now", op, code)
			}
		}
	}
}

// TestResendNeverRejects: every code of every channel, answered to a
// re-send, leaves the state to a query.
func TestResendNeverRejects(t *testing.T) {
	for _, ch := range withdrawal.Channels {
		for _, r := range Table {
			if o := ClassifyError(ch, OpResend, r.HTTPStatus, r.Code, "m"); o.Kind == KindRejected || o.State != "" {
				t.Errorf("%s re-send %s: %s %s", ch, r.Code, o.Kind, o.State)
			}
		}
	}
}

func TestUnknownCodesAreNeverRejections(t *testing.T) {
	for _, ch := range withdrawal.Channels {
		for _, st := range []int{0, 400, 403, 404, 409, 500, 502, 503} {
			for _, op := range Ops {
				if o := ClassifyError(ch, op, st, "BRAND_NEW", ""); o.Kind != KindAmbiguous {
					t.Errorf("%s %s %d BRAND_NEW: %s", ch, op, st, o.Kind)
				}
			}
		}
		if o := ClassifyError(ch, OpSubmit, 429, "BRAND_NEW", ""); o.Kind != KindRetryLater {
			t.Errorf("429 BRAND_NEW: %s", o.Kind)
		}
	}
	if o := ClassifyUnverified(http.StatusForbidden, "NOT_ENOUGH", nil); o.Kind != KindAmbiguous {
		t.Errorf("an unverified rejection must be ambiguous: %s", o.Kind)
	}
}

func TestStatusMapping(t *testing.T) {
	cases := []struct {
		ch   withdrawal.Channel
		raw  string
		want withdrawal.State
	}{
		{withdrawal.ChannelWeChatPlatform, "CREATE_SUCCESS", withdrawal.StateSubmitted},
		{withdrawal.ChannelWeChatPlatform, "SUCCESS", withdrawal.StateSucceeded},
		{withdrawal.ChannelWeChatEcommerce, "FAIL", withdrawal.StateFailed},
		{withdrawal.ChannelWeChatEcommerce, "CLOSE", withdrawal.StateFailed},
		{withdrawal.ChannelWeChatEcommerce, "REFUND", withdrawal.StateReversed},
		{withdrawal.ChannelWeChatPlatform, "INIT", withdrawal.StateSubmitted},
		{withdrawal.ChannelWeChatCancel, "SUBMITTED", withdrawal.StateSubmitted},
		{withdrawal.ChannelWeChatCancel, "BANK_REFUNDED", withdrawal.StateReversed},
		{withdrawal.ChannelWeChatCancel, "PAY_SUCCEED", withdrawal.StateSucceeded},
		{withdrawal.ChannelAllinpayShopoint, "1", withdrawal.StateSubmitted},
		{withdrawal.ChannelAllinpayShopoint, "3", withdrawal.StateFailed},
	}
	for _, c := range cases {
		m, ok := MapStatus(c.ch, c.raw)
		if !ok || m.State != c.want {
			t.Errorf("%s %s: %+v %v", c.ch, c.raw, m, ok)
		}
	}
	if m, _ := MapStatus(withdrawal.ChannelWeChatPlatform, "INIT"); !m.Resubmit {
		t.Error("INIT must ask for a resubmission")
	}
	if _, ok := MapStatus(withdrawal.ChannelWeChatCancel, "SOMETHING"); ok {
		t.Error("unknown statuses must not map")
	}
	if _, ok := MapStatus(withdrawal.ChannelWeChatCancel, "SUCCESS"); ok {
		t.Error("a status of another channel must not map")
	}
}

// TestCodeLabelIsBounded: a metric label never carries an answer's bytes.
func TestCodeLabelIsBounded(t *testing.T) {
	for code, want := range map[string]string{"NOT_ENOUGH": "NOT_ENOUGH", CodeTransport: CodeTransport,
		"X-" + strings.Repeat("A", 300): CodeOther, "SOMETHING_NEW": CodeOther, "": ""} {
		if got := CodeLabel(code); got != want {
			t.Errorf("CodeLabel(%.20q) = %q, want %q", code, got, want)
		}
	}
}

// Markers of the generated part of docs/providers.md.
const (
	docsBegin = "<!-- answer-table:begin (generated from provider.Table: go test ./internal/provider -run TestDocsTable -update) -->\n"
	docsEnd   = "<!-- answer-table:end -->"
)

// TestDocsTable fails when docs/providers.md's answer table is not the
// table in the code.
func TestDocsTable(t *testing.T) {
	const path = "../../docs/providers.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, docsBegin), strings.Index(doc, docsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: markers missing", path)
	}
	want := doc[:i+len(docsBegin)] + TableMarkdown() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the answer table differs from provider.Table; run go test ./internal/provider -run TestDocsTable -update", path)
}

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
kafka: {brokers: x}   # other sections are ignored here
accounts:
  - provider: wechatpay
    base_url: https://api.mch.weixin.qq.com
    mchid: "1900000109"
    cert_serial: ABC
    private_key_file: /k.pem
    public_key_id: PUB_KEY_ID_1
    public_key_file: /p.pem
    timeout: 3s
  - provider: allinpay
    base_url: https://gateway.example/api
    app_id: app
    private_key_file: /a.pem
    allinpay_public_key_file: /ap.pem
`))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Accounts[0]
	if w.Name != "default" || len(w.Channels) != 3 || w.EncryptWith != "public_key" || w.Timeout.String() != "3s" {
		t.Fatalf("%+v", w)
	}
	if a := cfg.Accounts[1]; a.QueryMethod != DefaultAllinpayQueryMethod || a.Timeout != DefaultTimeout {
		t.Fatalf("%+v", a)
	}
	for name, y := range map[string]string{
		"typo":          "accounts: [{provider: wechatpay, mchidd: 1}]",
		"no verify key": "accounts: [{provider: wechatpay, base_url: 'https://x', mchid: '1', cert_serial: a, private_key_file: k}]",
		"bad provider":  "accounts: [{provider: paypal}]",
		"relative url":  "accounts: [{provider: allinpay, base_url: x, app_id: a, private_key_file: k, allinpay_public_key_file: p}]",
		"cancel state":  "accounts: [{provider: wechatpay, base_url: 'https://x', mchid: '1', cert_serial: a, private_key_file: k, platform_cert_files: [c], cancel_states: {X: ACCEPTED}}]",
		"cert, no cert": "accounts: [{provider: wechatpay, base_url: 'https://x', mchid: '1', cert_serial: a, private_key_file: k, public_key_id: P, public_key_file: p, encrypt_with: certificate}]",
	} {
		if _, err := ParseConfig([]byte(y)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if s := w.String(); s == "" {
		t.Error("empty String")
	}
}
