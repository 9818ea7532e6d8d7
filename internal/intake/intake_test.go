package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// rig is one intake under test: a fresh database, topic names of its own
// (the tests' setup creates the topics as its concern needs them), and
// the intake running in this process. Subtests with a rig each can run in
// parallel.
type rig struct {
	t        *testing.T
	db       *store.DB
	brokers  []string
	commands string
	dlq      string
	keys     *pii.Keyring
}

// newRig makes a rig without creating its topics.
func newRig(t *testing.T) *rig {
	t.Helper()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("test"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, brokers: testenv.KafkaBrokers(t), keys: keys,
		commands: testenv.UniqueTopic(t, "commands"), dlq: testenv.UniqueTopic(t, "dlq")}
	return r
}

// produce publishes raw command values keyed like upstream does.
func (r *rig) produce(values ...[]byte) {
	r.t.Helper()
	w := kafkautil.NewWriter(r.brokers, r.commands)
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: v}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		r.t.Fatal(err)
	}
}

// run starts an intake in consumer group `group` and returns a stop function.
func (r *rig) run(group string) (stop func()) {
	r.t.Helper()
	reader := kafkautil.NewGroupReader(r.brokers, group, r.commands)
	dlq := kafkautil.NewDLQWriter(r.brokers, kafkautil.DefaultMaxMessageBytes)
	in, err := intake.New(r.db, reader, dlq, intake.Options{BatchSize: 50, DLQTopic: r.dlq, Keys: r.keys})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("intake: %v", err)
		}
		reader.Close()
		dlq.Close()
	}
}

