package poll_test

import (
	"context"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestPollerScale: the sweep over months of rows — what it reads while
// nothing is due, and how fast it drains a backlog.
//
// Not parallel: SweepDrainsABacklogAtTheQueryRate times a sweep against
// the wall clock, so it runs before the parallel tests start.
func TestPollerScale(t *testing.T) {
	// setup starts a sandbox and a poller "p1" on db, with opts (rules
	// defaulting to the test rules).
	setup := func(t *testing.T, db *store.DB, opts poll.Options) *poll.Poller {
		t.Helper()
		env := providertest.Start(t, sandbox.Options{})
		opts.Instance, opts.Logger = "p1", quiet()
		if opts.Rules == (schedule.Rules{}) {
			opts.Rules = testRules()
		}
		p, err := poll.New(db, env.Registry(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// With thousands of succeeded and submitted withdrawals that are not
	// due, a sweep reads none of them. Times sent with nanoseconds against
	// DATETIME(6) made MariaDB use only the state part of (state,
	// next_attempt_at) and walk every row of the state.
	t.Run("IdleSweepReadsNoRowThatIsNotDue", func(t *testing.T) {
		t.Parallel()
		db := storetest.MySQLOneConnection(t)
		later := time.Now().UTC().Add(time.Hour)
		storetest.FillWithdrawals(t, db, withdrawal.StateSucceeded, 3000, later)
		storetest.FillWithdrawals(t, db, withdrawal.StateSubmitted, 3000, later)
		p := setup(t, db, poll.Options{})
		before := storetest.IndexRowsRead(t, db)
		for range 5 {
			st, err := p.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Claimed != 0 {
				t.Fatalf("claimed %d rows that are not due", st.Claimed)
			}
		}
		if read := storetest.IndexRowsRead(t, db) - before; read > 50 {
			t.Errorf("5 idle sweeps read %d index rows over 6,000 rows that are not due, want none", read)
		}
	})

	// A backlog many times the batch size (the 08:00 burst) is drained by
	// one sweep at the configured query rate, not at one batch per sweep
	// interval; due follow-ups keep their share of every claim meanwhile.
	t.Run("SweepDrainsABacklogAtTheQueryRate", func(t *testing.T) {
		// Serial: asserts the sweep's duration against the wall clock.
		db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 20})
		due := time.Now().UTC().Add(-time.Minute)
		storetest.FillWithdrawals(t, db, withdrawal.StateSubmitted, 300, due)
		storetest.FillWithdrawals(t, db, withdrawal.StateSucceeded, 60, due)
		// Production rules: the fill's rows were first sent two days ago,
		// past the accelerated rules' query window.
		p := setup(t, db, poll.Options{Rules: schedule.Production(), BatchSize: 20, QueryRate: 200, QueryBurst: 1})
		start := time.Now()
		st, err := p.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if st.Claimed != 360 || st.Queried != 360 {
			t.Fatalf("one sweep claimed %d and queried %d of 360 due rows, want all", st.Claimed, st.Queried)
		}
		// 360 queries at 200/s take 1.8 s; the limiter is the only brake.
		if took < 1700*time.Millisecond || took > 20*time.Second {
			t.Errorf("360 queries at 200/s took %v", took)
		}
		var left int64
		if err := db.Gorm().Raw("SELECT COUNT(*) FROM withdrawals WHERE state IN ('SUBMITTED', 'SUCCEEDED') AND next_attempt_at <= ?", time.Now().UTC()).Scan(&left).Error; err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Errorf("%d rows still due after the sweep", left)
		}
	})
}
