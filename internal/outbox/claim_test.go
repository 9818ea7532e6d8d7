package outbox_test

import (
	"context"
	"slices"
	"testing"

	"github.com/paycore/withdraw/internal/outbox"
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
		union, unionFull, err := outbox.ClaimPendingIDs(ctx, db, lanes, perLane, exclude, true)
		if err != nil {
			t.Fatal(err)
		}
		probe, probeFull, err := outbox.ClaimPendingIDs(ctx, db, lanes, perLane, exclude, false)
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
