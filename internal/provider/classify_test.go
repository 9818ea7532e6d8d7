package provider

import (
	"net/http"
	"testing"

	"github.com/paycore/withdraw/internal/withdrawal"
)

func TestClassificationTable(t *testing.T) {
	seen := map[ruleKey]bool{}
	for _, r := range Rules {
		ops := []Op{r.Op}
		if r.Op == "" {
			ops = []Op{OpSubmit, OpQuery}
		}
		for _, op := range ops {
			k := ruleKey{r.Protocol, op, r.Code}
			if seen[k] {
				t.Errorf("duplicate rule %v", k)
			}
			seen[k] = true
			o := ClassifyError(r.Protocol, op, r.HTTPStatus, r.Code, "m", false)
			if o.Kind != r.Kind || o.Alert != r.Alert || o.Exists != r.Exists || o.RetryAfter != r.RetryAfter {
				t.Errorf("%v: %+v does not follow the table", k, o)
			}
			if op == OpQuery && o.Kind == KindRejected {
				t.Errorf("%v: a query is never a rejection", k)
			}
			if (o.Kind == KindRejected) != (o.State == withdrawal.StateFailed) {
				t.Errorf("%v: rejection ⇔ FAILED broken: %+v", k, o)
			}
			if r.OnResend != "" {
				if got := ClassifyError(r.Protocol, op, r.HTTPStatus, r.Code, "m", true); got.Kind != r.OnResend || got.State != "" {
					t.Errorf("%v on resend: %+v", k, got)
				}
			}
		}
	}
	// Every documented WeChat code of PROVIDERS.md is in the table.
	for _, c := range []string{"PARAM_ERROR", "INVALID_REQUEST", "SIGN_ERROR", "NO_AUTH", "NOT_ENOUGH", "NOTENOUGH",
		"REQUEST_BLOCKED", "CONTRACT_NOT_CONFIRM", "ACCOUNT_ERROR", "ACCOUNT_NOT_VERIFIED", "FREQUENCY_LIMITED",
		"RATE_LIMITED", "SYSTEM_ERROR", "SYSTEMERROR", "RESOURCE_ALREADY_EXISTS"} {
		if _, ok := Lookup(ProtocolWeChat, OpSubmit, c); !ok {
			t.Errorf("submit code %s missing", c)
		}
	}
	for _, c := range []string{"ORDER_NOT_EXISTS", "ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"} {
		if r, ok := Lookup(ProtocolWeChat, OpQuery, c); !ok || r.Kind != KindNotFound {
			t.Errorf("query code %s: %+v %v", c, r, ok)
		}
	}
}

func TestUnknownCodesAreNeverRejections(t *testing.T) {
	for _, st := range []int{400, 403, 404, 409, 500, 502, 503} {
		if o := ClassifyError(ProtocolWeChat, OpSubmit, st, "BRAND_NEW", "", false); o.Kind != KindAmbiguous {
			t.Errorf("%d BRAND_NEW: %s", st, o.Kind)
		}
	}
	if o := ClassifyError(ProtocolWeChat, OpSubmit, 429, "BRAND_NEW", "", false); o.Kind != KindRetryLater {
		t.Errorf("429 BRAND_NEW: %s", o.Kind)
	}
	if o := ClassifyError(ProtocolAllinpay, OpSubmit, 0, "17", "", false); o.Kind != KindAmbiguous {
		t.Errorf("allinpay 17: %s", o.Kind)
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
	} {
		if _, err := ParseConfig([]byte(y)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if s := w.String(); s == "" {
		t.Error("empty String")
	}
}
