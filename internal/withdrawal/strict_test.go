package withdrawal

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// platform is a valid wechatpay_platform command with %s where more members
// go.
const platform = `{"channel":"wechatpay_platform","out_request_no":"P0001","amount":100,"account_type":"BASIC"%s}`

// cancelCmd is a valid wechatpay_cancel command with placeholders for more
// members: PAYEE in payee_info, BANK in bank_account_info, PROOF in
// proof_media_list, TOP in the command itself.
const cancelCmd = `{"channel":"wechatpay_cancel","out_request_no":"C0001","sub_mchid":"1900000109","amount":101,` +
	`"out_account_type":"BASIC_ACCOUNT","payee_type":"OTHER_MERCHANT","payee_mchid":"1900000110",` +
	`"payee_info":{"account_type":"ACCOUNT_TYPE_CORPORATE"PAYEE,"bank_account_info":{"account_bank":"工商银行","account_name":"某某公司","account_number":"6222020200112233445"BANK}},` +
	`"proof_media_list":{"proof_payee_media":[{"proof_media":"m1","proof_media_type":"T1"}]PROOF}TOP}`

func cancelWith(top, payee, bank, proof string) string {
	return strings.NewReplacer("TOP", top, "PAYEE", payee, "BANK", bank, "PROOF", proof).Replace(cancelCmd)
}

func allinpayWith(detail string) string {
	return `{"channel":"allinpay_shopoint","out_request_no":"A1","details":[{"is_platform":true,"amount":1},{"external_code":"x","amount":2` + detail + `}]}`
}

// wantRejection decodes and validates raw and checks the outcome is the
// rejection code on field, keyed by out_request_no.
func wantRejection(t *testing.T, raw string, code ReasonCode, field, outRequestNo string) *Command {
	t.Helper()
	cmd, err := decodeAndValidate(t, []byte(raw))
	var r *Rejection
	if !errors.As(err, &r) {
		t.Fatalf("want rejection %s on %q, got %v (command %+v)", code, field, err, cmd)
	}
	if r.Code != code || r.Field != field {
		t.Fatalf("got %s on %q (%s), want %s on %q", r.Code, r.Field, r.Reason, code, field)
	}
	if cmd == nil || cmd.OutRequestNo != outRequestNo {
		t.Fatalf("rejection keyed by %+v, want out_request_no %q", cmd, outRequestNo)
	}
	return cmd
}

func wantDeadLetter(t *testing.T, raw string) {
	t.Helper()
	cmd, err := Decode([]byte(raw))
	var u *Undecodable
	if !errors.As(err, &u) || cmd != nil {
		t.Fatalf("want a dead letter, got %v (command %+v)", err, cmd)
	}
}

func TestDecodeMatchesNamesExactly(t *testing.T) {
	for _, tt := range []struct {
		name, raw, field string
	}{
		{"other casing after the field", fmtCmd(platform, `,"AMOUNT":888`), "AMOUNT"},
		{"other casing alone", `{"channel":"wechatpay_platform","out_request_no":"P0001","Amount":555,"account_type":"BASIC"}`, "Amount"},
		{"out_request_no in other casing", fmtCmd(platform, `,"Out_Request_No":"B"`), "Out_Request_No"},
		// Unicode simple folding maps U+212A KELVIN SIGN to k and U+017F
		// LATIN SMALL LETTER LONG S to s. A name that is not plain ASCII
		// is not repeated in the rejection: the field is its object's.
		{"kelvin sign", fmtCmd(platform, `,"remar`+"\u212a"+`":"x"`), ""},
		{"long s", `{"channel":"wechatpay_ecommerce","out_request_no":"E1","amount":1,"` + "\u017f" + `ub_mchid":"1900000109"}`, ""},
		{"nested other casing", cancelWith("", `,"Account_Type":"ACCOUNT_TYPE_PRIVATE"`, "", ""), "payee_info.Account_Type"},
		{"nested bank other casing", cancelWith("", "", `,"Account_Number":"1"`, ""), "payee_info.bank_account_info.Account_Number"},
		{"detail other casing", allinpayWith(`,"Amount":5`), "details[1].Amount"},
		{"nested kelvin sign", cancelWith("", "", `,"account_ban`+"\u212a"+`":"x"`, ""), "payee_info.bank_account_info"},
		{"digits as a name", fmtCmd(platform, `,"6222020200112233445":1`), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "P0001"
			switch {
			case strings.Contains(tt.raw, "wechatpay_cancel"):
				id = "C0001"
			case strings.Contains(tt.raw, "allinpay"):
				id = "A1"
			case strings.Contains(tt.raw, "wechatpay_ecommerce"):
				id = "E1"
			}
			wantRejection(t, tt.raw, ReasonUnknownField, tt.field, id)
		})
	}
}