// waitCommitted waits until the group has committed every produced offset.
func (r *rig) waitCommitted(group string, total int64) {
	r.t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(r.brokers...), Timeout: 5 * time.Second, Transport: &kafka.Transport{}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{r.commands: {0, 1, 2}}})
		var sum int64
		if err == nil {
			for _, p := range resp.Topics[r.commands] {
				if p.CommittedOffset > 0 {
					sum += p.CommittedOffset
				}
			}
		}
		if sum >= total {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("group %s committed %d of %d offsets after 60s (err %v)", group, sum, total, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *rig) count(table, where string, args ...any) int64 {
	r.t.Helper()
	var n int64
	if err := r.db.Gorm().Table(table).Where(where, args...).Count(&n).Error; err != nil {
		r.t.Fatal(err)
	}
	return n
}

func (r *rig) rejections() map[string]string {
	r.t.Helper()
	var rows []store.OutboxEvent
	if err := r.db.Gorm().Where("event_type = ?", "withdrawal.rejected").Find(&rows).Error; err != nil {
		r.t.Fatal(err)
	}
	out := map[string]string{}
	for _, row := range rows {
		var ev withdrawal.Event
		if err := json.Unmarshal(row.Payload, &ev); err != nil {
			r.t.Fatal(err)
		}
		out[ev.OutRequestNo] = ev.ReasonCode
	}
	return out
}

func (r *rig) deadLetters(n int) []kafka.Message {
	r.t.Helper()
	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: r.brokers, Topic: r.dlq, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := reader.ReadMessage(ctx)
		if err != nil {
			r.t.Fatalf("read dead letters: got %d of %d: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func seed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "withdrawal", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIntake: what the intake makes of each command it consumes, and of
// the same commands consumed again.
func TestIntake(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and topics: commands on three
	// partitions, dead letters on one.
	setup := func(t *testing.T) *rig {
		t.Helper()
		r := newRig(t)
		testenv.CreateTopic(t, r.commands, 3)
		testenv.CreateTopic(t, r.dlq, 1)
		return r
	}

	// Valid commands are stored with their accepted event; invalid ones
	// and conflicts are rejected with an event and leave the original
	// untouched; undecodable ones are dead letters with their provenance
	// headers and original bytes; a redelivered identical command is a
	// no-op; a poison message among good commands stops none of them.
	t.Run("CommandsAreStoredRejectedOrDeadLettered", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		platform := func(no string, amount int) []byte {
			return []byte(fmt.Sprintf(`{"channel":"wechatpay_platform","out_request_no":%q,"amount":%d,"account_type":"BASIC"}`, no, amount))
		}
		values := [][]byte{
			seed(t, "seed000_ecommerce.json"),
			seed(t, "seed001_platform.json"), // same key as 000's out_request_no, other channel: a separate withdrawal
			seed(t, "seed002_cancel.json"),
			seed(t, "seed004_allinpay.json"),
			platform("P1", 100),
			[]byte("\x00\xffnot json"), // poison in the middle of good commands
			platform("P1", 100),        // redelivered identical command: no-op
			platform("P1", 999),        // same key, other amount: conflict
			platform("P2", 0),          // invalid
			[]byte(``),
			[]byte(`[{"out_request_no":"A1"}]`),
			[]byte(`{"out_request_no":42,"channel":"wechatpay_platform"}`),
			[]byte(`{"out_request_no":"` + strings.Repeat("x", withdrawal.MaxCommandBytes) + `"}`),
			[]byte(`{"channel":"wechatpay_platform","out_request_no":"P3","amount":"100","account_type":"BASIC"}`),
			platform("P4", 5),
		}
		r.produce(values...)
		stop := r.run("g1")
		r.waitCommitted("g1", int64(len(values)))
		stop()

		if n := r.count("withdrawals", "1=1"); n != 6 {
			t.Errorf("%d withdrawals, want 6 (4 seeds, P1, P4)", n)
		}
		if n := r.count("outbox", "event_type = ?", "withdrawal.accepted"); n != 6 {
			t.Errorf("%d accepted events, want 6", n)
		}
		var p1 store.Withdrawal
		if err := r.db.Gorm().Where("out_request_no = ?", "P1").Take(&p1).Error; err != nil || p1.Amount != 100 || p1.Version != 1 {
			t.Errorf("the conflict touched the original: %+v %v", p1, err)
		}
		want := map[string]string{"P1": "REQUEST_CONFLICT", "P2": "INVALID_AMOUNT", "P3": "INVALID_FIELD_TYPE"}
		got := r.rejections()
		for no, code := range want {
			if got[no] != code {
				t.Errorf("rejection of %s: %q, want %q", no, got[no], code)
			}
		}
		if len(got) != len(want) {
			t.Errorf("rejections %v, want %v", got, want)
		}

		dls := r.deadLetters(5)
		for _, m := range dls {
			h := map[string]string{}
			for _, kv := range m.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["error"] == "" || h["original_topic"] != r.commands || h["original_partition"] == "" || h["original_offset"] == "" {
				t.Errorf("dead letter headers %v", h)
			}
		}
		if string(dls[0].Value) == "" && string(dls[1].Value) == "" {
			t.Error("dead letters lost their original bytes")
		}
	})

	// Consumes the same commands twice (a second consumer group re-reads
	// the topic from the start, as a crash before the offset commit would):
	// nothing is stored or published twice.
	t.Run("RedeliveryIsNoop", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		var values [][]byte
		for i := range 200 {
			values = append(values, []byte(fmt.Sprintf(`{"channel":"wechatpay_ecommerce","sub_mchid":"19000%02d","out_request_no":"R%d","amount":%d}`, i%7, i, i)))
		}
		// R0 has amount 0: rejected, and its rejection must not be doubled either.
		r.produce(values...)
		stop := r.run("first")
		r.waitCommitted("first", 200)
		stop()
		withdrawals, events := r.count("withdrawals", "1=1"), r.count("outbox", "1=1")
		if withdrawals != 199 || events != 200 {
			t.Fatalf("first pass: %d withdrawals, %d events; want 199, 200", withdrawals, events)
		}

		stop = r.run("second")
		r.waitCommitted("second", 200)
		stop()
		if w, e := r.count("withdrawals", "1=1"), r.count("outbox", "1=1"); w != withdrawals || e != events {
			t.Fatalf("redelivery changed the store: %d withdrawals, %d events", w, e)
		}
	})
}
