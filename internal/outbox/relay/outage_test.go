package relay_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/testenv"
)

// TestRelayOutageKafka stops the shared broker for ~30s while events keep
// being written. It disrupts every other test using the env, so it only
// runs when asked (the Makefile's separate `go test -p 1` pass):
//
//	WITHDRAW_TESTENV_OUTAGE=1 go test -race -run Outage ./internal/outbox/
func TestRelayOutageKafka(t *testing.T) {
	if os.Getenv("WITHDRAW_TESTENV_OUTAGE") == "" {
		t.Skip("set WITHDRAW_TESTENV_OUTAGE=1 to run (stops the shared Kafka broker)")
	}
	db := mysqlDB(t)
	brokers := testenv.KafkaBrokers(t)
	tp := topic(t, 3)
	w := relay.NewWriter(brokers, tp)
	defer w.Close()
	r := newRelay(t, db, w, relay.Options{Instance: "outage", PollInterval: 50 * time.Millisecond,
		MaxBackoff: 2 * time.Second, LeaseTTL: 10 * time.Second})
	startRelay(t, r)

	ctx := context.Background()
	ids := newWithdrawals(100)
	must(t, writeHistory(ctx, db, ids, 2, 50, r.Notify))
	waitPublished(t, db, 30*time.Second)

	testenv.StopKafka(t)
	stopped := time.Now()
	for v := 3; v <= 5; v++ {
		must(t, writeVersion(ctx, db, ids, v))
		r.Notify()
	}
	deadline := time.Now().Add(60 * time.Second)
	for r.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready() = nil 60s into the broker outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Ready() after %s of outage: %v", time.Since(stopped).Round(time.Millisecond), r.Ready())
	if n := countPending(t, db); n != 300 {
		t.Fatalf("%d rows pending during the outage, want 300", n)
	}
	if d := 30*time.Second - time.Since(stopped); d > 0 {
		time.Sleep(d)
	}
	must(t, writeVersion(ctx, db, ids, 6))
	testenv.StartKafka(t)
	restarted := time.Now()
	waitPublished(t, db, 120*time.Second)
	t.Logf("backlog drained %s after the broker restart", time.Since(restarted).Round(time.Millisecond))
	deadline = time.Now().Add(30 * time.Second)
	for r.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready() = %v after the broker came back", r.Ready())
		}
		time.Sleep(100 * time.Millisecond)
	}

	rep := checkOrder(t, readTopic(t, brokers, tp, 3))
	t.Logf("topic: %s", fmtReport(rep))
	if rep.distinct != 600 || rep.keys != 100 {
		t.Fatalf("topic holds %s, want 600 events of 100 withdrawals", fmtReport(rep))
	}
}
