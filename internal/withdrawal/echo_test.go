package withdrawal

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fullCommand returns a valid command of the channel with every string
// field it can carry set, as a JSON map to mutate.
func fullCommand(ch Channel) map[string]any {
	switch ch {
	case ChannelWeChatEcommerce:
		return map[string]any{"channel": string(ch), "account": "shop1", "out_request_no": "E0001", "sub_mchid": "1900000109",
			"amount": 100, "account_type": "BASIC", "remark": "交易提现", "bank_memo": "平台提现"}
	case ChannelWeChatPlatform:
		return map[string]any{"channel": string(ch), "account": "shop1", "out_request_no": "P0001", "amount": 100,
			"account_type": "OPERATION", "remark": "交易提现", "bank_memo": "平台提现"}
	case ChannelWeChatCancel:
		return map[string]any{
			"channel": string(ch), "account": "shop1", "out_request_no": "C0001", "sub_mchid": "1900000109", "amount": 101,
			"out_account_type": "BASIC_ACCOUNT", "payee_type": "OTHER_MERCHANT", "payee_mchid": "1900000110", "remark": "特殊理由",
			"payee_info": map[string]any{
				"account_type": "ACCOUNT_TYPE_CORPORATE",
				"bank_account_info": map[string]any{"account_bank": "工商银行", "account_name": "某某公司", "account_number": "6222020200112233445",
					"bank_branch_id": "402713354941", "bank_name": "中国工商银行北京分行"},
				"identity_info": map[string]any{"id_doc_type": "IDENTIFICATION_TYPE_IDCARD", "identification_name": "张三", "identification_no": "110101199003074477"},
			},
			"proof_media_list":     map[string]any{"proof_payee_media": []any{map[string]any{"proof_media": "m1", "proof_media_type": "T1"}}},
			"additional_materials": map[string]any{"additional_media": []any{"m2"}},
		}
	default:
		return map[string]any{"channel": string(ch), "account": "shop1", "out_request_no": "A0001", "details": []any{
			map[string]any{"account_user_id": 7, "amount": 1, "summary": "结算"},
			map[string]any{"external_code": "m15", "amount": 2, "summary": "结算"},
		}}
	}
}

// leaves lists the paths (map keys and slice indexes) of every value of v
// that satisfies keep.
func leaves(v any, path []any, keep func(any) bool) [][]any {
	var out [][]any
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out = append(out, leaves(e, append(append([]any(nil), path...), k), keep)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, leaves(e, append(append([]any(nil), path...), i), keep)...)
		}
	default:
		if keep(v) {
			out = append(out, path)
		}
	}
	return out
}

func setPath(v any, path []any, x any) {
	for i, p := range path {
		last := i == len(path)-1
		switch p := p.(type) {
		case string:
			if last {
				v.(map[string]any)[p] = x
			} else {
				v = v.(map[string]any)[p]
			}
		case int:
			if last {
				v.([]any)[p] = x
			} else {
				v = v.([]any)[p]
			}
		}
	}
}

// The marker stands for a payee's data: letters and digits (so it passes
// the character rules of out_request_no and account), and a number.
const (
	echoMarker    = "ZQXJ62220202998877665544"
	echoMarkerNum = "62220202998877665544"
)

