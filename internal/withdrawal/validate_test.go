package withdrawal

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decodeAndValidate runs the intake's full check on raw bytes.
func decodeAndValidate(t *testing.T, raw []byte) (*Command, error) {
	t.Helper()
	cmd, err := Decode(raw)
	if err != nil {
		return cmd, err
	}
	if r := Validate(cmd); r != nil {
		return cmd, r
	}
	return cmd, nil
}

func TestSeedExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("testdata/seed*.json")
	if err != nil || len(files) != 4 {
		t.Fatalf("want 4 seed examples, got %v (%v)", files, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := decodeAndValidate(t, raw)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if cmd.Account != DefaultAccount {
			t.Errorf("%s: account %q, want default", f, cmd.Account)
		}
	}
}

// base returns a valid command of the channel as a JSON map to mutate.
func base(ch Channel) map[string]any {
	switch ch {
	case ChannelWeChatEcommerce:
		return map[string]any{"channel": string(ch), "out_request_no": "E0001", "sub_mchid": "1900000109", "amount": 100, "account_type": "BASIC"}
	case ChannelWeChatPlatform:
		return map[string]any{"channel": string(ch), "out_request_no": "P0001", "amount": 100, "account_type": "OPERATION"}
	case ChannelWeChatCancel:
		return map[string]any{
			"channel": string(ch), "out_request_no": "C0001", "sub_mchid": "1900000109", "amount": 101,
			"out_account_type": "BASIC_ACCOUNT", "payee_type": "OTHER_MERCHANT", "payee_mchid": "1900000110",
			"payee_info": map[string]any{
				"account_type":      "ACCOUNT_TYPE_CORPORATE",
				"bank_account_info": map[string]any{"account_bank": "工商银行", "account_name": "某某公司", "account_number": "6222020200112233445"},
			},
		}
	default:
		return map[string]any{"channel": string(ch), "out_request_no": "A-0001_x", "details": []any{map[string]any{"account_user_id": 7, "amount": 1}}}
	}
}

