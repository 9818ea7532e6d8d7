package relay_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// gateWriter holds every call until the gate opens.
type gateWriter struct {
	relay.Writer
	gate chan struct{}
	once sync.Once
	in   chan struct{} // closed when the first call arrives
}

func (g *gateWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	g.once.Do(func() { close(g.in) })
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Writer.WriteMessages(ctx, msgs...)
}

func TestRelayPublishesEventsWithHeaders(t *testing.T) {
	db := mysqlDB(t)
	brokers := testenv.KafkaBrokers(t)
	tp := topic(t, 3)
	w := relay.NewWriter(brokers, tp)
	defer w.Close()
	gw := &gateWriter{Writer: w, gate: make(chan struct{}), in: make(chan struct{})}

	ctx := context.Background()
	ids := newWithdrawals(3)
	must(t, writeHistory(ctx, db, ids, 2, 3, nil))
	var rows []store.OutboxEvent
	must(t, db.Gorm().Order("id").Find(&rows).Error)

	r := newRelay(t, db, gw, relay.Options{Instance: "t", LeaseTTL: 4 * time.Second})
	startRelay(t, r)
	select {
	case <-gw.in:
	case <-time.After(30 * time.Second):
		t.Fatal("relay never published")
	}
	// The broker has not answered: nothing may be marked.
	time.Sleep(200 * time.Millisecond)
	if n := countPending(t, db); n != int64(len(rows)) {
		t.Fatalf("%d of %d rows pending before the broker acknowledged", n, len(rows))
	}
	close(gw.gate)
	waitPublished(t, db, 30*time.Second)
	if err := r.Ready(); err != nil {
		t.Fatalf("Ready() = %v", err)
	}

	byID := map[string]store.OutboxEvent{}
	for _, row := range rows {
		byID[row.EventID] = row
	}
	parts := readTopic(t, brokers, tp, 3)
	rep := checkOrder(t, parts)
	if rep.distinct != len(rows) || rep.duplicates != 0 {
		t.Fatalf("topic holds %s, want %d events once", fmtReport(rep), len(rows))
	}
	for _, msgs := range parts {
		for _, m := range msgs {
			row := byID[header(m, "ce_id")]
			if row.EventID == "" {
				t.Fatalf("ce_id %q is no outbox event", header(m, "ce_id"))
			}
			if string(m.Key) != row.EventKey || string(m.Value) != string(row.Payload) {
				t.Errorf("message %s: key %q value %s; want %q %s", row.EventID, m.Key, m.Value, row.EventKey, row.Payload)
			}
			want := map[string]string{
				"ce_specversion": "1.0", "ce_id": row.EventID, "ce_type": row.EventType,
				"ce_source": relay.SourceDefault, "content-type": "application/json", "event_id": row.EventID,
			}
			for k, v := range want {
				if got := header(m, k); got != v {
					t.Errorf("message %s: header %s = %q, want %q", row.EventID, k, got, v)
				}
			}
			ceTime, err := time.Parse(time.RFC3339Nano, header(m, "ce_time"))
			if err != nil || !ceTime.Equal(row.CreatedAt) {
				t.Errorf("message %s: ce_time %q (%v), want %s", row.EventID, header(m, "ce_time"), err, row.CreatedAt)
			}
		}
	}
}

