package withdrawal

import (
	"fmt"
	"testing"
)

// benchCommands are commands shaped like the intake benchmark's traffic
// (internal/bench): one valid command per channel and one rejected at
// decoding, which takes the identification path as well.
var benchCommands = []struct {
	name  string
	value string
}{
	{"ecommerce", `{"channel":"wechatpay_ecommerce","sub_mchid":"1900000977","out_request_no":"Wrun000000001","amount":12345,"remark":"交易提现","bank_memo":"xx平台提现","account_type":"BASIC"}`},
	{"platform", `{"channel":"wechatpay_platform","account":"default","out_request_no":"Wrun000000010","amount":12345,"remark":"交易提现","bank_memo":"xx平台提现","account_type":"BASIC"}`},
	{"allinpay", `{"channel":"allinpay_shopoint","out_request_no":"Wrun000000015","details":[{"account_user_id":16,"amount":12345,"summary":"结算"},{"external_code":"m15","amount":100},{"is_platform":true,"amount":1}]}`},
	{"cancel", `{"channel":"wechatpay_cancel","sub_mchid":"1900000109","out_request_no":"Wrun000000019","amount":12345,"out_account_type":"BASIC_ACCOUNT","payee_type":"OTHER_MCH","payee_mchid":"1900000109","remark":"特殊理由","payee_info":{"account_type":"ACCOUNT_TYPE_CORPORATE","bank_account_info":{"account_bank":"工商银行","account_name":"某某商贸有限公司","account_number":"6222020200112233445","bank_branch_id":"402713354941"}},"proof_media_list":{"proof_payee_media":[{"proof_media":"jTpGmxUX3FBWVQ5NJTZvlKX_gdU4cRz7z5NxpnFuAxhBTEO_PvWkfSCJ3zVIn001D8daLC-ehEuo0BJqRTvDujqhThn4ReFxikqJ5YW6zFQ","proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"}]}}`},
	{"rejected", `{"channel":"wechatpay_platform","out_request_no":"Xrun000000011","amount":"12345","account_type":"BASIC"}`},
}

// BenchmarkDecode measures Decode per command shape, and on the intake
// benchmark's mix of channels (50% e-commerce, 25% platform, 20% Allinpay,
// 5% cancel).
func BenchmarkDecode(b *testing.B) {
	for _, c := range benchCommands {
		value := []byte(c.value)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(value); (err == nil) != (c.name != "rejected") {
					b.Fatal(err)
				}
			}
		})
	}
	var mix [][]byte
	for i := range 20 {
		var name string
		switch {
		case i < 10:
			name = "ecommerce"
		case i < 15:
			name = "platform"
		case i < 19:
			name = "allinpay"
		default:
			name = "cancel"
		}
		for _, c := range benchCommands {
			if c.name == name {
				mix = append(mix, []byte(c.value))
			}
		}
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := Decode(mix[i%len(mix)]); err != nil {
				b.Fatal(fmt.Sprint(i, err))
			}
			i++
		}
	})
}