// echoed reports whether s shows any recognisable part of the markers.
func echoed(s string) bool {
	for _, part := range []string{"ZQXJ", "7766", "5544", "2998"} {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

// TestRejectionsNeverEchoValues puts a marker into every string field of
// every channel's command, nested payee_info and details included, as an
// invalid value of every kind, and checks that no rejection or dead-letter
// reason shows it: a rejection names the field and the rule only.
func TestRejectionsNeverEchoValues(t *testing.T) {
	const hole = "@@LEAF@@"
	variants := []struct {
		name    string
		value   func(name string) string // raw JSON replacing the leaf's value
		invalid bool                     // always refused outside free-form objects
	}{
		{"plain", func(string) string { return `"` + echoMarker + `"` }, false},
		{"with punctuation", func(string) string { return `"` + echoMarker + ` <x>/-"` }, false},
		{"long", func(string) string { return `"` + strings.Repeat(echoMarker, 60) + `"` }, true},
		{"NUL", func(string) string { return `"` + echoMarker + `\u0000"` }, true},
		{"invalid UTF-8", func(string) string { return `"` + echoMarker + "\xff\"" }, true},
		{"lone surrogate", func(string) string { return `"` + echoMarker + `\udc00"` }, true},
		{"object", func(string) string { return `{"v":"` + echoMarker + `"}` }, true},
		{"array", func(string) string { return `["` + echoMarker + `"]` }, true},
		{"number", func(string) string { return echoMarkerNum }, true},
		{"fraction", func(string) string { return echoMarkerNum + ".5" }, true},
		{"repeated", func(name string) string { return `"x","` + name + `":"` + echoMarker + `"` }, true},
	}
	checked := 0
	for _, ch := range Channels {
		paths := leaves(fullCommand(ch), nil, func(v any) bool { _, ok := v.(string); return ok })
		if len(paths) < 5 {
			t.Fatalf("%s: only %d string fields", ch, len(paths))
		}
		for _, path := range paths {
			freeForm := path[0] == "proof_media_list" || path[0] == "additional_materials"
			for _, v := range variants {
				m := fullCommand(ch)
				setPath(m, path, hole)
				raw, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprint(path[len(path)-1])
				if i, ok := path[len(path)-1].(int); ok {
					if v.name == "repeated" {
						continue // an array element has no name to repeat
					}
					name = fmt.Sprint(i)
				}
				value := strings.Replace(string(raw), `"`+hole+`"`, v.value(name), 1)
				_, err = decodeAndValidate(t, []byte(value))
				checked++
				var r *Rejection
				var u *Undecodable
				switch {
				case errors.As(err, &r):
					if echoed(r.Reason) || echoed(r.Field) || echoed(r.Error()) {
						t.Errorf("%s %v %s: %s echoes the value: %q", ch, path, v.name, r.Code, r.Error())
					}
				case errors.As(err, &u):
					if echoed(u.Error()) {
						t.Errorf("%s %v %s: dead letter echoes the value: %q", ch, path, v.name, u.Error())
					}
				case err != nil:
					t.Errorf("%s %v %s: unexpected error %T", ch, path, v.name, err)
				case v.invalid && !freeForm && path[len(path)-1] != "account":
					// An account name of any letters is valid here; the
					// intake refuses it as not configured.
					t.Errorf("%s %v %s: accepted", ch, path, v.name)
				}
			}
		}
	}
	// Numbers are the command's values too.
	for _, tt := range []struct {
		ch     Channel
		mutate func(m map[string]any)
		want   ReasonCode
	}{
		{ChannelWeChatEcommerce, func(m map[string]any) { m["amount"] = 77665544332211 }, ReasonAmountOverLimit},
		{ChannelWeChatPlatform, func(m map[string]any) { m["amount"] = 77665544332211 }, ReasonAmountOverLimit},
		{ChannelWeChatCancel, func(m map[string]any) { m["amount"] = 776655443 }, ReasonAmountOverLimit},
		{ChannelWeChatCancel, func(m map[string]any) { m["amount"] = -7766 }, ReasonInvalidAmount},
		{ChannelAllinpayShopoint, func(m map[string]any) { m["amount"] = 77665544332211 }, ReasonAmountMismatch},
		{ChannelAllinpayShopoint, func(m map[string]any) { m["details"].([]any)[0].(map[string]any)["amount"] = 776655443322110 }, ReasonAmountOverLimit},
		{ChannelAllinpayShopoint, func(m map[string]any) {
			m["details"].([]any)[0].(map[string]any)["account_user_id"] = 776655443322
		}, ReasonInvalidFieldType},
	} {
		m := fullCommand(tt.ch)
		tt.mutate(m)
		raw, _ := json.Marshal(m)
		_, err := decodeAndValidate(t, raw)
		var r *Rejection
		if !errors.As(err, &r) || r.Code != tt.want {
			t.Errorf("%s %s: got %v, want %s", tt.ch, raw, err, tt.want)
			continue
		}
		if echoed(r.Error()) {
			t.Errorf("%s: %s echoes the value: %q", tt.ch, r.Code, r.Error())
		}
	}
	t.Logf("%d commands with a marker checked", checked)
}
