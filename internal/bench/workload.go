// Package bench generates withdrawal-command workloads for the intake
// benchmark (cmd/bench) and the consumer's system tests, and measures a
// naive one-transaction-per-message consumer to compare the intake with.
package bench

import (
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"
)

// cancelTemplate is a valid wechatpay_cancel command (seed 002's shape,
// payee fields in plaintext as the command contract carries them) with %s for out_request_no and
// %d for the amount.
var cancelTemplate = strings.Join(strings.Fields(`{"channel":"wechatpay_cancel","sub_mchid":"1900000109",
"out_request_no":"%s","amount":%d,"out_account_type":"BASIC_ACCOUNT","payee_type":"OTHER_MCH",
"payee_mchid":"1900000109","remark":"特殊理由",
"payee_info":{"account_type":"ACCOUNT_TYPE_CORPORATE","bank_account_info":{"account_bank":"工商银行",
"account_name":"某某商贸有限公司",
"account_number":"6222020200112233445",
"bank_branch_id":"402713354941"}},
"proof_media_list":{"proof_payee_media":[{"proof_media":"jTpGmxUX3FBWVQ5NJTZvlKX_gdU4cRz7z5NxpnFuAxhBTEO_PvWkfSCJ3zVIn001D8daLC-ehEuo0BJqRTvDujqhThn4ReFxikqJ5YW6zFQ",
"proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"}]}}`), "")

// OutRequestNo is the out_request_no of command i of a run: letters and
// digits only, valid for every channel.
func OutRequestNo(run string, i int) string { return fmt.Sprintf("W%s%09d", run, i) }

// Valid is command i of a run, always valid, keyed by its out_request_no as
// upstream does. The channels mix like production traffic: 50%
// wechatpay_ecommerce, 25% wechatpay_platform, 20% allinpay_shopoint, 5%
// wechatpay_cancel (the one with sealed payee data).
func Valid(run string, i int) kafka.Message {
	no := OutRequestNo(run, i)
	amount := 100 + i%100_000
	var v string
	switch i % 20 {
	case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9:
		v = fmt.Sprintf(`{"channel":"wechatpay_ecommerce","sub_mchid":"19000%05d","out_request_no":%q,"amount":%d,"remark":"交易提现","bank_memo":"xx平台提现","account_type":"BASIC"}`, i%977, no, amount)
	case 10, 11, 12, 13, 14:
		v = fmt.Sprintf(`{"channel":"wechatpay_platform","account":"default","out_request_no":%q,"amount":%d,"remark":"交易提现","bank_memo":"xx平台提现","account_type":"BASIC"}`, no, amount)
	case 15, 16, 17, 18:
		v = fmt.Sprintf(`{"channel":"allinpay_shopoint","out_request_no":%q,"details":[{"account_user_id":%d,"amount":%d,"summary":"结算"},{"external_code":"m%d","amount":100},{"is_platform":true,"amount":1}]}`, no, 1+i%99_991, amount, i%5000)
	default:
		v = fmt.Sprintf(cancelTemplate, no, amount)
	}
	return kafka.Message{Key: []byte(no), Value: []byte(v)}
}

// Expect is what a workload must leave behind.
type Expect struct {
	Produced     int // messages
	Accepted     int // withdrawals (one accepted event each)
	Duplicates   int // identical redeliveries: no row, no event
	Rejected     int // withdrawal.rejected events
	DeadLettered int // messages on the DLQ topic
}

// Workload is n messages of a run: mostly Valid commands, and per 1,000
// messages 10 identical redeliveries of an earlier command, 5 invalid
// commands (amount 0, rejected) and 2 that are not JSON (dead letters).
func Workload(run string, n int) ([]kafka.Message, Expect) {
	msgs := make([]kafka.Message, 0, n)
	var e Expect
	valid := 0
	for i := range n {
		switch r := i % 1000; {
		case r < 10 && valid > 0:
			msgs = append(msgs, Valid(run, (valid*7919+r)%valid)) // an earlier command again
			e.Duplicates++
		case r >= 10 && r < 15:
			no := fmt.Sprintf("X%s%09d", run, i)
			msgs = append(msgs, kafka.Message{Key: []byte(no), Value: []byte(fmt.Sprintf(
				`{"channel":"wechatpay_platform","out_request_no":%q,"amount":0,"account_type":"BASIC"}`, no))})
			e.Rejected++
		case r >= 15 && r < 17:
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("poison%d", i)), Value: []byte("\x00\x01not json")})
			e.DeadLettered++
		default:
			msgs = append(msgs, Valid(run, valid))
			valid++
		}
	}
	e.Produced = n
	e.Accepted = valid
	return msgs, e
}