func TestDecodeRefusesDuplicateNames(t *testing.T) {
	for _, tt := range []struct {
		name, raw, field, id string
	}{
		{"amount twice", fmtCmd(platform, `,"amount":888`), "amount", "P0001"},
		{"same out_request_no twice", fmtCmd(platform, `,"out_request_no":"P0001"`), "out_request_no", "P0001"},
		{"channel twice", fmtCmd(platform, `,"channel":"wechatpay_ecommerce"`), "channel", "P0001"},
		{"payee field twice", cancelWith("", `,"account_type":"ACCOUNT_TYPE_PRIVATE"`, "", ""), "payee_info.account_type", "C0001"},
		{"account number twice", cancelWith("", "", `,"account_number":"6222020200119999999"`, ""), "payee_info.bank_account_info.account_number", "C0001"},
		{"payee_info twice", cancelWith(`,"payee_info":{}`, "", "", ""), "payee_info", "C0001"},
		{"inside proof_media_list", cancelWith("", "", "", `,"proof_payee_media":[]`), "proof_media_list", "C0001"},
		{"deep inside proof_media_list", cancelWith("", "", "", `,"x":[{"a":1,"a":2}]`), "proof_media_list", "C0001"},
		{"detail amount twice", allinpayWith(`,"amount":3`), "details[1].amount", "A1"},
		{"remark twice", fmtCmd(platform, `,"remark":"a","remark":"b"`), "remark", "P0001"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantRejection(t, tt.raw, ReasonDuplicateField, tt.field, tt.id)
		})
	}
	// The idempotency key itself is ambiguous: no rejection can name the
	// command without choosing one, so the message is dead-lettered.
	wantDeadLetter(t, fmtCmd(platform, `,"out_request_no":"B"`))
	wantDeadLetter(t, fmtCmd(platform, `,"out_request_no":7`))
	wantDeadLetter(t, `{"out_request_no":"A","channel":"wechatpay_platform","out_request_no":"B"}`)
}

func TestIdentifyIsExact(t *testing.T) {
	// Only other casings of out_request_no: nothing identifies the command.
	wantDeadLetter(t, `{"channel":"wechatpay_platform","Out_Request_No":"B","amount":1}`)
	wantDeadLetter(t, `{"channel":"wechatpay_platform","OUT_REQUEST_NO":"B","amount":1}`)
	// The exact name wins whatever the order; the other casing is what the
	// rejection is about.
	cmd := wantRejection(t, `{"Out_Request_No":"B","channel":"wechatpay_platform","out_request_no":"A","amount":1}`, ReasonUnknownField, "Out_Request_No", "A")
	if cmd.Channel != ChannelWeChatPlatform || cmd.Account != DefaultAccount {
		t.Errorf("identity %+v", cmd.Key())
	}
	cmd = wantRejection(t, `{"CHANNEL":"allinpay_shopoint","channel":"wechatpay_platform","ACCOUNT":"x","out_request_no":"A"}`, ReasonUnknownField, "CHANNEL", "A")
	if cmd.Key() != (Key{ChannelWeChatPlatform, DefaultAccount, "A"}) {
		t.Errorf("identity %+v", cmd.Key())
	}
	// An ambiguous channel or account is not guessed.
	cmd = wantRejection(t, `{"channel":"wechatpay_platform","out_request_no":"A","channel":"allinpay_shopoint"}`, ReasonDuplicateField, "channel", "A")
	if cmd.Channel != "" {
		t.Errorf("channel %q chosen from two", cmd.Channel)
	}
	cmd = wantRejection(t, `{"account":"a1","out_request_no":"A","account":"a2"}`, ReasonDuplicateField, "account", "A")
	if cmd.Account == "a1" || cmd.Account == "a2" {
		t.Errorf("account %q chosen from two", cmd.Account)
	}
}

func TestDecodeRefusesBadText(t *testing.T) {
	for _, tt := range []struct {
		name, raw, field, id string
	}{
		{"invalid UTF-8 in remark", fmtCmd(platform, `,"remark":"a`+"\xff"+`b"`), "remark", "P0001"},
		{"truncated UTF-8 sequence", fmtCmd(platform, `,"remark":"`+"\xe6\x8f"+`"`), "remark", "P0001"},
		{"lone surrogate escape", fmtCmd(platform, `,"remark":"a\ud800b"`), "remark", "P0001"},
		{"invalid UTF-8 in a payee name", cancelWith("", "", `,"bank_name":"`+"\xc0\xaf"+`"`, ""), "payee_info.bank_account_info.bank_name", "C0001"},
		{"invalid UTF-8 in proof_media_list", cancelWith("", "", "", `,"x":["`+"\xff"+`"]`), "proof_media_list", "C0001"},
		{"invalid UTF-8 in a detail", allinpayWith(`,"summary":"` + "\xff" + `"`), "details[1].summary", "A1"},
		{"NUL escape in remark", fmtCmd(platform, `,"remark":"a\u0000b"`), "remark", "P0001"},
		{"NUL escape in a payee number", cancelWith("", "", `,"bank_branch_id":"1\u0000"`, ""), "payee_info.bank_account_info.bank_branch_id", "C0001"},
		{"NUL escape in proof_media_list", cancelWith("", "", "", `,"x":{"y":"\u0000"}`), "proof_media_list", "C0001"},
		{"NUL escape in a free-form name", cancelWith("", "", "", `,"x\u0000":1`), "proof_media_list", "C0001"},
		{"NUL escape in a detail", allinpayWith(`,"summary":"\u0000"`), "details[1].summary", "A1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantRejection(t, tt.raw, ReasonInvalidFieldType, tt.field, tt.id)
		})
	}
	// An escaped backslash before u0000 is the text \u0000, not a NUL.
	if _, err := decodeAndValidate(t, []byte(fmtCmd(platform, `,"remark":"a\\u0000"`))); err != nil {
		t.Errorf("the text \\u0000 refused: %v", err)
	}
	// A raw NUL or other control character in a string is not JSON at
	// all (RFC 8259 requires them escaped): a dead letter.
	wantDeadLetter(t, fmtCmd(platform, `,"remark":"a`+"\x00"+`b"`))
	// Invalid UTF-8 in the idempotency key cannot be answered with a
	// rejection the sender could match: a dead letter.
	wantDeadLetter(t, `{"channel":"wechatpay_platform","out_request_no":"P`+"\xff"+`","amount":1}`)
	// Replacing invalid bytes with U+FFFD would make these two values one
	// command with one hash: both are refused.
	for _, b := range []string{"\xfe", "\xff"} {
		if _, err := Decode([]byte(fmtCmd(platform, `,"remark":"`+b+`"`))); err == nil {
			t.Errorf("remark %q accepted", b)
		}
	}
}

