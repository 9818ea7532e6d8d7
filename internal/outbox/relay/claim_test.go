package relay_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
)

// TestClaimPendingProbeReadsWhatTheUnionReads: the plain range read that a
// relay keeping up uses first gives exactly the rows (and the same "full")
// the per-lane UNION gives, with rows being marked left out, whether it
// read everything (perLane 4) or had to fall back (perLane 1).
func TestClaimPendingProbeReadsWhatTheUnionReads(t *testing.T) {
	ctx := context.Background()
	db := mysqlDB(t)
	// 100 rows spread over the lanes, and one withdrawal with ten
	// versions: its lane holds more than perLane.
	ids := newWithdrawals(50)
	for v := 1; v <= 2; v++ {
		if err := writeVersion(ctx, db.DB, ids, v); err != nil {
			t.Fatal(err)
		}
	}
	hot := newWithdrawals(1)
	for v := 1; v <= 10; v++ {
		if err := writeVersion(ctx, db.DB, hot, v); err != nil {
			t.Fatal(err)
		}
	}
	lanes := make([]int, outbox.Lanes)
	for l := range lanes {
		lanes[l] = l
	}
	// Leave out the hot withdrawal's first row, as if it were being marked
	// published.
	var first struct {
		Lane int
		ID   int64
	}
	if err := db.Raw("SELECT lane, id FROM outbox WHERE withdrawal_id = ? ORDER BY id LIMIT 1", hot[0]).Scan(&first).Error; err != nil {
		t.Fatal(err)
	}
	exclude := map[int][]int64{first.Lane: {first.ID}}
	// perLane 4: the probe reads all 109 rows (limit 256) and must cut the
	// hot lane to 4; perLane 1: the probe is full (limit 64) and the UNION
	// runs.
	for _, perLane := range []int{4, 1} {
		union, unionFull, err := relay.ClaimPendingIDs(ctx, db, lanes, perLane, exclude, true)
		if err != nil {
			t.Fatal(err)
		}
		probe, probeFull, err := relay.ClaimPendingIDs(ctx, db, lanes, perLane, exclude, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(union, probe) || unionFull != probeFull {
			t.Errorf("perLane %d: union read %v (full %v), probe read %v (full %v)", perLane, union, unionFull, probe, probeFull)
		}
		if slices.Contains(probe, first.ID) {
			t.Errorf("perLane %d: the excluded row %d was read", perLane, first.ID)
		}
		if !unionFull || len(union) == 0 {
			t.Errorf("perLane %d: %d rows, full %v; want some and full", perLane, len(union), unionFull)
		}
	}
}

// TestClaimPendingProbeReadsOnlyItsLanes: when other lanes hold a backlog
// (another relay instance is behind), the probe must read one index range
// per lane of its own, not walk every pending row and filter the lanes —
// the plan MariaDB chose for it on a young table while it had an ORDER BY.
func TestClaimPendingProbeReadsOnlyItsLanes(t *testing.T) {
	ctx := context.Background()
	db := mysqlDB(t)
	if err := writeVersion(ctx, db.DB, newWithdrawals(5000), 1); err != nil {
		t.Fatal(err)
	}
	var mine []int
	for l := 0; l < outbox.Lanes; l += 4 {
		mine = append(mine, l)
	}
	// This relay keeps up: its lanes have a few pending rows, the others
	// thousands.
	if err := db.Exec("UPDATE outbox SET published_at = ? WHERE lane IN ? AND id % 20 <> 0", time.Now().UTC(), mine).Error; err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Type   string
		Key    string
		KeyLen string `gorm:"column:key_len"`
	}
	if err := db.Raw("EXPLAIN "+relay.ProbeQuery(mine, 2000), store.NotPublished).Scan(&plan).Error; err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || plan[0].Type != "range" || plan[0].Key != "ix_outbox_pending" || plan[0].KeyLen == "8" {
		t.Errorf("probe plan %+v: want a range of ix_outbox_pending over (published_at, lane)", plan)
	}
}