func TestValidationRules(t *testing.T) {
	payee := func(m map[string]any) map[string]any { return m["payee_info"].(map[string]any) }
	bank := func(m map[string]any) map[string]any { return payee(m)["bank_account_info"].(map[string]any) }
	detail := func(m map[string]any) map[string]any { return m["details"].([]any)[0].(map[string]any) }
	identity := map[string]any{"id_doc_type": "IDENTIFICATION_TYPE_IDCARD", "identification_name": "张三", "identification_no": "110101199003074477"}

	tests := []struct {
		name    string
		channel Channel
		mutate  func(m map[string]any)
		want    ReasonCode // "" = valid
		field   string
	}{
		// Valid variants.
		{"ecommerce base", ChannelWeChatEcommerce, nil, "", ""},
		{"ecommerce without account_type", ChannelWeChatEcommerce, func(m map[string]any) { delete(m, "account_type") }, "", ""},
		{"platform base", ChannelWeChatPlatform, nil, "", ""},
		{"platform FEES with memo", ChannelWeChatPlatform, func(m map[string]any) { m["account_type"] = "FEES"; m["bank_memo"] = strings.Repeat("提", 32) }, "", ""},
		{"cancel base", ChannelWeChatCancel, nil, "", ""},
		{"cancel individual", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_type"] = "INDIVIDUAL"
			delete(m, "payee_mchid")
			payee(m)["account_type"] = "ACCOUNT_TYPE_PRIVATE"
			payee(m)["identity_info"] = identity
		}, "", ""},
		{"cancel contribution", ChannelWeChatCancel, func(m map[string]any) { m["payee_type"] = "CONTRIBUTION_MERCHANT"; m["payee_mchid"] = "1900000109" }, "", ""},
		{"cancel at the 100万 limit", ChannelWeChatCancel, func(m map[string]any) { m["amount"] = 100_000_000 }, "", ""},
		{"allinpay base", ChannelAllinpayShopoint, nil, "", ""},
		{"allinpay amount equals sum", ChannelAllinpayShopoint, func(m map[string]any) { m["amount"] = 1 }, "", ""},
		{"allinpay account", ChannelAllinpayShopoint, func(m map[string]any) { m["account"] = "shop.cn-1" }, "", ""},

		// Decoding.
		{"wrong amount type", ChannelWeChatPlatform, func(m map[string]any) { m["amount"] = "100" }, ReasonInvalidFieldType, "amount"},
		{"fractional amount", ChannelWeChatPlatform, func(m map[string]any) { m["amount"] = 1.5 }, ReasonInvalidFieldType, "amount"},
		{"wrong channel type", ChannelWeChatPlatform, func(m map[string]any) { m["channel"] = 3 }, ReasonInvalidFieldType, "channel"},
		{"unknown field", ChannelWeChatPlatform, func(m map[string]any) { m["amout"] = 1 }, ReasonUnknownField, "amout"},
		{"proof list not an object", ChannelWeChatCancel, func(m map[string]any) { m["proof_media_list"] = []any{1} }, ReasonInvalidFieldType, "proof_media_list"},
		{"proof list null", ChannelWeChatCancel, func(m map[string]any) { m["proof_media_list"] = nil }, ReasonInvalidFieldType, "proof_media_list"},
		{"other casing", ChannelWeChatPlatform, func(m map[string]any) { m["Amount"] = 5; delete(m, "amount") }, ReasonUnknownField, "Amount"},
		{"duplicate inside payee_info", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_info"] = json.RawMessage(`{"account_type":"ACCOUNT_TYPE_CORPORATE","account_type":"ACCOUNT_TYPE_PRIVATE"}`)
		}, ReasonDuplicateField, "payee_info.account_type"},

		// Identity.
		{"unknown channel", ChannelWeChatPlatform, func(m map[string]any) { m["channel"] = "alipay" }, ReasonInvalidChannel, "channel"},
		{"missing channel", ChannelWeChatPlatform, func(m map[string]any) { delete(m, "channel") }, ReasonInvalidChannel, "channel"},
		{"bad account", ChannelWeChatPlatform, func(m map[string]any) { m["account"] = "a b" }, ReasonInvalidAccount, "account"},
		{"long account", ChannelWeChatPlatform, func(m map[string]any) { m["account"] = strings.Repeat("a", 65) }, ReasonInvalidAccount, "account"},
		{"wechat no too long", ChannelWeChatPlatform, func(m map[string]any) { m["out_request_no"] = strings.Repeat("1", 33) }, ReasonInvalidOutRequestNo, "out_request_no"},
		{"wechat no with dash", ChannelWeChatEcommerce, func(m map[string]any) { m["out_request_no"] = "E-1" }, ReasonInvalidOutRequestNo, "out_request_no"},
		{"cancel no with space", ChannelWeChatCancel, func(m map[string]any) { m["out_request_no"] = "C 1" }, ReasonInvalidOutRequestNo, "out_request_no"},
		{"allinpay no too long", ChannelAllinpayShopoint, func(m map[string]any) { m["out_request_no"] = strings.Repeat("1", 61) }, ReasonInvalidOutRequestNo, "out_request_no"},
		{"allinpay no with slash", ChannelAllinpayShopoint, func(m map[string]any) { m["out_request_no"] = "a/b" }, ReasonInvalidOutRequestNo, "out_request_no"},

		// Amounts.
		{"zero amount", ChannelWeChatPlatform, func(m map[string]any) { m["amount"] = 0 }, ReasonInvalidAmount, "amount"},
		{"missing amount", ChannelWeChatEcommerce, func(m map[string]any) { delete(m, "amount") }, ReasonInvalidAmount, "amount"},
		{"negative amount", ChannelWeChatCancel, func(m map[string]any) { m["amount"] = -1 }, ReasonInvalidAmount, "amount"},
		{"cancel over 100万", ChannelWeChatCancel, func(m map[string]any) { m["amount"] = 100_000_001 }, ReasonAmountOverLimit, "amount"},
		{"platform over our guard", ChannelWeChatPlatform, func(m map[string]any) { m["amount"] = 10_000_000_001 }, ReasonAmountOverLimit, "amount"},
		{"allinpay detail over limit", ChannelAllinpayShopoint, func(m map[string]any) { detail(m)["amount"] = 100_000_000_000_000 }, ReasonAmountOverLimit, "details[0].amount"},
		{"allinpay detail zero", ChannelAllinpayShopoint, func(m map[string]any) { detail(m)["amount"] = 0 }, ReasonInvalidAmount, "details[0].amount"},
		{"allinpay mismatch", ChannelAllinpayShopoint, func(m map[string]any) { m["amount"] = 2 }, ReasonAmountMismatch, "amount"},

		// Required, lengths, enums.
		{"ecommerce no sub_mchid", ChannelWeChatEcommerce, func(m map[string]any) { delete(m, "sub_mchid") }, ReasonFieldRequired, "sub_mchid"},
		{"ecommerce long sub_mchid", ChannelWeChatEcommerce, func(m map[string]any) { m["sub_mchid"] = strings.Repeat("1", 33) }, ReasonFieldTooLong, "sub_mchid"},
		{"ecommerce sub_mchid with a letter", ChannelWeChatEcommerce, func(m map[string]any) { m["sub_mchid"] = "19000001O9" }, ReasonInvalidMchID, "sub_mchid"},
		{"ecommerce sub_mchid with a space", ChannelWeChatEcommerce, func(m map[string]any) { m["sub_mchid"] = "1900000109 " }, ReasonInvalidMchID, "sub_mchid"},
		{"cancel sub_mchid with full-width digits", ChannelWeChatCancel, func(m map[string]any) { m["sub_mchid"] = "１９００" }, ReasonInvalidMchID, "sub_mchid"},
		{"cancel payee_mchid with a dash", ChannelWeChatCancel, func(m map[string]any) { m["payee_mchid"] = "1900-0110" }, ReasonInvalidMchID, "payee_mchid"},
		{"cancel payee_mchid of a contribution with a letter", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_type"] = "CONTRIBUTION_MERCHANT"
			m["sub_mchid"], m["payee_mchid"] = "19000001a9", "19000001a9"
		}, ReasonInvalidMchID, "sub_mchid"},
		{"ecommerce long remark", ChannelWeChatEcommerce, func(m map[string]any) { m["remark"] = strings.Repeat("备", 57) }, ReasonFieldTooLong, "remark"},
		{"ecommerce bad account_type", ChannelWeChatEcommerce, func(m map[string]any) { m["account_type"] = "basic" }, ReasonInvalidEnum, "account_type"},
		{"platform no account_type", ChannelWeChatPlatform, func(m map[string]any) { delete(m, "account_type") }, ReasonFieldRequired, "account_type"},
		{"platform long remark", ChannelWeChatPlatform, func(m map[string]any) { m["remark"] = strings.Repeat("r", 256) }, ReasonFieldTooLong, "remark"},
		{"platform long bank_memo", ChannelWeChatPlatform, func(m map[string]any) { m["bank_memo"] = strings.Repeat("m", 33) }, ReasonFieldTooLong, "bank_memo"},
		{"cancel no out_account_type", ChannelWeChatCancel, func(m map[string]any) { delete(m, "out_account_type") }, ReasonFieldRequired, "out_account_type"},
		{"cancel bad out_account_type", ChannelWeChatCancel, func(m map[string]any) { m["out_account_type"] = "BASIC" }, ReasonInvalidEnum, "out_account_type"},
		{"cancel no payee_type", ChannelWeChatCancel, func(m map[string]any) { delete(m, "payee_type") }, ReasonFieldRequired, "payee_type"},
		{"cancel bad payee_type", ChannelWeChatCancel, func(m map[string]any) { m["payee_type"] = "FRIEND" }, ReasonInvalidEnum, "payee_type"},
		{"cancel long remark", ChannelWeChatCancel, func(m map[string]any) { m["remark"] = strings.Repeat("r", 1025) }, ReasonFieldTooLong, "remark"},
		{"cancel no payee_info", ChannelWeChatCancel, func(m map[string]any) { delete(m, "payee_info") }, ReasonFieldRequired, "payee_info"},
		{"cancel no payee account type", ChannelWeChatCancel, func(m map[string]any) { delete(payee(m), "account_type") }, ReasonFieldRequired, "payee_info.account_type"},
		{"cancel bad payee account type", ChannelWeChatCancel, func(m map[string]any) { payee(m)["account_type"] = "SAVINGS" }, ReasonInvalidEnum, "payee_info.account_type"},
		{"cancel no bank info", ChannelWeChatCancel, func(m map[string]any) { delete(payee(m), "bank_account_info") }, ReasonFieldRequired, "payee_info.bank_account_info"},
		{"cancel no account number", ChannelWeChatCancel, func(m map[string]any) { delete(bank(m), "account_number") }, ReasonFieldRequired, "payee_info.bank_account_info.account_number"},
		{"cancel no account name", ChannelWeChatCancel, func(m map[string]any) { delete(bank(m), "account_name") }, ReasonFieldRequired, "payee_info.bank_account_info.account_name"},
		{"cancel account number too long to encrypt", ChannelWeChatCancel, func(m map[string]any) { bank(m)["account_number"] = strings.Repeat("6", 215) }, ReasonFieldTooLong, "payee_info.bank_account_info.account_number"},
		{"cancel name too long to encrypt", ChannelWeChatCancel, func(m map[string]any) { bank(m)["account_name"] = strings.Repeat("名", 72) }, ReasonFieldTooLong, "payee_info.bank_account_info.account_name"},
		{"cancel no bank", ChannelWeChatCancel, func(m map[string]any) { delete(bank(m), "account_bank") }, ReasonFieldRequired, "payee_info.bank_account_info.account_bank"},
		{"cancel bad id type", ChannelWeChatCancel, func(m map[string]any) {
			id := map[string]any{"id_doc_type": "PASSPORT", "identification_name": "x", "identification_no": "y"}
			payee(m)["identity_info"] = id
		}, ReasonInvalidEnum, "payee_info.identity_info.id_doc_type"},

		// Payee rules of the cancel channel.
		{"merchant payee without payee_mchid", ChannelWeChatCancel, func(m map[string]any) { delete(m, "payee_mchid") }, ReasonPayeeMchIDRequired, "payee_mchid"},
		{"individual with payee_mchid", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_type"] = "INDIVIDUAL"
			payee(m)["account_type"] = "ACCOUNT_TYPE_PRIVATE"
		}, ReasonPayeeMchIDNotAllowed, "payee_mchid"},
		{"contribution to another merchant", ChannelWeChatCancel, func(m map[string]any) { m["payee_type"] = "CONTRIBUTION_MERCHANT" }, ReasonPayeeMchIDMismatch, "payee_mchid"},
		{"individual with corporate account", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_type"] = "INDIVIDUAL"
			delete(m, "payee_mchid")
		}, ReasonPayeeAccountTypeNotAllowed, "payee_info.account_type"},
		{"platform payee with private account", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_type"] = "SERVICE_PROVIDER_MERCHANT"
			payee(m)["account_type"] = "ACCOUNT_TYPE_PRIVATE"
		}, ReasonPayeeAccountTypeNotAllowed, "payee_info.account_type"},
		{"individual without identity", ChannelWeChatCancel, func(m map[string]any) {
			m["payee_type"] = "INDIVIDUAL"
			delete(m, "payee_mchid")
			payee(m)["account_type"] = "ACCOUNT_TYPE_PRIVATE"
		}, ReasonFieldRequired, "payee_info.identity_info"},

		// Allinpay details.
		{"allinpay no details", ChannelAllinpayShopoint, func(m map[string]any) { delete(m, "details") }, ReasonDetailsRequired, "details"},
		{"allinpay too many details", ChannelAllinpayShopoint, func(m map[string]any) {
			var ds []any
			for range 101 {
				ds = append(ds, map[string]any{"is_platform": true, "amount": 1})
			}
			m["details"] = ds
		}, ReasonDetailsRequired, "details"},
		{"allinpay no target", ChannelAllinpayShopoint, func(m map[string]any) { delete(detail(m), "account_user_id") }, ReasonDetailTargetInvalid, "details[0]"},
		{"allinpay two targets", ChannelAllinpayShopoint, func(m map[string]any) { detail(m)["is_platform"] = true }, ReasonDetailTargetInvalid, "details[0]"},
		{"allinpay user id too big", ChannelAllinpayShopoint, func(m map[string]any) { detail(m)["account_user_id"] = 100_000_000_000 }, ReasonInvalidFieldType, "details[0].account_user_id"},
		{"allinpay long external code", ChannelAllinpayShopoint, func(m map[string]any) {
			delete(detail(m), "account_user_id")
			detail(m)["external_code"] = strings.Repeat("x", 31)
		}, ReasonFieldTooLong, "details[0].external_code"},
		{"allinpay long summary", ChannelAllinpayShopoint, func(m map[string]any) { detail(m)["summary"] = strings.Repeat("摘", 51) }, ReasonFieldTooLong, "details[0].summary"},

		// Fields of another channel.
		{"platform with sub_mchid", ChannelWeChatPlatform, func(m map[string]any) { m["sub_mchid"] = "1" }, ReasonFieldNotAllowed, "sub_mchid"},
		{"ecommerce with details", ChannelWeChatEcommerce, func(m map[string]any) { m["details"] = []any{map[string]any{"is_platform": true, "amount": 1}} }, ReasonFieldNotAllowed, "details"},
		{"allinpay with remark", ChannelAllinpayShopoint, func(m map[string]any) { m["remark"] = "x" }, ReasonFieldNotAllowed, "remark"},
		{"cancel with bank_memo", ChannelWeChatCancel, func(m map[string]any) { m["bank_memo"] = "x" }, ReasonFieldNotAllowed, "bank_memo"},
	}
	seen := map[ReasonCode]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base(tt.channel)
			if tt.mutate != nil {
				tt.mutate(m)
			}
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeAndValidate(t, raw)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			r, ok := err.(*Rejection)
			if !ok {
				t.Fatalf("want rejection %s, got %v", tt.want, err)
			}
			if r.Code != tt.want || r.Field != tt.field {
				t.Fatalf("got %s on %q (%s), want %s on %q", r.Code, r.Field, r.Reason, tt.want, tt.field)
			}
			seen[r.Code] = true
		})
	}
	// Every reason code but the two decided outside validation (account
	// configuration and conflicts are the intake's) must be covered above.
	for _, code := range ReasonCodes {
		if code == ReasonAccountNotConfigured || code == ReasonRequestConflict {
			continue
		}
		if !seen[code] {
			t.Errorf("reason code %s has no test case", code)
		}
	}
}

