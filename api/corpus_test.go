package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/paycore/withdraw/internal/contracttest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// intakeVerdict is what the intake makes of a command value with the
// default rules: nil when it would be accepted, else the *Rejection or
// *Undecodable.
func intakeVerdict(value []byte) error {
	cmd, err := withdrawal.Decode(value)
	if err != nil {
		return err
	}
	if r := withdrawal.Validate(cmd); r != nil {
		return r
	}
	return nil
}

// inexpressible reports whether a rejection is one of the rules the command
// schemas state only in words (their descriptions), so a schema-valid
// command may still get it. The list is the contract's: every entry is
// written in a description and in api/README.md.
func inexpressible(err error) bool {
	var r *withdrawal.Rejection
	if !errors.As(err, &r) {
		return false
	}
	switch r.Code {
	case withdrawal.ReasonPayeeMchIDMismatch, withdrawal.ReasonAmountMismatch:
		return true
	case withdrawal.ReasonAmountOverLimit:
		// The sum of an Allinpay command's details.
		return r.Field == "amount"
	case withdrawal.ReasonFieldTooLong:
		// Payee values are bounded in UTF-8 bytes; the schema bounds characters.
		for _, f := range []string{"account_name", "account_number", "identification_name", "identification_no"} {
			if strings.HasSuffix(r.Field, "."+f) {
				return true
			}
		}
	}
	return false
}

// corpusCase is one command value and where it came from.
type corpusCase struct {
	name  string
	value []byte
}

// sameVerdict checks that the schema and the intake agree on every case:
// both accept, or both refuse. The one allowed disagreement is a command
// the schema accepts and the intake refuses for an inexpressible rule.
// It returns how many cases each side refused.
func sameVerdict(t *testing.T, cases []corpusCase) (valid, invalid, gaps int) {
	t.Helper()
	fails := 0
	for _, c := range cases {
		ierr := intakeVerdict(c.value)
		serr := contracttest.Validate(t, "command", c.value)
		switch {
		case ierr == nil && serr == nil:
			valid++
		case ierr != nil && serr != nil:
			invalid++
		case ierr != nil && inexpressible(ierr):
			gaps++
		default:
			fails++
			if fails <= 20 {
				t.Errorf("%s: intake says %v, schema says %v\n\t%s", c.name, orOK(ierr), orOK(serr), truncate(c.value))
			}
		}
	}
	if fails > 20 {
		t.Errorf("… and %d more disagreements", fails-20)
	}
	return valid, invalid, gaps
}

