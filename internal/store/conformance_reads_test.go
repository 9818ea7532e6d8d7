package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// readOperations are the reads of the admin API, the console and
// withdrawctl, and the poller's bookkeeping.
var readOperations = []operation{
	{"CountByStateAndChannel", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		seedWithdrawal(t, db, "a", now)
		seedWithdrawal(t, db, "b", now)
		done := seedWithdrawal(t, db, "c", now)
		setState(t, db, done.ID, withdrawal.StateSucceeded)
		counts, err := store.CountByState(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if counts["ACCEPTED"] != 2 || counts["SUCCEEDED"] != 1 || len(counts) != 2 {
			t.Errorf("by state %v", counts)
		}
		live := []string{"ACCEPTED"}
		got, err := store.CountByChannelState(ctx, db, live, now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"ACCEPTED": 2, "SUCCEEDED": 1}
		if len(got) != len(want) {
			t.Errorf("by channel and state: %+v, want %v", got, want)
		}
		for _, c := range got {
			if c.Channel != string(withdrawal.ChannelWeChatPlatform) || want[c.State] != c.N {
				t.Errorf("by channel and state: %+v, want %v", got, want)
			}
			delete(want, c.State)
		}
		// Final states count only since the given time: none from the future.
		got, err = store.CountByChannelState(ctx, db, live, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].State != "ACCEPTED" {
			t.Errorf("since a later time: %+v, want the live ACCEPTED rows only", got)
		}
	}},
	{"EventsOfAndPublication", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		w := seedWithdrawal(t, db, "ev", now)
		other := seedWithdrawal(t, db, "other", now)
		evs := []store.OutboxEvent{
			{EventID: "e2", WithdrawalID: w.ID, EventKey: w.ID, EventType: "withdrawal.submitted", Version: 2, Payload: []byte(`{}`), CreatedAt: now.Add(time.Second)},
			{EventID: "e1", WithdrawalID: w.ID, EventKey: w.ID, EventType: "withdrawal.accepted", Version: 1, Payload: []byte(`{}`), CreatedAt: now},
			{EventID: "o1", WithdrawalID: other.ID, EventKey: other.ID, EventType: "withdrawal.accepted", Version: 1, Payload: []byte(`{}`), CreatedAt: now.Add(2 * time.Second)},
		}
		if err := store.InsertOutbox(ctx, db, evs); err != nil {
			t.Fatal(err)
		}
		got, err := store.EventsOf(ctx, db, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 {
			t.Fatalf("events of %s: %+v, want versions 1, 2 and not the other withdrawal's", w.ID, got)
		}
		oldest, err := store.OldestUnpublished(ctx, db)
		if err != nil || !oldest.Equal(now) {
			t.Errorf("oldest unpublished %v, %v; want %v", oldest, err, now)
		}
		if err := store.MarkPublished(ctx, db, []int64{got[0].ID, got[1].ID}, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if oldest, err = store.OldestUnpublished(ctx, db); err != nil || !oldest.Equal(now.Add(2*time.Second)) {
			t.Errorf("after publishing w's events: oldest %v, %v; want the other's %v", oldest, err, now.Add(2*time.Second))
		}
		outcomes, err := store.OutcomesSince(ctx, db, []string{"withdrawal.submitted"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(outcomes) != 1 || outcomes[0].EventType != "withdrawal.submitted" || outcomes[0].N != 1 ||
			outcomes[0].Channel != string(withdrawal.ChannelWeChatPlatform) {
			t.Errorf("outcomes %+v, want one published withdrawal.submitted", outcomes)
		}
		if outcomes, _ = store.OutcomesSince(ctx, db, []string{"withdrawal.submitted"}, now.Add(2*time.Minute)); len(outcomes) != 0 {
			t.Errorf("outcomes published before since: %+v", outcomes)
		}
	}},
	{"Waiting", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		never := now.Add(24 * time.Hour)
		later := seedWithdrawal(t, db, "later", now.Add(2*time.Minute))
		sooner := seedWithdrawal(t, db, "sooner", now.Add(time.Minute))
		due := seedWithdrawal(t, db, "due", now.Add(-time.Minute))
		parked := seedWithdrawal(t, db, "parked", never.Add(time.Hour))
		for _, w := range []*store.Withdrawal{later, sooner, due, parked} {
			setState(t, db, w.ID, withdrawal.StateSubmitted)
		}
		rows, total, err := store.Waiting(ctx, db, []string{"SUBMITTED", "UNKNOWN"}, now, never, 1)
		if err != nil {
			t.Fatal(err)
		}
		if total != 2 || len(rows) != 1 || rows[0].ID != sooner.ID {
			t.Errorf("waiting: total %d, rows %v; want 2 (neither the due nor the parked one), the sooner first", total, ids(rows))
		}
	}},
	{"SearchWithdrawals", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		var seeded []string
		for _, no := range []string{"s1", "s2", "s3"} {
			seeded = append(seeded, seedWithdrawal(t, db, no, now).ID)
		}
		slices.Reverse(seeded) // newest first
		page, err := store.SearchWithdrawals(ctx, db, store.Search{MerchantKey: "m", Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page.Rows); !slices.Equal(got, seeded[:2]) || page.Next == "" {
			t.Fatalf("first page %v next %q, want %v and a cursor", got, page.Next, seeded[:2])
		}
		page, err = store.SearchWithdrawals(ctx, db, store.Search{MerchantKey: "m", Limit: 2, After: page.Next})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page.Rows); !slices.Equal(got, seeded[2:]) || page.Next != "" {
			t.Errorf("last page %v next %q, want %v and no cursor", got, page.Next, seeded[2:])
		}
		page, err = store.SearchWithdrawals(ctx, db, store.Search{OutRequestNo: "s2"})
		if err != nil || len(page.Rows) != 1 || page.Rows[0].OutRequestNo != "s2" {
			t.Errorf("by out_request_no: %+v, %v", page.Rows, err)
		}
		// A creation window before the rows finds none.
		page, err = store.SearchWithdrawals(ctx, db, store.Search{MerchantKey: "m", From: now.Add(-2 * time.Hour), To: now.Add(-time.Hour)})
		if err != nil || len(page.Rows) != 0 {
			t.Errorf("window before the rows: %v, %v", ids(page.Rows), err)
		}
		// By state: ordered by due time, cursor included.
		page, err = store.SearchWithdrawals(ctx, db, store.Search{State: "ACCEPTED", Limit: 2})
		if err != nil || len(page.Rows) != 2 || page.Next == "" {
			t.Fatalf("by state: %v next %q, %v", ids(page.Rows), page.Next, err)
		}
		rest, err := store.SearchWithdrawals(ctx, db, store.Search{State: "ACCEPTED", Limit: 2, After: page.Next})
		if err != nil || len(rest.Rows) != 1 || slices.Contains(ids(page.Rows), rest.Rows[0].ID) {
			t.Errorf("by state, second page: %v, %v", ids(rest.Rows), err)
		}
		if _, err := store.SearchWithdrawals(ctx, db, store.Search{State: "ACCEPTED", After: "garbage"}); err == nil {
			t.Error("a malformed cursor was accepted")
		}
	}},
	{"PollerHeartbeat", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		beat := func(instance string, at time.Time) int {
			t.Helper()
			n, err := store.PollerHeartbeat(ctx, db, instance, at, at.Add(-time.Minute), at.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := beat("p1", now); n != 1 {
			t.Errorf("alone: %d", n)
		}
		if n := beat("p2", now.Add(time.Second)); n != 2 {
			t.Errorf("two live pollers: %d", n)
		}
		// p1 again, a beat later: still two, and its row was replaced, not added.
		if n := beat("p1", now.Add(2*time.Second)); n != 2 {
			t.Errorf("after p1's second beat: %d", n)
		}
		// Two minutes on p2 is no longer alive; two hours on it is forgotten.
		if n := beat("p1", now.Add(2*time.Minute)); n != 1 {
			t.Errorf("p2 silent for two minutes: %d live, want 1", n)
		}
		beat("p1", now.Add(2*time.Hour))
		var rows int64
		if err := db.Gorm().Model(&store.PollerInstance{}).Count(&rows).Error; err != nil || rows != 1 {
			t.Errorf("rows after two hours: %d, %v; want p2 forgotten", rows, err)
		}
	}},
	{"PurgeAttempts", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		w := seedWithdrawal(t, db, "audit", now)
		var attempts []store.Attempt
		for i := range 5 {
			attempts = append(attempts, store.Attempt{WithdrawalID: w.ID, Operation: "query",
				StartedAt: now.Add(time.Duration(i-3) * time.Hour), Outcome: "OK", Instance: "t"})
		}
		if err := store.InsertAttempts(ctx, db, attempts); err != nil {
			t.Fatal(err)
		}
		// Three started before the cutoff; a limit of 2 deletes the oldest two.
		n, err := store.PurgeAttempts(ctx, db, now.Add(-30*time.Minute), 2)
		if err != nil || n != 2 {
			t.Fatalf("first purge: %d, %v; want 2", n, err)
		}
		if n, err = store.PurgeAttempts(ctx, db, now.Add(-30*time.Minute), 10); err != nil || n != 1 {
			t.Fatalf("second purge: %d, %v; want the third old one", n, err)
		}
		if n, err = store.PurgeAttempts(ctx, db, now.Add(-30*time.Minute), 10); err != nil || n != 0 {
			t.Fatalf("third purge: %d, %v; want nothing left to purge", n, err)
		}
		left, err := store.AttemptsOf(ctx, db, w.ID)
		if err != nil || len(left) != 2 || left[0].StartedAt.Before(now.Add(-30*time.Minute)) {
			t.Errorf("left %+v, %v; want the two recent ones", left, err)
		}
	}},
}

// setState moves a seeded withdrawal to state, nothing else.
func setState(t *testing.T, db *store.DB, id string, state withdrawal.State) {
	t.Helper()
	if err := db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", id).Update("state", string(state)).Error; err != nil {
		t.Fatal(err)
	}
}
