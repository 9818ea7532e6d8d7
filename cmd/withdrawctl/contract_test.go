package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paycore/withdraw/api"
)

func TestSchemaPrintsTheEmbeddedFiles(t *testing.T) {
	out, _, err := invoke(t, nil, "", "schema")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"asyncapi", "command", "command.wechatpay_cancel", "event", "event.rejected", "common"} {
		if !strings.Contains("\n"+out, "\n"+want+"\n") {
			t.Errorf("schema list lacks %s:\n%s", want, out)
		}
	}
	for _, name := range api.SchemaNames() {
		out, _, err := invoke(t, nil, "", "schema", name)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		want, _ := api.Schema(name)
		if out != string(want) || !json.Valid([]byte(out)) {
			t.Errorf("schema %s printed something else", name)
		}
	}
	if out, _, err := invoke(t, nil, "", "schema", "command.allinpay_shopoint.json"); err != nil || !strings.Contains(out, `"allinpay_shopoint"`) {
		t.Errorf("schema NAME.json: %v", err)
	}
	if out, _, _ := invoke(t, nil, "", "schema", "asyncapi"); !strings.HasPrefix(out, "asyncapi: 3.0.0") {
		t.Errorf("schema asyncapi: %.40s", out)
	}
	if _, _, err := invoke(t, nil, "", "schema", "nope"); err == nil {
		t.Error("unknown schema accepted")
	}
}

func TestValidateExitStatuses(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := `{"channel":"wechatpay_platform","out_request_no":"P1","amount":100,"account_type":"BASIC"}`
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string
	}{
		{"valid file", []string{file("ok.json", valid)}, "", 0, "valid: wechatpay_platform default/P1 amount 100 fen"},
		{"valid stdin", []string{"-"}, valid, 0, "valid: wechatpay_platform"},
		{"invalid", []string{"-"}, `{"channel":"wechatpay_ecommerce","out_request_no":"E1","amount":100}`, 1, "invalid: reason_code=FIELD_REQUIRED field=sub_mchid"},
		{"malformed", []string{"-"}, `{"channel":"wechatpay_platform","out_request_no":"P1","amount":100,"account_type":"BASIC","Amount":1}`, 1, "invalid: reason_code=UNKNOWN_FIELD field=Amount"},
		{"duplicate", []string{"-"}, `{"channel":"wechatpay_platform","out_request_no":"P1","amount":100,"amount":100,"account_type":"BASIC"}`, 1, "reason_code=DUPLICATE_FIELD field=amount"},
		{"undecodable", []string{"-"}, `[1]`, 1, "undecodable: not a JSON object"},
		{"no file", nil, "", 2, ""},
		{"two files", []string{"a", "b"}, "", 2, ""},
		{"missing file", []string{filepath.Join(dir, "missing.json")}, "", 2, ""},
		{"bad flag", []string{"--frob", "-"}, "", 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := invoke(t, nil, tc.stdin, append([]string{"validate"}, tc.args...)...)
			if got := exitCode(err); got != tc.code {
				t.Errorf("exit %d (%v), want %d", got, err, tc.code)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("output %q lacks %q", out, tc.out)
			}
		})
	}
}
