package withdrawapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/withdrawapi"
)

// Producing a command: validate with the intake's rules, then produce
// Marshal's bytes under Key. (Compiled, not run: it needs a broker.)
func Example_produceCommand() {
	cmd := &withdrawapi.WeChatPlatform{OutRequestNo: "2026112200001", Amount: 100, AccountType: "BASIC"}
	value, err := cmd.Marshal() // fails with a *withdrawapi.Rejection when invalid
	if err != nil {
		log.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP("localhost:9092"), Topic: withdrawapi.CommandsTopic, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: cmd.Key(), Value: value}); err != nil {
		log.Fatal(err)
	}
}

// Consuming events: decode, skip redeliveries and older versions, notice
// gaps, apply the rest. (Compiled, not run: it needs a broker.)
func Example_consumeEvents() {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{"localhost:9092"}, GroupID: "ledger", Topic: withdrawapi.EventsTopic})
	defer r.Close()
	seen := withdrawapi.NewDeduper() // a ledger keeps the last version with its own rows instead
	for {
		m, err := r.ReadMessage(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		ev, err := withdrawapi.DecodeEvent(m.Value)
		if err != nil {
			log.Printf("not a withdrawal event at offset %d: %v", m.Offset, err)
			continue
		}
		switch seen.Observe(ev) {
		case withdrawapi.Duplicate:
			continue
		case withdrawapi.Gap:
			log.Printf("withdrawal %s: missed versions before %d", ev.WithdrawalID, ev.Version)
		}
		fmt.Println(ev.Type, ev.OutRequestNo, ev.State, ev.Amount)
	}
}

func ExampleWeChatPlatform_Marshal() {
	cmd := &withdrawapi.WeChatPlatform{OutRequestNo: "2026112200001", Amount: 100, AccountType: "BASIC", Remark: "交易提现"}
	value, err := cmd.Marshal()
	fmt.Println(string(cmd.Key()), string(value), err)
	// Output:
	// 2026112200001 {"channel":"wechatpay_platform","account":"default","out_request_no":"2026112200001","amount":100,"account_type":"BASIC","remark":"交易提现"} <nil>
}

func ExampleWeChatEcommerce_Validate() {
	cmd := &withdrawapi.WeChatEcommerce{OutRequestNo: "2026112200002", Amount: 100, SubMchID: "19000-00109"}
	var r *withdrawapi.Rejection
	if err := cmd.Validate(); errors.As(err, &r) {
		fmt.Println(r.Code, r.Field)
	}
	// Output:
	// INVALID_MCHID sub_mchid
}

func ExampleDecodeEvent() {
	value := []byte(`{"event_id":"0198e0f4-1c2b-7c3d-8e4f-5a6b7c8d9e0f","type":"withdrawal.rejected","withdrawal_id":"","version":0,
		"channel":"wechatpay_ecommerce","account":"default","out_request_no":"2026112200002","state":"REJECTED","previous_state":"",
		"provider_status":"","provider_ref":"","amount":100,"reason_code":"INVALID_MCHID","reason":"sub_mchid: must be digits only",
		"occurred_at":"2026-11-22T10:00:00.000+08:00"}`)
	ev, err := withdrawapi.DecodeEvent(value)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Type, ev.IsRejection(), withdrawapi.ReasonCode(ev.ReasonCode) == withdrawapi.ReasonInvalidMchID, ev.OccurredAt.UTC())
	// Output:
	// withdrawal.rejected true true 2026-11-22 02:00:00 +0000 UTC
}

func ExampleDeduper() {
	d := withdrawapi.NewDeduper()
	for _, ev := range []*withdrawapi.Event{
		{EventID: "e1", Type: withdrawapi.EventAccepted, WithdrawalID: "w1", Version: 1},
		{EventID: "e1", Type: withdrawapi.EventAccepted, WithdrawalID: "w1", Version: 1},  // redelivered
		{EventID: "e3", Type: withdrawapi.EventSucceeded, WithdrawalID: "w1", Version: 3}, // version 2 missed
	} {
		fmt.Println(ev.EventID, ev.Version, d.Observe(ev))
	}
	// Output:
	// e1 1 next
	// e1 1 duplicate
	// e3 3 gap
}
