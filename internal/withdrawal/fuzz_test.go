package withdrawal

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeValidate feeds arbitrary bytes through the intake's checks. The
// properties: nothing panics; every outcome is exactly one of dead letter,
// rejection or valid; a rejection keeps the key it was identified by; a valid
// command has a positive total within its channel's limit and hashes.
func FuzzDecodeValidate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/seed*.json")
	for _, s := range seeds {
		if raw, err := os.ReadFile(s); err == nil {
			f.Add(raw)
		}
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"out_request_no":"1"}`, `{"out_request_no":1}`,
		`{"channel":"allinpay_shopoint","out_request_no":"x","details":[{"is_platform":true,"amount":9223372036854775807},{"is_platform":true,"amount":9223372036854775807}]}`,
		`{"channel":"wechatpay_cancel","out_request_no":"1","proof_media_list":{"a":1e999}}`,
		`{"channel":"wechatpay_platform","out_request_no":"1","amount":1,"AMOUNT":2}`,
		`{"channel":"wechatpay_platform","out_request_no":"1","out_request_no":"2"}`,
		`{"channel":"wechatpay_platform","out_request_no":"1","remark":"\u0000\\u0000"}`,
		"{\"channel\":\"wechatpay_platform\",\"out_request_no\":\"1\",\"remark\":\"\xff\"}",
		`{"channel":"wechatpay_cancel","out_request_no":"1","additional_materials":{"a":[[[1]]]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cmd, err := Decode(raw)
		switch err.(type) {
		case *Undecodable:
			if cmd != nil {
				t.Fatal("dead letter with a command")
			}
			return
		case *Rejection:
			if cmd == nil || cmd.OutRequestNo == "" {
				t.Fatal("rejection without identity")
			}
			return
		case nil:
		default:
			t.Fatalf("unexpected error type %T", err)
		}
		// What is accepted is text every reader decodes alike.
		if !utf8.Valid(raw) || bytes.Contains(raw, []byte{0}) {
			t.Fatalf("accepted invalid UTF-8 or a NUL: %q", raw)
		}
		for _, s := range []string{cmd.OutRequestNo, cmd.Remark, cmd.SubMchID, cmd.PayeeMchID} {
			if strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("accepted a NUL in %q", s)
			}
		}
		if r := Validate(cmd); r != nil {
			return
		}
		total := cmd.TotalAmount()
		if total <= 0 || total > cmd.Channel.MaxAmountFen() {
			t.Fatalf("valid command with total %d", total)
		}
		if _, err := ParamsHash(cmd); err != nil {
			t.Fatalf("valid command does not hash: %v", err)
		}
	})
}
