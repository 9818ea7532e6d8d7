package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(relayChildMain())
	}
	os.Exit(m.Run())
}

// mysqlDB is a fresh, migrated database on the local MariaDB.
func mysqlDB(t testing.TB) *store.DB {
	t.Helper()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	return db
}

// topic creates a fresh topic and returns its name.
func topic(t testing.TB, partitions int) string {
	t.Helper()
	name := testenv.UniqueTopic(t, "outbox")
	testenv.CreateTopic(t, name, partitions)
	return name
}

// newWithdrawals returns n fresh withdrawal ids.
func newWithdrawals(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = withdrawal.NewID()
	}
	return ids
}

// writeVersion stores version v of each withdrawal in ONE transaction, like
// a status change would (the row lock on the withdrawal is what orders the
// versions; here the caller writes v only after v-1 committed).
func writeVersion(ctx context.Context, db *store.DB, ids []string, v int) error {
	rows := make([]store.OutboxEvent, 0, len(ids))
	now := time.Now().UTC()
	for _, id := range ids {
		rec, err := outbox.Record(withdrawal.Event{
			EventID: withdrawal.NewID(), Type: withdrawal.EventSubmitted, WithdrawalID: id, Version: v,
			Channel: "wechatpay_platform", Account: "default", OutRequestNo: "o-" + id,
			State: "SUBMITTED", PreviousState: "SUBMITTING", Amount: 100,
			OccurredAt: withdrawal.FormatEventTime(now),
		}, now)
		if err != nil {
			return err
		}
		rows = append(rows, rec)
	}
	return db.InTx(ctx, func(tx *store.Tx) error { return store.InsertOutbox(ctx, tx, rows) })
}

// writeHistory writes versions 1..versions of every withdrawal, a version
// at a time in transactions of chunk withdrawals (shuffled), and calls
// after() after each commit (nil: nothing).
func writeHistory(ctx context.Context, db *store.DB, ids []string, versions, chunk int, after func()) error {
	for v := 1; v <= versions; v++ {
		order := append([]string(nil), ids...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for len(order) > 0 {
			n := min(chunk, len(order))
			if err := writeVersion(ctx, db, order[:n], v); err != nil {
				return err
			}
			order = order[n:]
			if after != nil {
				after()
			}
		}
	}
	return nil
}

// countPending is the number of unpublished rows.
func countPending(t testing.TB, db *store.DB) int64 {
	t.Helper()
	n, _, err := store.OutboxBacklog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitPublished waits until no row is pending.
func waitPublished(t testing.TB, db *store.DB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := countPending(t, db)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still pending after %s", n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRelay runs r until the test ends (or the returned stop is called).
func startRelay(t testing.TB, r *relay.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// readTopic reads every message of topic, partition by partition, up to the
// current end.
func readTopic(t testing.TB, brokers []string, topic string, partitions int) [][]kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := make([][]kafka.Message, partitions)
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			out[p] = append(out[p], m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

// orderReport is what checkOrder found on the topic.
type orderReport struct {
	distinct   int // events seen at least once
	duplicates int // further copies (same event_id)
	keys       int
}

// checkOrder verifies, per withdrawal, that the first copies of its events
// arrive as versions 1, 2, 3... with no gap, each key on one partition, and
// that header event_id matches the payload.
func checkOrder(t testing.TB, parts [][]kafka.Message) orderReport {
	t.Helper()
	type keyState struct {
		partition int
		max       int
	}
	keys := map[string]*keyState{}
	seen := map[string]bool{}
	var rep orderReport
	for p, msgs := range parts {
		for _, m := range msgs {
			var ev withdrawal.Event
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatalf("partition %d offset %d: %v", p, m.Offset, err)
			}
			if h := header(m, "event_id"); h != ev.EventID {
				t.Fatalf("event_id header %q, payload %q", h, ev.EventID)
			}
			if string(m.Key) != ev.WithdrawalID {
				t.Fatalf("key %q, withdrawal %q", m.Key, ev.WithdrawalID)
			}
			ks := keys[ev.WithdrawalID]
			if ks == nil {
				ks = &keyState{partition: p}
				keys[ev.WithdrawalID] = ks
			}
			if ks.partition != p {
				t.Fatalf("withdrawal %s on partitions %d and %d", ev.WithdrawalID, ks.partition, p)
			}
			if seen[ev.EventID] {
				rep.duplicates++
				continue
			}
			seen[ev.EventID] = true
			rep.distinct++
			if ev.Version != ks.max+1 {
				t.Fatalf("withdrawal %s: version %d arrived after %d (partition %d offset %d)",
					ev.WithdrawalID, ev.Version, ks.max, p, m.Offset)
			}
			ks.max = ev.Version
		}
	}
	rep.keys = len(keys)
	return rep
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func fmtReport(r orderReport) string {
	return fmt.Sprintf("%d events of %d withdrawals, %d duplicates", r.distinct, r.keys, r.duplicates)
}
