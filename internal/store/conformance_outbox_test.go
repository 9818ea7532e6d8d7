package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
)

// outboxOperations are the outbox relay's: reading pending rows, marking
// them published, the backlog gauges, purging, and the lane leases.
var outboxOperations = []operation{
	{"PendingOutbox", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		created := time.Now().UTC().Add(-time.Minute).Truncate(store.TimePrecision)
		// Interleaved ids: lane 0 five rows, lane 1 two, lane 2 three (one
		// published), lane 3 four (never asked for).
		ids := seedOutbox(t, db, created, 0, 1, 2, 0, 3, 0, 2, 3, 1, 0, 2, 3, 0, 3)
		l0, l1, l2 := laneIDs(t, db, 0), laneIDs(t, db, 1), laneIDs(t, db, 2)
		if err := store.MarkPublished(ctx, db, []int64{l2[0]}, time.Now()); err != nil {
			t.Fatal(err)
		}
		// Backlog false reads with the probe first on MySQL; true with the
		// per-lane statements straight away. Both must read the same.
		for _, backlog := range []bool{false, true} {
			for _, c := range []struct {
				lanes   []int
				perLane int
				exclude map[int][]int64
				want    []int64
				full    bool
			}{
				// Lane 0's first row is being marked: left out; lane 0 is
				// cut to 3 (the probe reads all 8 rows and trims), lane 2's
				// published row is not pending.
				{[]int{0, 1, 2}, 3, map[int][]int64{0: {l0[0]}}, concat(l0[1:4], l1, l2[1:]), true},
				// One a lane: the probe is full (3 of 3) and the per-lane
				// read runs on MySQL.
				{[]int{0, 1, 2}, 1, nil, []int64{l0[0], l1[0], l2[1]}, true},
				// Every row of lanes 1 and 2 and room for more.
				{[]int{1, 2}, 4, nil, concat(l1, l2[1:]), false},
				// An excluded id of another lane changes nothing.
				{[]int{1}, 2, map[int][]int64{0: l0}, l1, true},
				{nil, 5, nil, nil, false},
			} {
				rows, full, err := store.PendingOutbox(ctx, db, store.PendingRead{Lanes: c.lanes, PerLane: c.perLane, Exclude: c.exclude, Backlog: backlog})
				if err != nil {
					t.Fatal(err)
				}
				got := make([]int64, len(rows))
				for i, r := range rows {
					got[i] = r.ID
				}
				want := slices.Sorted(slices.Values(c.want))
				if !slices.Equal(got, want) || full != c.full {
					t.Errorf("backlog %v, lanes %v, per lane %d, exclude %v: read %v (full %v), want %v (full %v)",
						backlog, c.lanes, c.perLane, c.exclude, got, full, want, c.full)
				}
			}
		}
		// The row as the relay publishes it.
		rows, _, err := store.PendingOutbox(ctx, db, store.PendingRead{Lanes: []int{3}, PerLane: 1})
		if err != nil || len(rows) != 1 {
			t.Fatalf("lane 3: %v, %v", rows, err)
		}
		r := rows[0]
		if r.ID != ids[4] || r.Lane != 3 || r.EventID != fmt.Sprint("ev-", 4) || r.EventKey != "key-4" ||
			r.EventType != "withdrawal.submitted" || string(r.Payload) != `{"n":4}` || !r.CreatedAt.Equal(created) {
			t.Errorf("lane 3's first row %+v", r)
		}
	}},
	{"PendingOutbox/probe reads only its lanes", func(t *testing.T, db *store.DB) {
		// When other lanes hold a backlog (another relay instance is
		// behind), the probe must read one index range per lane of its
		// own, not walk every pending row and filter the lanes — the plan
		// MariaDB chose for it on a young table while it had an ORDER BY.
		if db.Dialect != store.MySQL {
			t.Skip("SQLite has no session index counters; its reads are one statement per lane")
		}
		ctx := context.Background()
		db = storetest.MySQLOneConnection(t)
		lanes := make([]int, 5000)
		for i := range lanes {
			lanes[i] = i % 64
		}
		ids := seedOutbox(t, db, time.Now().UTC(), lanes...)
		var mine []int
		for l := 0; l < 64; l += 4 {
			mine = append(mine, l)
		}
		// This relay keeps up: its lanes have a few pending rows, the
		// others thousands.
		var done []int64
		for i, id := range ids {
			if lanes[i]%4 == 0 && i%20 != 0 {
				done = append(done, id)
			}
		}
		if err := store.MarkPublished(ctx, db, done, time.Now()); err != nil {
			t.Fatal(err)
		}
		before := storetest.IndexRowsRead(t, db)
		rows, full, err := store.PendingOutbox(ctx, db, store.PendingRead{Lanes: mine, PerLane: 125})
		if err != nil {
			t.Fatal(err)
		}
		read := storetest.IndexRowsRead(t, db) - before
		t.Logf("%d pending rows of %d lanes read, %d index entries walked", len(rows), len(mine), read)
		if len(rows) != 250 || full {
			t.Fatalf("%d rows (full %v), want the 250 pending rows of the relay's lanes", len(rows), full)
		}
		// Its own 250 pending rows, each counted twice (the index
		// condition's check and the read): 500, plus up to the 1,000 index
		// entries that marking them published delete-marked, until InnoDB
		// purges them. A plan filtering the lanes row by row checks the
		// other lanes' 3,750 pending rows too: 4,250 or more.
		if read > 3000 {
			t.Errorf("reading %d pending rows walked %d index entries: the other lanes' backlog was read", len(rows), read)
		}
	}},
	{"MarkPublished", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		ids := seedOutbox(t, db, now, 0, 0, 1)
		t1, t2 := now.Add(-time.Hour), now
		if err := store.MarkPublished(ctx, db, []int64{ids[0], ids[2]}, t1); err != nil {
			t.Fatal(err)
		}
		// Already marked rows keep their time; others take the new one.
		if err := store.MarkPublished(ctx, db, []int64{ids[0], ids[1]}, t2); err != nil {
			t.Fatal(err)
		}
		for i, want := range []time.Time{t1, t2, t1} {
			if got := outboxRows(t, db)[i].PublishedAt; !got.Equal(want) {
				t.Errorf("row %d published at %v, want %v", i, got, want)
			}
		}
		// More ids than one statement names: every one is marked.
		many := slices.Concat(seedOutbox(t, db, now, make([]int, 2500)...), seedOutbox(t, db, now, make([]int, 2503)...))
		if err := store.MarkPublished(ctx, db, many[1:], now); err != nil {
			t.Fatal(err)
		}
		if n, _, err := store.OutboxBacklog(ctx, db); err != nil || n != 1 {
			t.Fatalf("%d rows pending (%v) after marking all but one of 5,003, want 1", n, err)
		}
		rows, _, err := store.PendingOutbox(ctx, db, store.PendingRead{Lanes: []int{0}, PerLane: 10})
		if err != nil || len(rows) != 1 || rows[0].ID != many[0] {
			t.Fatalf("pending %v (%v), want only %d", rows, err, many[0])
		}
	}},
	{"OutboxBacklog", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		n, oldest, err := store.OutboxBacklog(ctx, db)
		if err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("empty outbox: %d, %v, %v", n, oldest, err)
		}
		base := time.Now().UTC().Add(-time.Hour).Truncate(store.TimePrecision)
		var ids []int64
		for i := range 3 {
			ids = append(ids, seedOutbox(t, db, base.Add(time.Duration(i)*time.Minute), i)...)
		}
		if err := store.MarkPublished(ctx, db, ids[:1], time.Now()); err != nil {
			t.Fatal(err)
		}
		n, oldest, err = store.OutboxBacklog(ctx, db)
		if err != nil || n != 2 || !oldest.Equal(base.Add(time.Minute)) {
			t.Fatalf("backlog %d, oldest %v (%v); want 2, %v", n, oldest, err, base.Add(time.Minute))
		}
	}},
	{"PurgePublished", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		ids := seedOutbox(t, db, now.Add(-30*24*time.Hour), make([]int, 7)...)
		// Two published 9 days ago, one 8 days ago, two a day ago, two
		// never (although created long ago).
		for _, m := range []struct {
			ids []int64
			at  time.Time
		}{{ids[2:4], now.Add(-9 * 24 * time.Hour)}, {ids[0:1], now.Add(-8 * 24 * time.Hour)}, {ids[4:6], now.Add(-24 * time.Hour)}} {
			if err := store.MarkPublished(ctx, db, m.ids, m.at); err != nil {
				t.Fatal(err)
			}
		}
		cutoff := now.Add(-7 * 24 * time.Hour)
		// The oldest published first, at most limit a call.
		for _, want := range []struct {
			n    int64
			left []int64
		}{
			{2, []int64{ids[0], ids[1], ids[4], ids[5], ids[6]}},
			{1, []int64{ids[1], ids[4], ids[5], ids[6]}},
			{0, []int64{ids[1], ids[4], ids[5], ids[6]}},
		} {
			n, err := store.PurgePublished(ctx, db, cutoff, 2)
			if err != nil || n != want.n {
				t.Fatalf("purge: %d, %v; want %d", n, err, want.n)
			}
			var left []int64
			for _, r := range outboxRows(t, db) {
				left = append(left, r.ID)
			}
			if !slices.Equal(left, want.left) {
				t.Fatalf("after purging %d: rows %v, want %v", n, left, want.left)
			}
		}
	}},
	{"DatabaseNow", func(t *testing.T, db *store.DB) {
		now, err := store.DatabaseNow(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		// The same machine's clock, in UTC: an offset of hours would be a
		// time zone mix-up.
		if d := time.Since(now); d < -5*time.Second || d > 5*time.Second || now.Location() != time.UTC {
			t.Fatalf("database clock %v, %s from ours", now, d)
		}
	}},
	{"EnsureOutboxLanes", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := leaseClock(t, db)
		mustClaim(t, db, "a", []int{0}, 1, now, now.Add(time.Minute))
		if err := db.Gorm().Exec("DELETE FROM outbox_lanes WHERE lane >= 60").Error; err != nil {
			t.Fatal(err)
		}
		if err := store.EnsureOutboxLanes(ctx, db, 64); err != nil {
			t.Fatal(err)
		}
		lanes := lanesByNumber(t, db)
		if len(lanes) != 64 || lanes[63].Owner != "" || lanes[0].Owner != "a" {
			t.Fatalf("%d lanes, lane 0 %+v, lane 63 %+v; want 64, lane 0 still a's", len(lanes), lanes[0], lanes[63])
		}
		// Enough lanes already: nothing changes.
		if err := store.EnsureOutboxLanes(ctx, db, 64); err != nil || len(lanesByNumber(t, db)) != 64 {
			t.Fatalf("second ensure: %v", err)
		}
	}},
	{"ClaimOutboxLanes", func(t *testing.T, db *store.DB) {
		now := leaseClock(t, db)
		ttl := 20 * time.Second
		// Up to want, in the candidates' order.
		if n, err := claimLanes(t, db, "a", []int{7, 5, 6, 8}, 3, now, now.Add(ttl)); err != nil || n != 3 {
			t.Fatalf("a claimed %d (%v), want 3", n, err)
		}
		wantOwned(t, db, "a", 5, 6, 7)
		// A live lease is a's alone: b gets only the free one.
		if n, err := claimLanes(t, db, "b", []int{5, 6, 7, 8}, 4, now, now.Add(ttl)); err != nil || n != 1 {
			t.Fatalf("b claimed %d (%v), want 1", n, err)
		}
		wantOwned(t, db, "a", 5, 6, 7)
		wantOwned(t, db, "b", 8)
		// Once a's leases expired, they are free for b.
		later := now.Add(ttl + time.Second)
		if n, err := claimLanes(t, db, "b", []int{6, 7}, 2, later, later.Add(ttl)); err != nil || n != 2 {
			t.Fatalf("b claimed %d (%v) of a's expired lanes, want 2", n, err)
		}
		wantOwned(t, db, "a", 5)
		wantOwned(t, db, "b", 6, 7, 8)
		for _, l := range lanesByNumber(t, db)[6:8] {
			if l.LeaseExpiresAt == nil || !l.LeaseExpiresAt.Equal(later.Add(ttl)) {
				t.Errorf("lane %d expires %v, want %v", l.Lane, l.LeaseExpiresAt, later.Add(ttl))
			}
		}
		if n, err := claimLanes(t, db, "c", nil, 3, now, now.Add(ttl)); err != nil || n != 0 {
			t.Fatalf("no candidates: %d, %v", n, err)
		}
	}},
	{"ClaimOutboxLanes/skips locked lanes", func(t *testing.T, db *store.DB) {
		// A relay claiming while another one's claim is open does not
		// queue on its row locks: it skips the locked lanes.
		if db.Dialect != store.MySQL {
			t.Skip("SQLite has one connection: claims cannot overlap")
		}
		ctx := context.Background()
		now := leaseClock(t, db)
		claimB := func(candidates []int, want int) (int, error) {
			// A lock wait would outlast the timeout.
			bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var n int
			err := db.InTx(bctx, func(tx *store.Tx) error {
				var err error
				n, err = store.ClaimOutboxLanes(bctx, tx, store.LaneClaim{Owner: "b", Candidates: candidates, Want: want, Now: now, Expires: now.Add(time.Minute)})
				return err
			})
			return n, err
		}
		err := db.InTx(ctx, func(tx *store.Tx) error {
			n, err := store.ClaimOutboxLanes(ctx, tx, store.LaneClaim{Owner: "a", Candidates: []int{10, 11, 12}, Want: 2, Now: now, Expires: now.Add(time.Minute)})
			if err != nil || n != 2 {
				return fmt.Errorf("a claimed %d (%v), want 2", n, err)
			}
			// a's transaction is open. Its locking read locked every
			// candidate it read (the ORDER BY sorts them all before
			// LIMIT), so b gets none of them, and does not wait.
			if n, err := claimB([]int{11, 10, 12}, 2); err != nil || n != 0 {
				return fmt.Errorf("b claimed %d (%v) of the lanes a's open claim holds, want 0", n, err)
			}
			if n, err := claimB([]int{10, 13, 14}, 2); err != nil || n != 2 {
				return fmt.Errorf("b claimed %d (%v) next to a's open claim, want 13 and 14", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantOwned(t, db, "a", 10, 11)
		wantOwned(t, db, "b", 13, 14)
		// Once a committed, the lane it did not take is free.
		if n, err := claimB([]int{10, 11, 12}, 2); err != nil || n != 1 {
			t.Fatalf("b claimed %d (%v) after a's commit, want lane 12", n, err)
		}
		wantOwned(t, db, "b", 12, 13, 14)
	}},
	{"RenewOutboxLanes", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := leaseClock(t, db)
		e1, e2 := now.Add(time.Minute), now.Add(2*time.Minute)
		mustClaim(t, db, "a", []int{1, 2}, 2, now, e1)
		mustClaim(t, db, "b", []int{3}, 1, now, e1)
		if err := store.RenewOutboxLanes(ctx, db, "a", e2); err != nil {
			t.Fatal(err)
		}
		lanes := lanesByNumber(t, db)
		for lane, want := range map[int]time.Time{1: e2, 2: e2, 3: e1} {
			if got := lanes[lane].LeaseExpiresAt; got == nil || !got.Equal(want) {
				t.Errorf("lane %d expires %v, want %v", lane, got, want)
			}
		}
		if lanes[4].LeaseExpiresAt != nil {
			t.Errorf("free lane 4 expires %v", lanes[4].LeaseExpiresAt)
		}
	}},
	{"ReleaseOutboxLanes", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := leaseClock(t, db)
		mustClaim(t, db, "a", []int{5, 6, 7}, 3, now, now.Add(time.Minute))
		mustClaim(t, db, "b", []int{8}, 1, now, now.Add(time.Minute))
		// Only a's lanes among those named are handed back.
		if err := store.ReleaseOutboxLanes(ctx, db, "a", []int{6, 8}); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, db, "a", 5, 7)
		wantOwned(t, db, "b", 8)
		if l := lanesByNumber(t, db)[6]; l.Owner != "" || l.LeaseExpiresAt != nil {
			t.Errorf("released lane %+v, want free", l)
		}
		// At once free for another owner, before the lease's expiry.
		if n, err := claimLanes(t, db, "c", []int{6}, 1, now, now.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("c claimed %d (%v) of the released lane", n, err)
		}
	}},
	{"HeartbeatOutboxRelay", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := leaseClock(t, db)
		for _, owner := range []string{"a", "b"} {
			if err := store.HeartbeatOutboxRelay(ctx, db, owner, now.Add(10*time.Second), now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		wantLive(t, db, now, 2)
		// b's next heartbeat moves its expiry (here into the past: b
		// counts no more).
		if err := store.HeartbeatOutboxRelay(ctx, db, "b", now.Add(-time.Second), now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		wantLive(t, db, now, 1)
		wantLive(t, db, now.Add(-time.Minute), 2)
		// Heartbeats expired before forgetBefore are dropped: b's, not a's.
		if err := store.HeartbeatOutboxRelay(ctx, db, "a", now.Add(10*time.Second), now); err != nil {
			t.Fatal(err)
		}
		wantLive(t, db, now.Add(-time.Minute), 1)
	}},
	{"RetireOutboxRelay", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := leaseClock(t, db)
		for owner, lanes := range map[string][]int{"a": {1, 2}, "b": {3}} {
			mustClaim(t, db, owner, lanes, len(lanes), now, now.Add(time.Minute))
			if err := store.HeartbeatOutboxRelay(ctx, db, owner, now.Add(time.Minute), now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.RetireOutboxRelay(ctx, db, "a"); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, db, "a")
		wantOwned(t, db, "b", 3)
		wantLive(t, db, now, 1)
	}},
}

// seedOutbox inserts one outbox row per lane given, in that order, created
// at `created`, and returns their ids. Row i has event id "ev-i", key
// "key-i" and payload {"n":i}. (outboxRows is the intake tests'.)
func seedOutbox(t *testing.T, db *store.DB, created time.Time, lanes ...int) []int64 {
	t.Helper()
	ctx := context.Background()
	before := len(outboxRows(t, db))
	rows := make([]store.OutboxEvent, len(lanes))
	for i, lane := range lanes {
		rows[i] = store.OutboxEvent{EventID: fmt.Sprint("ev-", before+i), WithdrawalID: fmt.Sprint("w-", before+i), EventKey: fmt.Sprint("key-", before+i),
			Lane: lane, EventType: "withdrawal.submitted", Version: 1, Payload: fmt.Appendf(nil, `{"n":%d}`, before+i), CreatedAt: created}
	}
	if err := store.InsertOutbox(ctx, db, rows); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range outboxRows(t, db)[before:] {
		ids = append(ids, r.ID)
	}
	if len(ids) != len(lanes) {
		t.Fatalf("%d rows inserted, want %d", len(ids), len(lanes))
	}
	return ids
}

// laneIDs are the ids of lane's rows, in order.
func laneIDs(t *testing.T, db *store.DB, lane int) []int64 {
	t.Helper()
	var ids []int64
	for _, r := range outboxRows(t, db) {
		if r.Lane == lane {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func concat(xs ...[]int64) []int64 { return slices.Concat(xs...) }

// leaseClock is the database's clock, to the schema's precision.
func leaseClock(t *testing.T, db *store.DB) time.Time {
	t.Helper()
	now, err := store.DatabaseNow(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return now.Truncate(store.TimePrecision)
}

// claimLanes runs ClaimOutboxLanes in a transaction of its own.
func claimLanes(t *testing.T, db *store.DB, owner string, candidates []int, want int, now, expires time.Time) (int, error) {
	t.Helper()
	var n int
	err := db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		n, err = store.ClaimOutboxLanes(context.Background(), tx, store.LaneClaim{Owner: owner, Candidates: candidates, Want: want, Now: now, Expires: expires})
		return err
	})
	return n, err
}

// mustClaim is claimLanes for a test's setup: every lane wanted is claimed.
func mustClaim(t *testing.T, db *store.DB, owner string, candidates []int, want int, now, expires time.Time) {
	t.Helper()
	if n, err := claimLanes(t, db, owner, candidates, want, now, expires); err != nil || n != want {
		t.Fatalf("%s claimed %d of lanes %v (%v), want %d", owner, n, candidates, err, want)
	}
}

// lanesByNumber are the lane rows, indexed by lane.
func lanesByNumber(t *testing.T, db *store.DB) []store.OutboxLane {
	t.Helper()
	lanes, err := store.OutboxLanes(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(lanes, func(a, b store.OutboxLane) int { return a.Lane - b.Lane })
	for i, l := range lanes {
		if l.Lane != i {
			t.Fatalf("lane rows %v: lane %d missing", lanes, i)
		}
	}
	return lanes
}

// wantOwned checks the lanes owner leases.
func wantOwned(t *testing.T, db *store.DB, owner string, lanes ...int) {
	t.Helper()
	got, err := store.OwnedOutboxLanes(context.Background(), db, owner)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if len(got) != len(lanes) || !slices.Equal(got, lanes) {
		t.Errorf("%s owns lanes %v, want %v", owner, got, lanes)
	}
}

// wantLive checks the number of relays live at now.
func wantLive(t *testing.T, db *store.DB, now time.Time, want int) {
	t.Helper()
	n, err := store.CountLiveOutboxRelays(context.Background(), db, now)
	if err != nil || n != want {
		t.Errorf("%d relays live at %v (%v), want %d", n, now, err, want)
	}
}
