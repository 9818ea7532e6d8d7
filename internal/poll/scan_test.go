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

// TestIdleSweepReadsNoRowThatIsNotDue: with thousands of succeeded and
// submitted withdrawals that are not due, a sweep reads none of them. Times
// sent with nanoseconds against DATETIME(6) made MariaDB use only the state
// part of (state, next_attempt_at) and walk every row of the state.
func TestIdleSweepReadsNoRowThatIsNotDue(t *testing.T) {
	db := storetest.MySQLOneConnection(t)
	later := time.Now().UTC().Add(time.Hour)
	storetest.FillWithdrawals(t, db, withdrawal.StateSucceeded, 3000, later)
	storetest.FillWithdrawals(t, db, withdrawal.StateSubmitted, 3000, later)
	env := providertest.Start(t, sandbox.Options{})
	p, err := poll.New(db, env.Registry(), poll.Options{Instance: "p1", Rules: testRules(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
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
}

// TestDailyJobPurgesOldAudit: the daily job deletes audit rows older than
// the retention, in batches, and keeps the recent ones.
func TestDailyJobPurgesOldAudit(t *testing.T) {
	r := newRig(t, sandbox.Options{})
	id := r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "AU1", 100))["AU1"]
	now := time.Now().UTC()
	var rows []store.Attempt
	for i := range 2500 {
		at := now.Add(-200 * 24 * time.Hour).Add(time.Duration(i) * time.Second)
		if i >= 2400 {
			at = now.Add(-time.Hour)
		}
		rows = append(rows, store.Attempt{WithdrawalID: id, Operation: "query", StartedAt: at, Outcome: "ACCEPTED", Instance: "p"})
	}
	if err := store.InsertAttempts(context.Background(), r.db, rows); err != nil {
		t.Fatal(err)
	}
	p, _ := r.poller("p1", poll.Options{AttemptsRetention: 180 * 24 * time.Hour})
	if err := p.Daily(context.Background()); err != nil {
		t.Fatal(err)
	}
	left, err := store.AttemptsOf(context.Background(), r.db, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 100 {
		t.Errorf("%d audit rows left, want the 100 recent ones", len(left))
	}
	for _, a := range left {
		if a.StartedAt.Before(now.Add(-2 * time.Hour)) {
			t.Errorf("an old audit row survived: %v", a.StartedAt)
		}
	}
}

// TestSweepDrainsABacklogAtTheQueryRate: a backlog many times the batch
// size (the 08:00 burst) is drained by one sweep at the configured query
// rate, not at one batch per sweep interval; due follow-ups keep their
// share of every claim meanwhile.
func TestSweepDrainsABacklogAtTheQueryRate(t *testing.T) {
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 20})
	due := time.Now().UTC().Add(-time.Minute)
	storetest.FillWithdrawals(t, db, withdrawal.StateSubmitted, 300, due)
	storetest.FillWithdrawals(t, db, withdrawal.StateSucceeded, 60, due)
	env := providertest.Start(t, sandbox.Options{})
	// Production rules: the fill's rows were first sent two days ago, past
	// the accelerated rules' query window.
	p, err := poll.New(db, env.Registry(), poll.Options{Instance: "p1", Rules: schedule.Production(), Logger: quiet(),
		BatchSize: 20, QueryRate: 200, QueryBurst: 1})
	if err != nil {
		t.Fatal(err)
	}
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
}