func orOK(err error) string {
	if err == nil {
		return "valid"
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// TestSchemaAgreesWithIntakeOnGeneratedCommands generates commands from the
// validation rules — every field of every channel set to each boundary of
// each rule (a length limit ±1, the ends of an amount range, each enum
// value and a near miss, null, "", the wrong type, absent), the payee
// rules' combinations, the details' targets and counts, free-form depths —
// and requires the schema and withdrawal.Decode + Validate to agree.
func TestSchemaAgreesWithIntakeOnGeneratedCommands(t *testing.T) {
	cases := generate(t)
	valid, invalid, gaps := sameVerdict(t, cases)
	t.Logf("%d commands: %d valid, %d invalid, %d invalid only by a rule the schema states in words", len(cases), valid, invalid, gaps)
	// The corpus must exercise both verdicts in quantity, or it proves little.
	if valid < 200 || invalid < 2000 {
		t.Errorf("corpus too one-sided: %d valid, %d invalid", valid, invalid)
	}
}

// TestSchemaCannotSeeTheseButIntakeRefuses pins what JSON Schema cannot
// express because a validator only sees the parsed document: each is
// valid by the schema, refused by the intake, and listed in the schemas'
// descriptions and api/README.md. Should the intake start accepting one,
// this test says the documentation is out of date.
func TestSchemaCannotSeeTheseButIntakeRefuses(t *testing.T) {
	platform := func(extra string) []byte {
		return []byte(`{"channel":"wechatpay_platform","out_request_no":"A1","account_type":"BASIC","amount":100` + extra + `}`)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		code  withdrawal.ReasonCode // "" for a dead letter
	}{
		{"duplicate name, same value", platform(`,"remark":"a","remark":"a"`), withdrawal.ReasonDuplicateField},
		{"duplicate name, other value", platform(`,"remark":"a","remark":"b"`), withdrawal.ReasonDuplicateField},
		{"duplicate name in free-form", []byte(strings.Replace(string(exampleCancel), `"additional_media"`, `"x":1,"x":2,"additional_media"`, 1)), withdrawal.ReasonDuplicateField},
		{"amount with a fraction of zero", []byte(`{"channel":"wechatpay_platform","out_request_no":"A1","account_type":"BASIC","amount":100.0}`), withdrawal.ReasonInvalidFieldType},
		{"amount with an exponent", []byte(`{"channel":"wechatpay_platform","out_request_no":"A1","account_type":"BASIC","amount":1e2}`), withdrawal.ReasonInvalidFieldType},
		{"invalid UTF-8", platform(",\"remark\":\"\xff\""), withdrawal.ReasonInvalidFieldType},
		{"lone surrogate escape", platform(`,"remark":"\ud800"`), withdrawal.ReasonInvalidFieldType},
		{"over 64 KiB", platform(`,"remark":"a"` + strings.Repeat(" ", withdrawal.MaxCommandBytes)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := intakeVerdict(tc.value)
			var r *withdrawal.Rejection
			var u *withdrawal.Undecodable
			switch {
			case tc.code == "" && !errors.As(err, &u):
				t.Errorf("intake: %v, want a dead letter", err)
			case tc.code != "" && (!errors.As(err, &r) || r.Code != tc.code):
				t.Errorf("intake: %v, want %s", err, tc.code)
			}
			if serr := contracttest.Validate(t, "command", tc.value); serr != nil {
				// Some JSON parsers refuse these outright; this one must
				// not, or the case proves nothing about the schema.
				if tc.code != withdrawal.ReasonInvalidFieldType || !strings.Contains(serr.Error(), "not JSON") {
					t.Errorf("schema refused it (%v): then the schema can express it; move it to the generated corpus", serr)
				}
			}
		})
	}
}

var exampleCancel = []byte(`{"channel":"wechatpay_cancel","out_request_no":"2019061122222222122","sub_mchid":"1900000109","amount":101,"out_account_type":"BASIC_ACCOUNT","payee_type":"OTHER_MERCHANT","payee_mchid":"1900000110","payee_info":{"account_type":"ACCOUNT_TYPE_CORPORATE","bank_account_info":{"account_bank":"工商银行","account_name":"某某有限公司","account_number":"6222020200112233445","bank_branch_id":"402713354941"},"identity_info":{"id_doc_type":"IDENTIFICATION_TYPE_IDCARD","identification_name":"张三","identification_no":"110101199003074477"}},"proof_media_list":{"proof_payee_media":[{"proof_media":"m1","proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"}]},"additional_materials":{"additional_media":["m2"]},"remark":"特殊理由"}`)

// bases are valid commands, one or more per channel, that the generator
// mutates one field at a time.
func bases() map[string]string {
	b := map[string]string{
		"ecommerce":         `{"channel":"wechatpay_ecommerce","out_request_no":"E1","sub_mchid":"1900000109","amount":100,"account_type":"BASIC","remark":"r","bank_memo":"m"}`,
		"ecommerce-min":     `{"channel":"wechatpay_ecommerce","out_request_no":"E1","sub_mchid":"1","amount":1}`,
		"platform":          `{"channel":"wechatpay_platform","account":"acct-2.x_y","out_request_no":"P1","amount":100,"account_type":"FEES","remark":"r","bank_memo":"m"}`,
		"cancel":            string(exampleCancel),
		"allinpay":          `{"channel":"allinpay_shopoint","out_request_no":"A-1_b","amount":300,"details":[{"account_user_id":100,"amount":100,"summary":"s"},{"external_code":"abc123","amount":100},{"is_platform":true,"amount":100}]}`,
		"allinpay-one":      `{"channel":"allinpay_shopoint","out_request_no":"A2","details":[{"is_platform":true,"amount":5}]}`,
		"cancel-min":        `{"channel":"wechatpay_cancel","out_request_no":"C2","sub_mchid":"1900000109","amount":1,"out_account_type":"OPERATE_ACCOUNT","payee_type":"OTHER_MCH","payee_mchid":"7","payee_info":{"account_type":"ACCOUNT_TYPE_PRIVATE","bank_account_info":{"account_bank":"b","account_name":"n","account_number":"1"}}}`,
		"cancel-individual": `{"channel":"wechatpay_cancel","out_request_no":"C3","sub_mchid":"1900000109","amount":100000000,"out_account_type":"BASIC_ACCOUNT","payee_type":"INDIVIDUAL","payee_info":{"account_type":"ACCOUNT_TYPE_PRIVATE","bank_account_info":{"account_bank":"b","account_name":"n","account_number":"1","bank_name":"bn"},"identity_info":{"id_doc_type":"IDENTIFICATION_TYPE_TAIWAN_RESIDENT","identification_name":"x","identification_no":"1"}}}`,
	}
	return b
}

// paths are the fields the generator sets, at every level of a command.
var paths = func() [][]any {
	var out [][]any
	for _, f := range []string{"channel", "account", "out_request_no", "amount", "sub_mchid", "account_type", "remark", "bank_memo",
		"out_account_type", "payee_type", "payee_mchid", "payee_info", "proof_media_list", "additional_materials", "details", "Amount", "extra"} {
		out = append(out, []any{f})
	}
	for _, f := range []string{"account_type", "bank_account_info", "identity_info", "extra"} {
		out = append(out, []any{"payee_info", f})
	}
	for _, f := range []string{"account_bank", "account_name", "account_number", "bank_branch_id", "bank_name", "extra"} {
		out = append(out, []any{"payee_info", "bank_account_info", f})
	}
	for _, f := range []string{"id_doc_type", "identification_name", "identification_no", "extra"} {
		out = append(out, []any{"payee_info", "identity_info", f})
	}
	for _, i := range []int{0, 1} {
		out = append(out, []any{"details", i})
		for _, f := range []string{"account_user_id", "external_code", "is_platform", "amount", "summary", "extra"} {
			out = append(out, []any{"details", i, f})
		}
	}
	return out
}()

// deleteValue marks a field to remove rather than set.
type deleteValue struct{}

// values are the values every field is set to: the boundaries of every
// rule of validate.go, whichever field it belongs to, so that each field
// also meets the rules of the others.
func values() []any {
	vs := []any{deleteValue{}, nil, "", true, false, 1.5, -1, 0, 1, 2, []any{}, map[string]any{}, []any{nil}, "1", "x", "1x", "a b", "a-b", "a_b", "a.b", "a\x00b", "abc",
		"Ⅻ", "١٢", "１２"}
	for _, n := range []int64{100, 101, 99_999_999, 100_000_000, 100_000_001, 9_999_999_999, 10_000_000_000, 10_000_000_001,
		99_999_999_999, 100_000_000_000, 99_999_999_999_999, 100_000_000_000_000, math.MaxInt64, math.MinInt64} {
		vs = append(vs, n)
	}
	for _, n := range []int{29, 30, 31, 32, 33, 50, 51, 56, 57, 60, 61, 64, 65, 100, 101, 128, 129, 214, 215, 255, 256, 1024, 1025} {
		vs = append(vs, strings.Repeat("a", n), strings.Repeat("7", n), strings.Repeat("汉", n))
	}
	vs = append(vs, strings.Repeat("汉", 71), strings.Repeat("汉", 72)) // 213 and 216 bytes
	for _, e := range enums() {
		vs = append(vs, e, strings.ToLower(e))
	}
	for _, c := range withdrawal.Channels {
		vs = append(vs, string(c))
	}
	vs = append(vs, "default", "1900000109", "1900000110")
	// Free-form and nested shapes.
	vs = append(vs,
		map[string]any{"a": "b"}, map[string]any{"a": []any{1, "x", nil}}, map[string]any{"a": []any{[]any{1}}},
		map[string]any{"a": []any{[]any{[]any{1}}}}, map[string]any{"a": map[string]any{"b": map[string]any{"c": 1}}},
		map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{}}}}, map[string]any{"a\x00": 1},
		map[string]any{"a": []any{map[string]any{"b": "c\x00"}}}, []any{map[string]any{"a": 1}},
		map[string]any{"account_type": "ACCOUNT_TYPE_PRIVATE", "bank_account_info": map[string]any{"account_bank": "b", "account_name": "n", "account_number": "1"}},
		map[string]any{"id_doc_type": "IDENTIFICATION_TYPE_IDCARD", "identification_name": "x", "identification_no": "1"},
		map[string]any{"account_bank": "b", "account_name": "n", "account_number": "1"},
		map[string]any{"is_platform": true, "amount": 1}, map[string]any{"is_platform": true, "amount": 1, "summary": nil},
		map[string]any{"account_user_id": 1, "external_code": "x", "amount": 1},
		[]any{map[string]any{"is_platform": true, "amount": 7}}, []any{map[string]any{"account_user_id": nil, "is_platform": true, "amount": 7}},
	)
	return vs
}