// TestRelayTwoInstancesKeepOrder runs two relays on one database while
// 2,000 events of 200 withdrawals are being written.
func TestRelayTwoInstancesKeepOrder(t *testing.T) {
	db := mysqlDB(t)
	brokers := testenv.KafkaBrokers(t)
	tp := topic(t, 6)
	const withdrawals, versions = 200, 10

	var relays []*relay.Relay
	var metrics []*relay.Metrics
	for i := range 2 {
		w := relay.NewWriter(brokers, tp)
		defer w.Close()
		m := relay.NewMetrics(prometheus.NewRegistry())
		r := newRelay(t, db, w, relay.Options{
			Instance: "relay" + string(rune('A'+i)), LeaseTTL: 2 * time.Second, BatchSize: 64,
			PollInterval: 20 * time.Millisecond, StatsInterval: 200 * time.Millisecond, Metrics: m,
		})
		relays, metrics = append(relays, r), append(metrics, m)
		startRelay(t, r)
	}
	// Both should hold lanes before the writes start.
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, b := laneCount(t, db, relays[0].Owner()), laneCount(t, db, relays[1].Owner())
		if a > 0 && b > 0 && a+b == outbox.Lanes {
			t.Logf("lanes: %d + %d", a, b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lanes not shared after 20s: %d + %d", a, b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	ids := newWithdrawals(withdrawals)
	notify := func() {
		for _, r := range relays {
			r.Notify()
		}
	}
	must(t, writeHistory(context.Background(), db, ids, versions, 25, notify))
	waitPublished(t, db, 60*time.Second)

	rep := checkOrder(t, readTopic(t, brokers, tp, 6))
	t.Logf("topic: %s", fmtReport(rep))
	if rep.distinct != withdrawals*versions || rep.keys != withdrawals {
		t.Fatalf("topic holds %s, want %d events of %d withdrawals", fmtReport(rep), withdrawals*versions, withdrawals)
	}
	for i, m := range metrics {
		if n := m.Value("withdraw_outbox_published_total"); n == 0 {
			t.Errorf("relay %d published nothing", i)
		} else {
			t.Logf("relay %d published %.0f", i, n)
		}
	}
}

func laneCount(t testing.TB, db *store.DB, owner string) int {
	t.Helper()
	lanes, err := store.OwnedOutboxLanes(context.Background(), db, owner)
	must(t, err)
	return len(lanes)
}

// TestRelayPublishesLateCommittedLowerID: a row whose auto-increment id is
// lower than an already published one, committed later, is still published.
func TestRelayPublishesLateCommittedLowerID(t *testing.T) {
	db := mysqlDB(t)
	brokers := testenv.KafkaBrokers(t)
	tp := topic(t, 1)
	w := relay.NewWriter(brokers, tp)
	defer w.Close()
	r := newRelay(t, db, w, relay.Options{Instance: "t", PollInterval: 20 * time.Millisecond})
	startRelay(t, r)

	ctx := context.Background()
	ids := newWithdrawals(2)
	// A transaction that takes the lower id and commits last.
	inserted, commit, committed := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	commitSlow := func() { once.Do(func() { close(commit) }) }
	defer commitSlow()
	go func() {
		committed <- db.InTx(ctx, func(tx *store.Tx) error {
			err := writeVersionTx(ctx, tx, ids[0], 1)
			inserted <- err
			<-commit
			return err
		})
	}()
	must(t, <-inserted)
	must(t, writeVersion(ctx, db, ids[1:], 1))
	var lowID, highID int64
	must(t, db.Gorm().Raw("SELECT MAX(id) FROM outbox").Scan(&highID).Error)
	waitPublished(t, db, 30*time.Second) // only the high id is visible
	commitSlow()
	must(t, <-committed)
	must(t, db.Gorm().Raw("SELECT MIN(id) FROM outbox").Scan(&lowID).Error)
	if lowID >= highID {
		t.Fatalf("ids %d, %d: the slow transaction did not take the lower id", lowID, highID)
	}
	waitPublished(t, db, 30*time.Second)
	rep := checkOrder(t, readTopic(t, brokers, tp, 1))
	if rep.distinct != 2 {
		t.Fatalf("topic holds %s, want 2 events", fmtReport(rep))
	}
}

func writeVersionTx(ctx context.Context, tx *store.Tx, id string, v int) error {
	now := time.Now().UTC()
	rec, err := outbox.Record(withdrawal.Event{EventID: withdrawal.NewID(), Type: withdrawal.EventAccepted,
		WithdrawalID: id, Version: v, OccurredAt: withdrawal.FormatEventTime(now)}, now)
	if err != nil {
		return err
	}
	return store.InsertOutbox(ctx, tx, []store.OutboxEvent{rec})
}

// flakyWriter records what it was sent and fails messages of chosen keys.
type flakyWriter struct {
	mu   sync.Mutex
	fail map[string]bool // keys whose messages fail
	down bool            // every call fails
	sent []kafka.Message // acknowledged, in order
}

func (f *flakyWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("broker down")
	}
	var werr kafka.WriteErrors
	for i, m := range msgs {
		if f.fail[string(m.Key)] {
			if werr == nil {
				werr = make(kafka.WriteErrors, len(msgs))
			}
			werr[i] = kafka.NotLeaderForPartition
			continue
		}
		f.sent = append(f.sent, m)
	}
	if werr != nil {
		return werr
	}
	return nil
}

func (f *flakyWriter) set(down bool, fail ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	f.fail = map[string]bool{}
	for _, k := range fail {
		f.fail[k] = true
	}
}

func (f *flakyWriter) messages() [][]kafka.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return [][]kafka.Message{append([]kafka.Message(nil), f.sent...)}
}

