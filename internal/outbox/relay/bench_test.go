package relay_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/testenv"
)

// BenchmarkRelayBacklog drains a backlog (default 200,000 events; set
// OUTBOX_BENCH_EVENTS) from MariaDB to the broker. One run is the
// measurement, so use -benchtime=1x:
//
//	go test -run XXX -bench BenchmarkRelayBacklog -benchtime=1x ./internal/outbox
func BenchmarkRelayBacklog(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("OUTBOX_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		db := mysqlDB(b)
		tp := topic(b, 12)
		opts := relay.Options{Workers: envInt("OUTBOX_BENCH_WORKERS"), BatchSize: envInt("OUTBOX_BENCH_BATCH")}
		res, err := relay.BenchBacklog(context.Background(), db, testenv.KafkaBrokers(b), tp, n, opts)
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
//	go test -run XXX -bench BenchmarkRelayLatency -benchtime=1x ./internal/outbox
func BenchmarkRelayLatency(b *testing.B) {
	for range b.N {
		db := mysqlDB(b)
		tp := topic(b, 12)
		res, err := relay.BenchLatency(context.Background(), db, testenv.KafkaBrokers(b), tp, 1000, 20*time.Second, relay.Options{})
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
