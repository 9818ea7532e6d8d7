package relaybench_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/outbox/relay/relaybench"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
)

// topic creates a fresh topic of 12 partitions (the consumer's default) and
// returns its name.
func topic(t testing.TB) string {
	t.Helper()
	name := testenv.UniqueTopic(t, "outbox")
	testenv.CreateTopic(t, name, 12)
	return name
}

// TestBenchBacklogSmall keeps the harness working: a small backlog is
// drained, every row marked published, and the relay's counts read back.
func TestBenchBacklogSmall(t *testing.T) {
	ctx := context.Background()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	const n = 2000
	res, err := relaybench.BenchBacklog(ctx, db, testenv.KafkaBrokers(t), topic(t), n, relay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backlog: %s", res)
	if res.Events != n || res.EventsPerSec <= 0 || res.Calls < 4 {
		// Four versions per withdrawal: at least four rounds of produce calls.
		t.Fatalf("%+v: want %d events in at least 4 produce calls", res, n)
	}
	if pending, _, err := store.OutboxBacklog(ctx, db); err != nil || pending != 0 {
		t.Fatalf("%d rows pending after the run (%v)", pending, err)
	}
}

// BenchmarkRelayBacklog drains a backlog (default 200,000 events; set
// OUTBOX_BENCH_EVENTS) from MariaDB to the broker. One run is the
// measurement, so use -benchtime=1x:
//
//	go test -run '^$' -bench BenchmarkRelayBacklog -benchtime=1x ./internal/outbox/relay/relaybench
func BenchmarkRelayBacklog(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("OUTBOX_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		db, _ := storetest.MySQL(b, store.PoolOptions{})
		opts := relay.Options{Workers: envInt("OUTBOX_BENCH_WORKERS"), BatchSize: envInt("OUTBOX_BENCH_BATCH")}
		res, err := relaybench.BenchBacklog(context.Background(), db, testenv.KafkaBrokers(b), topic(b), n, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("backlog: %s", res)
		b.ReportMetric(res.EventsPerSec, "events/s")
	}
}

// BenchmarkRelayLatency commits 1,000 events/s for 20s with a relay
// running and reports the commit→ack delay:
//
//	go test -run '^$' -bench BenchmarkRelayLatency -benchtime=1x ./internal/outbox/relay/relaybench
func BenchmarkRelayLatency(b *testing.B) {
	for range b.N {
		db, _ := storetest.MySQL(b, store.PoolOptions{})
		res, err := relaybench.BenchLatency(context.Background(), db, testenv.KafkaBrokers(b), topic(b), 1000, 20*time.Second, relay.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("latency: %s", res)
		b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
	}
}

// envInt reads a tuning knob of the benchmarks; 0 (the default) when unset.
func envInt(name string) int {
	v, _ := strconv.Atoi(os.Getenv(name))
	return v
}
