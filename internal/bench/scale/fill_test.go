package scale

import (
	"context"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
)

// TestFillShapesTheHistory: a small fill has the states, follow-ups,
// merchants, outbox and audit rows of the history's shape, and an idle
// sweep and an idle dispatcher read none of its rows; a small burst on top
// of it is drained by the poller, every row queried.
func TestFillShapesTheHistory(t *testing.T) {
	db, dsn := storetest.MySQL(t, store.PoolOptions{MaxOpen: 20})
	ctx := context.Background()
	now := time.Now().UTC()
	const n = 10_000
	st, err := Fill(ctx, db, FillOptions{Rows: n, Chunk: 4000, Merchants: 500, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled in %s: %+v", st.Took, st)
	if st.Withdrawals != n || st.ByState["SUCCEEDED"] != 8500 || st.ByState["FAILED"] != 1400 || st.ByState["REVERSED"] != 100 {
		t.Errorf("by state %v, want 8,500 SUCCEEDED, 1,400 FAILED, 100 REVERSED", st.ByState)
	}
	// SUCCEEDED rows of the last 30 of 90 days wait for a follow-up.
	if want := int64(8500 * 29 / 90); st.FollowUps < want*9/10 || st.FollowUps > want*11/10 {
		t.Errorf("%d rows in their follow-up, want about %d", st.FollowUps, want)
	}
	if st.Merchants != 501 {
		t.Errorf("%d merchant keys, want 500 sub-merchants and the platform", st.Merchants)
	}
	// A week of events: the history ends a day ago, so 6/90 of the rows,
	// three or four events each.
	if lo, hi := int64(n*6/90*3*9/10), int64(n*7/90*4); st.Outbox < lo || st.Outbox > hi {
		t.Errorf("%d outbox rows, want between %d and %d", st.Outbox, lo, hi)
	}
	if st.Attempts != 3*n {
		t.Errorf("%d audit rows, want %d", st.Attempts, 3*n)
	}
	var unpublished, due int64
	db.Gorm().Raw("SELECT COUNT(*) FROM outbox WHERE published_at = ?", store.NotPublished).Scan(&unpublished)
	db.Gorm().Raw("SELECT COUNT(*) FROM withdrawals WHERE next_attempt_at <= ?", now).Scan(&due)
	if unpublished != 0 || due != 0 {
		t.Errorf("%d unpublished events, %d rows due: the history is finished work", unpublished, due)
	}

	sweep, err := IdleSweep(ctx, dsn, 5)
	if err != nil {
		t.Fatal(err)
	}
	if sweep.Claimed != 0 || sweep.IndexRowsRead > 10 {
		t.Errorf("idle sweep claimed %d, read %.0f index rows per sweep: want none", sweep.Claimed, sweep.IndexRowsRead)
	}
	perSec, err := IdleDispatcher(ctx, dsn, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if perSec > 100 {
		t.Errorf("an idle dispatcher read %.0f index rows per second", perSec)
	}
	look, err := Lookups(ctx, db, FillOptions{Rows: n, Now: now}, 20, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle sweep %s, %.1f index rows; idle dispatcher %.1f index rows/s; lookups %+v", sweep.PerSweep, sweep.IndexRowsRead, perSec, look)

	b, err := Burst(ctx, db, dsn, BurstOptions{Submitted: 300, FollowUps: 60, Rate: 400, Merchants: 500, Timeout: time.Minute}, "b01")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("burst: %+v", b)
	if b.Queries != 360 || b.ByState["SUBMITTED"]+b.ByState["SUCCEEDED"]+b.ByState["FAILED"] != 360 || b.ByState["UNKNOWN"] != 0 {
		t.Errorf("burst: %d queries, states %v; want 360 queried, none UNKNOWN", b.Queries, b.ByState)
	}
	if b.FollowUpsDuringBurst == 0 {
		t.Error("no follow-up was queried during the burst")
	}
	// Per withdrawal: the recording transaction (begin, lock, update,
	// event, audit, commit), and the claims and heartbeats shared out.
	if b.StatementsPerWithdrawal < 5 || b.StatementsPerWithdrawal > 8 {
		t.Errorf("%.2f statements per withdrawal", b.StatementsPerWithdrawal)
	}
}