// enums are every enumerated value of the command, from the schema files
// themselves so that a value added there is generated too.
func enums() []string {
	return []string{"BASIC", "OPERATION", "FEES", "BASIC_ACCOUNT", "OPERATE_ACCOUNT", "CONTRIBUTION_MERCHANT", "SERVICE_PROVIDER_MERCHANT",
		"OTHER_MERCHANT", "OTHER_MCH", "INDIVIDUAL", "ACCOUNT_TYPE_CORPORATE", "ACCOUNT_TYPE_PRIVATE",
		"IDENTIFICATION_TYPE_IDCARD", "IDENTIFICATION_TYPE_OVERSEA_PASSPORT", "IDENTIFICATION_TYPE_HONGKONG_PASSPORT",
		"IDENTIFICATION_TYPE_MACAO_PASSPORT", "IDENTIFICATION_TYPE_TAIWAN_PASSPORT", "IDENTIFICATION_TYPE_FOREIGN_RESIDENT",
		"IDENTIFICATION_TYPE_HONGKONG_MACAO_RESIDENT", "IDENTIFICATION_TYPE_TAIWAN_RESIDENT"}
}

// parse decodes a JSON object keeping numbers exact.
func parse(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return m
}

// set returns a copy of doc with the value at path replaced (or removed),
// creating missing objects on the way; ok is false when the path cannot be
// reached (an index past an array's end, a scalar on the way).
func set(doc any, path []any, v any) (any, bool) {
	if len(path) == 0 {
		return v, true
	}
	switch key := path[0].(type) {
	case string:
		var m map[string]any
		switch d := doc.(type) {
		case map[string]any:
			m = make(map[string]any, len(d))
			for k, x := range d {
				m[k] = x
			}
		case nil:
			if _, del := v.(deleteValue); del {
				return nil, false
			}
			m = map[string]any{}
		default:
			return nil, false
		}
		if len(path) == 1 {
			if _, del := v.(deleteValue); del {
				if _, ok := m[key]; !ok {
					return nil, false
				}
				delete(m, key)
				return m, true
			}
		}
		sub, ok := set(m[key], path[1:], v)
		if !ok {
			return nil, false
		}
		m[key] = sub
		return m, true
	case int:
		a, ok := doc.([]any)
		if !ok || key >= len(a) {
			return nil, false
		}
		a = slices.Clone(a)
		if len(path) == 1 {
			if _, del := v.(deleteValue); del {
				return slices.Delete(a, key, key+1), true
			}
		}
		sub, ok := set(a[key], path[1:], v)
		if !ok {
			return nil, false
		}
		a[key] = sub
		return a, true
	}
	return nil, false
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}