// TestRelayPartialFailureHoldsKey: when the broker refuses one key's
// message, that key's later events wait while the other keys go on; an
// outage stops everything and Ready reports it. Runs on SQLite: no env.
func TestRelayPartialFailureHoldsKey(t *testing.T) {
	ctx := context.Background()
	db := sqliteDB(t)
	ids := newWithdrawals(5)
	must(t, writeHistory(ctx, db, ids, 4, 5, nil))

	fw := &flakyWriter{}
	fw.set(false, ids[0])
	r := newRelay(t, db, fw, relay.Options{Instance: "t", PollInterval: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond})
	stop := startRelay(t, r)

	// Everything but ids[0] gets through; none of ids[0]'s versions does.
	deadline := time.Now().Add(10 * time.Second)
	for countPending(t, db) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pending, want the 4 events of the failing key", countPending(t, db))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.Ready() == nil {
		t.Error("Ready() = nil while a key keeps failing")
	}
	for _, m := range fw.messages()[0] {
		if string(m.Key) == ids[0] {
			t.Fatalf("a message of the failing key was acknowledged")
		}
	}

	fw.set(true) // outage
	must(t, writeVersion(ctx, db, ids[1:], 5))
	time.Sleep(300 * time.Millisecond)
	if n := countPending(t, db); n != 8 {
		t.Fatalf("%d pending during the outage, want 8", n)
	}
	if r.Ready() == nil {
		t.Error("Ready() = nil during an outage")
	}
	fw.set(false)
	r.Notify()
	waitPublished(t, db, 10*time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for r.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready() = %v after recovery", r.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	rep := checkOrder(t, fw.messages())
	if rep.distinct != 5*4+4 {
		t.Fatalf("sent %s, want 24 events", fmtReport(rep))
	}
}

func sqliteDB(t testing.TB) *store.DB { return storetest.SQLite(t) }

// TestRelaySQLite runs the relay the devstack way: SQLite, real broker.
func TestRelaySQLite(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	db := sqliteDB(t)
	tp := topic(t, 2)
	w := relay.NewWriter(brokers, tp)
	defer w.Close()
	r := newRelay(t, db, w, relay.Options{Instance: "devstack", PollInterval: 20 * time.Millisecond,
		StatsInterval: 50 * time.Millisecond})
	startRelay(t, r)
	ids := newWithdrawals(50)
	must(t, writeHistory(context.Background(), db, ids, 3, 10, r.Notify))
	waitPublished(t, db, 30*time.Second)
	rep := checkOrder(t, readTopic(t, brokers, tp, 2))
	if rep.distinct != 150 || rep.keys != 50 {
		t.Fatalf("topic holds %s, want 150 events of 50 withdrawals", fmtReport(rep))
	}
	n, err := r.Purge(context.Background(), time.Nanosecond)
	if err != nil || n != 150 {
		t.Fatalf("Purge = %d, %v; want 150", n, err)
	}
}

