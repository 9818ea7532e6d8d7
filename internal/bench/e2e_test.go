package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/testenv"
)

func TestMedianPercentile(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := Median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median %v", m)
	}
	if m := Median(nil); m != 0 {
		t.Errorf("median of nothing %v", m)
	}
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0.001: 1} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

// TestE2ESmall keeps the end-to-end harness working: the consumer and
// sandbox binaries, a small saturated run and a short open-loop run, each
// of which fails unless every command is accounted for.
func TestE2ESmall(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	brokers := testenv.KafkaBrokers(t)
	ctx := context.Background()
	consumer, sandbox, err := BuildBinaries(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &E2E{ConsumerBin: consumer, SandboxBin: sandbox, DSN: dsn, Brokers: brokers, Partitions: 3, Merchants: 20}
	if testing.Verbose() {
		e.Log = os.Stderr
	}
	if err := e.Setup(); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := e.Saturated(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if res.PerSec <= 0 || res.RSSMB["consumer"] <= 0 || res.RSSMB["sandbox"] <= 0 {
		t.Fatalf("%+v", res)
	}
	t.Log(res.Checked)
	res, err = e.OpenLoop(ctx, 50, 500*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Measured != 50 || res.P99ms <= 0 || res.P50ms > res.P99ms {
		t.Fatalf("%+v", res)
	}
	t.Logf("p50 %.1f ms, p99 %.1f ms; %s", res.P50ms, res.P99ms, res.Checked)
}