// generate builds the corpus: every base with every path set to every
// value, the payee rules' cross product, detail counts, and sums.
func generate(t testing.TB) []corpusCase {
	var cases []corpusCase
	add := func(name string, doc any) {
		cases = append(cases, corpusCase{name: name, value: marshal(t, doc)})
	}
	vals := values()
	bs := bases()
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range bs {
			if !yield(k) {
				return
			}
		}
	})
	for _, bn := range names {
		base := parse(t, bs[bn])
		add(bn, base)
		for _, p := range paths {
			for i, v := range vals {
				doc, ok := set(base, p, v)
				if !ok {
					continue
				}
				add(fmt.Sprintf("%s %v=#%d", bn, p, i), doc)
			}
		}
	}

	// The payee rules of the cancel channel, in every combination.
	cancel := parse(t, bs["cancel"])
	for _, pt := range []any{"CONTRIBUTION_MERCHANT", "SERVICE_PROVIDER_MERCHANT", "OTHER_MERCHANT", "OTHER_MCH", "INDIVIDUAL", "individual"} {
		for _, mch := range []any{deleteValue{}, nil, "", "1900000109", "1900000110", "x1"} {
			for _, at := range []any{"ACCOUNT_TYPE_CORPORATE", "ACCOUNT_TYPE_PRIVATE", ""} {
				for _, id := range []any{deleteValue{}, nil, map[string]any{"id_doc_type": "IDENTIFICATION_TYPE_IDCARD", "identification_name": "x", "identification_no": "1"}} {
					doc, _ := set(cancel, []any{"payee_type"}, pt)
					if d, ok := set(doc, []any{"payee_mchid"}, mch); ok {
						doc = d
					}
					doc, _ = set(doc, []any{"payee_info", "account_type"}, at)
					if d, ok := set(doc, []any{"payee_info", "identity_info"}, id); ok {
						doc = d
					}
					add(fmt.Sprintf("payee %v %v %v %v", pt, mch, at, id), doc)
				}
			}
		}
	}

	// Allinpay: detail counts around the limit, amounts around the sum and
	// the channel's limit, targets in every combination.
	allinpay := parse(t, bs["allinpay-one"])
	for _, n := range []int{0, 1, 2, 99, 100, 101} {
		details := make([]any, n)
		for i := range details {
			details[i] = map[string]any{"account_user_id": i + 1, "amount": 1}
		}
		doc, _ := set(allinpay, []any{"details"}, details)
		add(fmt.Sprintf("allinpay %d details", n), doc)
		for _, amount := range []any{nil, 0, n - 1, n, n + 1, -n} {
			d, _ := set(doc, []any{"amount"}, amount)
			add(fmt.Sprintf("allinpay %d details amount %v", n, amount), d)
		}
	}
	for _, amounts := range [][2]int64{{99_999_999_999_999, 0}, {99_999_999_999_998, 1}, {99_999_999_999_999, 1}, {50_000_000_000_000, 50_000_000_000_000}} {
		details := []any{map[string]any{"is_platform": true, "amount": amounts[0]}}
		if amounts[1] != 0 {
			details = append(details, map[string]any{"external_code": "e", "amount": amounts[1]})
		}
		doc, _ := set(allinpay, []any{"details"}, details)
		add(fmt.Sprintf("allinpay sum %v", amounts), doc)
	}
	for _, uid := range []any{deleteValue{}, nil, 0, 1} {
		for _, code := range []any{deleteValue{}, nil, "", "c"} {
			for _, plat := range []any{deleteValue{}, nil, false, true} {
				d := map[string]any{"amount": 1, "account_user_id": uid, "external_code": code, "is_platform": plat}
				for k, v := range d {
					if _, del := v.(deleteValue); del {
						delete(d, k)
					}
				}
				doc, _ := set(allinpay, []any{"details"}, []any{d})
				add(fmt.Sprintf("allinpay target %v %v %v", uid, code, plat), doc)
			}
		}
	}

	// Not objects at all, and objects without an identity.
	for _, raw := range []string{`[]`, `null`, `"x"`, `1`, `{}`, `{"channel":"wechatpay_platform"}`, `{"out_request_no":"A1"}`, `{"out_request_no":""}`, `{"out_request_no":1}`} {
		cases = append(cases, corpusCase{name: raw, value: []byte(raw)})
	}
	return cases
}