func TestDecodeBoundsFreeFormDepth(t *testing.T) {
	nested := func(depth int) string { // depth levels, the outermost an object
		return strings.Repeat(`{"a":[`, depth/2) + strings.Repeat("{}", depth%2) + strings.Repeat(`]}`, depth/2)
	}
	for depth := 1; depth <= MaxFreeFormDepth; depth++ {
		raw := `{"channel":"wechatpay_cancel","out_request_no":"C1","additional_materials":` + nested(depth) + `}`
		if _, err := Decode([]byte(raw)); err != nil {
			t.Errorf("depth %d refused: %v", depth, err)
		}
	}
	for _, depth := range []int{MaxFreeFormDepth + 1, MaxFreeFormDepth + 2, 9000} {
		for _, field := range []string{"proof_media_list", "additional_materials"} {
			raw := `{"channel":"wechatpay_cancel","out_request_no":"C1","` + field + `":` + nested(depth) + `}`
			if len(raw) > MaxCommandBytes {
				t.Fatalf("depth %d does not fit a command", depth)
			}
			cmd, err := Decode([]byte(raw))
			var r *Rejection
			if !errors.As(err, &r) || r.Code != ReasonInvalidFieldType || r.Field != field || cmd == nil || cmd.OutRequestNo != "C1" {
				t.Errorf("%s at depth %d: got %v", field, depth, err)
			}
		}
	}
	// The provider's own shapes fit.
	wantDepth := map[string]int{"proof_media_list": 3, "additional_materials": 2}
	for field, depth := range wantDepth {
		if depth > MaxFreeFormDepth {
			t.Errorf("%s of the provider's example is %d deep, over MaxFreeFormDepth", field, depth)
		}
	}
}

func fmtCmd(template, more string) string { return strings.Replace(template, "%s", more, 1) }

// TestParamsHashUnchangedByDecoder pins the parameters hash of the seed
// examples and the benchmark's commands. A stored row keeps its hash for
// ever and a redelivery is compared with it, so how a valid command is
// decoded must never change its hash.
func TestParamsHashUnchangedByDecoder(t *testing.T) {
	want := map[string]string{
		"testdata/seed000_ecommerce.json": "ff21b081532c07ab4d9beee2390238100f0d98be62b3f2478244d042c39f24ab",
		"testdata/seed001_platform.json":  "ed44d400991f921f13b6b5fa7944028f0624f38d52cbe3fac4247be3b835b2aa",
		"testdata/seed002_cancel.json":    "a0fb2c24a4cc5fc599d2d1df81926a9efac62ed66b11556703a55df4285862ce",
		"testdata/seed004_allinpay.json":  "57e1f61cccc918250c62dd4b08d8d7ba812fce92659a9f37c99c0a26744b9fbc",
		"ecommerce":                       "973daf619cc3e5ee6b9c3d876e43f2367aa3a94709c96acce987983e2fb4c1fd",
		"platform":                        "92dc02f68257ced9908710b667e812617346587f84cbfe5abc996f7902ff261c",
		"allinpay":                        "c5117321923422600b19e24d2ea0850e346407eabce8811dbeef49a6fc711324",
		"cancel":                          "ee60d042f2d100389290352efacf6c3924c9a70c11feec06f2b61525f966ee01",
	}
	values := map[string][]byte{}
	for _, c := range benchCommands {
		values[c.name] = []byte(c.value)
	}
	for name, hash := range want {
		raw, ok := values[name]
		if !ok {
			var err error
			if raw, err = os.ReadFile(name); err != nil {
				t.Fatal(err)
			}
		}
		cmd, err := Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := ParamsHash(cmd); err != nil || got != hash {
			t.Errorf("%s: hash %s (%v), want %s", name, got, err, hash)
		}
	}
}
