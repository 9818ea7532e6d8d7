package intake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/contracttest"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestRejectionEventsConform builds the rejection events of commands that
// are invalid in every way the intake answers with an event — including
// values the rejection echoes as sent (an unsupported channel, an
// out_request_no far over 64 bytes, a negative amount) — and validates them
// against api/schemas/event.rejected.json, with the Kafka key the AsyncAPI
// document states.
func TestRejectionEventsConform(t *testing.T) {
	long := strings.Repeat("N", 500)
	values := []string{
		`{"channel":"paypal","out_request_no":"A1","amount":1}`,
		`{"out_request_no":"A1"}`,
		`{"channel":"wechatpay_platform","account":"no such","out_request_no":"A1","amount":1,"account_type":"BASIC"}`,
		`{"channel":"wechatpay_platform","out_request_no":"` + long + `","amount":1,"account_type":"BASIC"}`,
		`{"channel":"wechatpay_platform","out_request_no":"a b","amount":-5,"account_type":"BASIC"}`,
		`{"channel":"wechatpay_platform","out_request_no":"A1","amount":"1","account_type":"BASIC"}`,
		`{"channel":"wechatpay_platform","out_request_no":"A1","amount":1,"Amount":1,"account_type":"BASIC"}`,
		`{"channel":"wechatpay_platform","out_request_no":"A1","amount":1,"amount":1,"account_type":"BASIC"}`,
		`{"channel":"wechatpay_platform","out_request_no":"A1","amount":1,"account_type":"BASIC","remark":"\u0000"}`,
		`{"channel":"allinpay_shopoint","out_request_no":"A1","amount":3,"details":[{"is_platform":true,"amount":1}]}`,
		`{"channel":"allinpay_shopoint","out_request_no":"A1","details":[]}`,
		`{"channel":"wechatpay_cancel","out_request_no":"A1","amount":1}`,
		`{"channel":"wechatpay_ecommerce","out_request_no":"A1","sub_mchid":"x","amount":1}`,
		`{"channel":"wechatpay_ecommerce","account":"","out_request_no":"A1","sub_mchid":"1","amount":99999999999}`,
	}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var events []withdrawal.Event
	for _, v := range values {
		cmd, err := withdrawal.Decode([]byte(v))
		var r *withdrawal.Rejection
		if !errors.As(err, &r) {
			if err != nil {
				t.Fatalf("%s: %v", v, err)
			}
			if r = withdrawal.Validate(cmd); r == nil {
				r = &withdrawal.Rejection{Code: withdrawal.ReasonAccountNotConfigured, Field: "account", Reason: "not configured"}
			}
		}
		hash, _ := withdrawal.ParamsHash(cmd)
		events = append(events, rejectionEvent(cmd, hash, r, now))
	}
	// A conflict, as store builds it.
	conflict := &withdrawal.Command{Channel: withdrawal.ChannelWeChatPlatform, Account: "default", OutRequestNo: "A1", Amount: 1, AccountType: "BASIC"}
	events = append(events, rejectionEvent(conflict, "h", &withdrawal.Rejection{Code: withdrawal.ReasonRequestConflict,
		Field: "out_request_no", Reason: "withdrawal 0198… already exists with other parameters"}, now))

	for _, ev := range events {
		rec, err := outbox.Record(ev, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"event", "event.rejected"} {
			if err := contracttest.Validate(t, name, rec.Payload); err != nil {
				t.Errorf("%s.json: %v\n\t%s", name, err, rec.Payload)
			}
		}
		want := ev.OutRequestNo
		if len(want) > 64 {
			sum := sha256.Sum256([]byte(want))
			want = hex.EncodeToString(sum[:])
		}
		if rec.EventKey != want {
			t.Errorf("rejection of %.20s… keyed %q, want %q", ev.OutRequestNo, rec.EventKey, want)
		}
		var back withdrawal.Event
		if err := json.Unmarshal(rec.Payload, &back); err != nil || back != ev {
			t.Errorf("payload does not round-trip: %v", err)
		}
	}
}