func TestDecodeUndecodable(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":          "",
		"blank":          "  \n",
		"garbage":        "\x00\xff garbage",
		"array":          `[{"out_request_no":"1"}]`,
		"null":           "null",
		"string":         `"hello"`,
		"no key":         `{"channel":"wechatpay_platform","amount":1}`,
		"empty key":      `{"out_request_no":""}`,
		"key wrong type": `{"out_request_no":123}`,
		"truncated":      `{"out_request_no":"1"`,
		"too large":      `{"out_request_no":"1","remark":"` + strings.Repeat("x", MaxCommandBytes) + `"}`,
		"two objects":    `{"out_request_no":"1"}{"out_request_no":"2"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(raw))
			if _, ok := err.(*Undecodable); !ok {
				t.Fatalf("want *Undecodable, got %T %v", err, err)
			}
		})
	}
}

func TestRejectionKeepsIdentity(t *testing.T) {
	cmd, err := Decode([]byte(`{"channel":"wechatpay_platform","account":"acme","out_request_no":"X1","amount":"1"}`))
	if _, ok := err.(*Rejection); !ok {
		t.Fatalf("want rejection, got %v", err)
	}
	if cmd == nil || cmd.Key() != (Key{ChannelWeChatPlatform, "acme", "X1"}) {
		t.Fatalf("identity lost: %+v", cmd)
	}
}

func TestParamsHash(t *testing.T) {
	hash := func(raw string) string {
		t.Helper()
		cmd, err := Decode([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParamsHash(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := hash(`{"channel":"wechatpay_platform","out_request_no":"1","amount":1,"account_type":"BASIC"}`)
	if b := hash(`{ "account_type":"BASIC", "amount":1, "account":"default", "out_request_no":"1", "channel":"wechatpay_platform"}`); a != b {
		t.Error("field order, white space or the default account changed the hash")
	}
	if b := hash(`{"channel":"wechatpay_platform","out_request_no":"1","amount":2,"account_type":"BASIC"}`); a == b {
		t.Error("a different amount kept the hash")
	}
	c1 := hash(`{"channel":"wechatpay_cancel","out_request_no":"1","proof_media_list":{"a":1,"b":[1,2]}}`)
	c2 := hash(`{"channel":"wechatpay_cancel","out_request_no":"1","proof_media_list":{"b":[1,2], "a":1}}`)
	if c1 != c2 {
		t.Error("key order inside proof_media_list changed the hash")
	}
	if c3 := hash(`{"channel":"wechatpay_cancel","out_request_no":"1","proof_media_list":{"b":[2,1],"a":1}}`); c3 == c1 {
		t.Error("a different proof_media_list kept the hash")
	}
}

func TestStateMachine(t *testing.T) {
	allowed := [][2]State{
		{StateAccepted, StateSubmitting}, {StateSubmitting, StateSubmitted}, {StateSubmitting, StateUnknown},
		{StateSubmitting, StateFailed}, {StateUnknown, StateSubmitted}, {StateSubmitted, StateSucceeded},
		{StateSucceeded, StateReversed}, {StateUnknown, StateSubmitting},
	}
	for _, p := range allowed {
		if !CanTransition(p[0], p[1]) {
			t.Errorf("%s -> %s should be allowed", p[0], p[1])
		}
	}
	forbidden := [][2]State{
		{StateAccepted, StateSucceeded}, {StateFailed, StateSubmitting}, {StateReversed, StateSucceeded},
		{StateSucceeded, StateFailed}, {StateAccepted, StateRejected}, {StateSubmitted, StateAccepted},
	}
	for _, p := range forbidden {
		if CanTransition(p[0], p[1]) {
			t.Errorf("%s -> %s should be forbidden", p[0], p[1])
		}
	}
	for _, s := range []State{StateAccepted, StateSubmitted, StateUnknown, StateSucceeded, StateFailed, StateReversed, StateRejected} {
		if s.EventType() == "" {
			t.Errorf("%s has no event type", s)
		}
	}
	if StateSubmitting.Versioned() || !StateSubmitted.Versioned() {
		t.Error("only the claim is unversioned")
	}
}

func TestRejectionEventIDDeterministic(t *testing.T) {
	k := Key{ChannelWeChatPlatform, "default", "1"}
	if RejectionEventID(k, "h", ReasonInvalidAmount) != RejectionEventID(k, "h", ReasonInvalidAmount) {
		t.Error("same rejection, different ids")
	}
	if RejectionEventID(k, "h", ReasonInvalidAmount) == RejectionEventID(k, "h2", ReasonInvalidAmount) {
		t.Error("different parameters, same id")
	}
}
