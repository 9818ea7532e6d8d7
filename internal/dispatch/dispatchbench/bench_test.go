package dispatchbench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
)

// TestRunSmall keeps the benchmark harness working: a small run must
// account for every withdrawal (Run fails otherwise).
func TestRunSmall(t *testing.T) {
	ctx := context.Background()
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 40})
	res, err := Run(ctx, Options{DB: db, N: 200, Merchants: 50, MaxInFlight: 32, Latency: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 200 || res.PerSec <= 0 {
		t.Fatalf("%+v", res)
	}
	// The profile's split needs the goroutine labels of both sides: without
	// them every sample would land in Runtime. About half of the run's CPU
	// (some 50 samples) is RSA on each side, so neither can be empty.
	if res.Split.Signing <= 0 || res.Split.Sandbox <= 0 {
		t.Fatalf("CPU split without a side: %s", res.Split)
	}
	// Claims and records of 200 answers take at least a few statements;
	// none means the server's counter was not read.
	t.Logf("%d statements for %d submissions", res.Statements, res.N)
	if res.Statements < 4 {
		t.Fatalf("MariaDB counted %d statements in the run", res.Statements)
	}
}

// TestMeasureFloor keeps the floor measurement working: MeasureFloor fails
// on a wrong answer or a lost update, and both figures need samples of the
// client's goroutines (about 10 each at this size).
func TestMeasureFloor(t *testing.T) {
	ctx := context.Background()
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 40})
	f, err := MeasureFloor(ctx, db, 3000, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("floor: %s", f)
	if f.HTTPPost <= 0 || f.SQLRoundTrip <= 0 {
		t.Fatalf("floor without samples: %s", f)
	}
}

// BenchmarkDispatch is the figure of the README: run with
//
//	go test -run '^$' -bench Dispatch -benchtime 1x ./internal/dispatch/dispatchbench
func BenchmarkDispatch(b *testing.B) {
	ctx := context.Background()
	sign, verify, err := SignCost()
	if err != nil {
		b.Fatal(err)
	}
	bound := float64(Cores()) / (2 * sign.Seconds())
	for range b.N {
		db, err := store.OpenMySQL(ctx, testenv.FreshDatabase(b), store.PoolOptions{MaxOpen: 40})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		res, err := Run(ctx, Options{DB: db, N: 5000, Merchants: 500, MaxInFlight: 64})
		if err != nil {
			b.Fatal(err)
		}
		own := res.CPUPerSubmission - 2*sign - 2*verify
		b.Logf("zero latency: %.0f submissions/s = %.0f%% of the signing bound %.0f/s (sign %s, verify %s); CPU per submission %s, of it beyond 2 signs + 2 verifies %s",
			res.PerSec, 100*res.PerSec/bound, bound, sign, verify, res.CPUPerSubmission, own)
		b.Logf("zero latency, CPU per submission by side (profile): %s", res.Split)
		db.Close()

		db, _ = store.OpenMySQL(ctx, testenv.FreshDatabase(b), store.PoolOptions{MaxOpen: 40})
		_, _ = db.Migrate(ctx)
		// 16 in flight at 50ms is 320/s, well below the signing bound, so
		// the figure measures how well the dispatcher keeps its slots busy.
		res, err = Run(ctx, Options{DB: db, N: 3000, Merchants: 500, MaxInFlight: 16, Latency: 50 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ideal := 16 / 0.050
		b.Logf("50ms latency, in-flight cap 16: %.0f submissions/s = %.0f%% of cap/latency %.0f/s; CPU per submission %s",
			res.PerSec, 100*res.PerSec/ideal, ideal, res.CPUPerSubmission)
		db.Close()
	}
}

// BenchmarkSignParallel signs on every core at once: ns/op × cores is the
// core time of one signature when all cores sign, which on this host is
// not always the one-core figure that SignCost measures (docs/bench.md):
//
//	go test -run '^$' -bench SignParallel ./internal/dispatch/dispatchbench
func BenchmarkSignParallel(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	msg := sha256.Sum256([]byte("POST\n/v3/merchant/fund/withdraw\n1700000000\nnonce\n{}\n"))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, msg[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())*float64(runtime.GOMAXPROCS(0))/float64(b.N)/1e6, "core-ms/sign")
}