func TestRelayPurge(t *testing.T) {
	db := mysqlDB(t)
	ctx := context.Background()
	ids := newWithdrawals(40)
	must(t, writeVersion(ctx, db, ids, 1))
	now := time.Now().UTC()
	var all []int64
	must(t, db.Gorm().Raw("SELECT id FROM outbox ORDER BY id").Scan(&all).Error)
	// 23 published 8 days ago, 10 published a day ago, 7 never published
	// (although created long ago).
	must(t, db.Gorm().Exec("UPDATE outbox SET created_at = ?", now.Add(-30*24*time.Hour)).Error)
	must(t, db.Gorm().Exec("UPDATE outbox SET published_at = ? WHERE id IN ?", now.Add(-8*24*time.Hour), all[:23]).Error)
	must(t, db.Gorm().Exec("UPDATE outbox SET published_at = ? WHERE id IN ?", now.Add(-24*time.Hour), all[23:33]).Error)

	reg := prometheus.NewRegistry()
	m := relay.NewMetrics(reg)
	r := newRelay(t, db, &flakyWriter{}, relay.Options{PurgeBatch: 5, Metrics: m})
	n, err := r.Purge(ctx, 0) // default retention: 7 days
	if err != nil || n != 23 {
		t.Fatalf("Purge = %d, %v; want 23", n, err)
	}
	var left []int64
	must(t, db.Gorm().Raw("SELECT id FROM outbox ORDER BY id").Scan(&left).Error)
	if len(left) != 17 || left[0] != all[23] {
		t.Fatalf("left %v, want ids from %d (17 rows)", left, all[23])
	}
	if got := m.Value("withdraw_outbox_purged_total"); got != 23 {
		t.Errorf("purged_total = %v", got)
	}
	if n, err := r.Purge(ctx, 0); err != nil || n != 0 {
		t.Fatalf("second Purge = %d, %v; want 0", n, err)
	}
}

// TestRelayMetrics checks the pending gauges against a backlog the relay
// cannot publish (its writer is down).
func TestRelayMetrics(t *testing.T) {
	db := sqliteDB(t)
	ctx := context.Background()
	must(t, writeVersion(ctx, db, newWithdrawals(12), 1))
	must(t, db.Gorm().Exec("UPDATE outbox SET created_at = ?", time.Now().UTC().Add(-time.Minute)).Error)
	fw := &flakyWriter{}
	fw.set(true)
	reg := prometheus.NewRegistry()
	m := relay.NewMetrics(reg)
	r := newRelay(t, db, fw, relay.Options{StatsInterval: 20 * time.Millisecond, Metrics: m})
	startRelay(t, r)
	deadline := time.Now().Add(5 * time.Second)
	for m.Value("withdraw_outbox_pending_rows") != 12 {
		if time.Now().After(deadline) {
			t.Fatal("pending gauge never reached 12")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if age := m.Value("withdraw_outbox_oldest_pending_age_seconds"); age < 59 || age > 120 {
		t.Errorf("oldest pending age %v, want about 60", age)
	}
	fw.set(false)
	r.Notify()
	waitPublished(t, db, 5*time.Second)
	for m.Value("withdraw_outbox_pending_rows") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("pending gauge never went back to 0")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := m.Value("withdraw_outbox_published_total"); n != 12 {
		t.Errorf("published_total = %v", n)
	}
	if n := m.Value("withdraw_outbox_publish_latency_seconds"); n != 12 {
		t.Errorf("latency histogram count %v, want 12", n)
	}
}

// TestPurgeReadsOnlyWhatItDeletes: with thousands of rows published within
// the retention, a purge with nothing to delete reads none of them (a time
// with nanoseconds used to make MariaDB walk the whole published range).
func TestPurgeReadsOnlyWhatItDeletes(t *testing.T) {
	db := storetest.MySQLOneConnection(t)
	ctx := context.Background()
	must(t, writeVersion(ctx, db, newWithdrawals(3000), 1))
	must(t, db.Gorm().Exec("UPDATE outbox SET published_at = ?", time.Now().UTC().Add(-time.Hour)).Error)
	must(t, db.Gorm().Exec("ANALYZE TABLE outbox").Error)
	r := newRelay(t, db, &flakyWriter{}, relay.Options{})
	before := storetest.IndexRowsRead(t, db)
	for range 5 {
		if n, err := r.Purge(ctx, 0); err != nil || n != 0 {
			t.Fatalf("Purge = %d, %v", n, err)
		}
	}
	if read := storetest.IndexRowsRead(t, db) - before; read > 50 {
		t.Errorf("5 purges with nothing to delete read %d index rows of 3,000 recent rows", read)
	}
}
