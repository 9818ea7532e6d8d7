package dispatch_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestNoPIIInLogs takes a cancel-withdraw command with payee data through
// Kafka, the intake, the dispatcher and the provider (with faults, so error
// paths log too), with every logger at debug level, and checks the captured
// log for the sensitive values.
func TestNoPIIInLogs(t *testing.T) {
	var logs storetest.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log) // the provider clients log through the default logger
	t.Cleanup(func() { slog.SetDefault(prev) })

	r := newRig(t, sandbox.Options{Seed: 3, Faults: map[string]sandbox.Fault{
		sandbox.EndpointCancelSubmit: {TimeoutAfterCommit: 0.5, Errors: map[string]float64{"SYSTEM_ERROR": 0.3}},
	}})
	brokers := testenv.KafkaBrokers(t)
	topic, dlq := testenv.UniqueTopic(t, "commands"), testenv.UniqueTopic(t, "dlq")
	testenv.CreateTopic(t, topic, 1)
	testenv.CreateTopic(t, dlq, 1)

	var values []kafka.Message
	var secrets []string
	for i := range 5 {
		c := providertest.Command(withdrawal.ChannelWeChatCancel, "PII"+string(rune('A'+i)), 100)
		c.PayeeInfo.BankAccountInfo.AccountNumber = "62220202001122" + strings.Repeat(string(rune('0'+i)), 5)
		c.PayeeInfo.BankAccountInfo.AccountName = "保密公司" + string(rune('甲'+i))
		c.PayeeInfo.IdentityInfo.IdentificationNo = "11010119900307" + strings.Repeat(string(rune('0'+i)), 4)
		c.PayeeInfo.IdentityInfo.IdentificationName = "李四" + string(rune('甲'+i))
		secrets = append(secrets, c.PayeeInfo.BankAccountInfo.AccountNumber, c.PayeeInfo.IdentityInfo.IdentificationNo,
			c.PayeeInfo.BankAccountInfo.AccountName, c.PayeeInfo.IdentityInfo.IdentificationName)
		b, _ := json.Marshal(c)
		values = append(values, kafka.Message{Key: []byte(c.OutRequestNo), Value: b})
	}
	w := kafkautil.NewWriter(brokers, topic)
	if err := w.WriteMessages(context.Background(), values...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	reader := kafkautil.NewGroupReader(brokers, "pii", topic)
	defer reader.Close()
	dlqWriter := kafkautil.NewWriter(brokers, "")
	defer dlqWriter.Close()
	in, err := intake.New(r.db, reader, dlqWriter, intake.Options{DLQTopic: dlq, Keys: r.keys, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	stop := run(t, r.dispatcher("pii", dispatch.Options{Logger: log}))
	r.waitFor(time.Minute, func(c map[string]int64) bool { return c["SUBMITTED"]+c["SUCCEEDED"] == 5 })
	stop()
	cancel()

	rows, _ := store.CountByState(context.Background(), r.db)
	out := logs.String()
	if !strings.Contains(out, "PIIA") {
		t.Fatalf("nothing about the withdrawals was logged (states %v): the test would prove nothing", rows)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log contains the sensitive value %q", s)
		}
	}
}
