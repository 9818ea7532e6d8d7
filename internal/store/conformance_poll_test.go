package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var pollOperations = []operation{
	{"LeaseForPoll/due", func(t *testing.T, db *store.DB) {
		now := time.Now().UTC().Truncate(store.TimePrecision)
		due, later := now.Add(-time.Minute), now.Add(time.Hour)
		submitted := seedRow(t, db, "sub-due", withdrawal.StateSubmitted, due, nil)
		followed := seedRow(t, db, "suc-due", withdrawal.StateSucceeded, due.Add(time.Second), nil)
		// Not due, another state, or the dispatcher's (a re-send waits).
		untouched := []*store.Withdrawal{
			seedRow(t, db, "sub-later", withdrawal.StateSubmitted, later, nil),
			seedRow(t, db, "suc-later", withdrawal.StateSucceeded, later, nil),
			seedRow(t, db, "sub-resend", withdrawal.StateSubmitted, due, func(w *store.Withdrawal) { w.ResubmitRequested = true }),
			seedRow(t, db, "accepted", withdrawal.StateAccepted, due, nil),
			seedRow(t, db, "unknown", withdrawal.StateUnknown, due, nil),
			seedRow(t, db, "failed", withdrawal.StateFailed, due, nil),
		}
		var leasedFor []int
		lease := store.PollLease{Now: now, Limit: 10, FollowUps: 3, Lease: func(n int) time.Duration {
			leasedFor = append(leasedFor, n)
			return time.Duration(n) * time.Minute
		}}
		rows, until := leaseForPoll(t, db, lease)
		if got, want := ids(rows), []string{followed.ID, submitted.ID}; !slices.Equal(got, want) {
			t.Fatalf("leased %v, want the due SUCCEEDED then the due SUBMITTED row %v", got, want)
		}
		if !slices.Equal(leasedFor, []int{2}) || !until.Equal(now.Add(2*time.Minute)) {
			t.Errorf("lease asked for %v rows, mark %v; want [2], %v", leasedFor, until, now.Add(2*time.Minute))
		}
		if !rows[1].NextAttemptAt.Equal(due) || rows[1].Version != submitted.Version || rows[1].OutRequestNo != "sub-due" {
			t.Errorf("leased row as read: %+v", rows[1])
		}
		for _, w := range []*store.Withdrawal{submitted, followed} {
			if got := get(t, db, w.ID); !got.NextAttemptAt.Equal(until) || got.Version != w.Version || got.State != w.State {
				t.Errorf("%s after the lease: next %v version %d state %s, want the mark %v", w.OutRequestNo,
					got.NextAttemptAt, got.Version, got.State, until)
			}
		}
		for _, w := range untouched {
			if got := get(t, db, w.ID); !got.NextAttemptAt.Equal(w.NextAttemptAt) {
				t.Errorf("%s was leased: next %v", w.OutRequestNo, got.NextAttemptAt)
			}
		}
		// Leased rows are not due for another sweep until the mark.
		if rows, _ := leaseForPoll(t, db, lease); len(rows) != 0 {
			t.Errorf("a second sweep took leased rows: %v", ids(rows))
		}
		// Past the mark the lease has expired: the rows are due again.
		lease.Now = until
		if rows, _ := leaseForPoll(t, db, lease); len(rows) != 2 {
			t.Errorf("after the lease ran out a sweep took %v, want both rows back", ids(rows))
		}
	}},
	{"LeaseForPoll/shares", func(t *testing.T, db *store.DB) {
		now := time.Now().UTC().Truncate(store.TimePrecision)
		var sub, suc []string
		for i := range 4 {
			// Oldest due last in insertion order: the take orders them.
			at := now.Add(-time.Duration(10-i) * time.Minute)
			sub = append(sub, seedRow(t, db, fmt.Sprintf("sub-%d", i), withdrawal.StateSubmitted, at, nil).ID)
			suc = append(suc, seedRow(t, db, fmt.Sprintf("suc-%d", i), withdrawal.StateSucceeded, at.Add(time.Second), nil).ID)
		}
		minute := func(int) time.Duration { return time.Minute }
		// Both classes backlogged: the follow-ups get their share, the
		// first queries the rest, oldest first.
		rows, _ := leaseForPoll(t, db, store.PollLease{Now: now, Limit: 4, FollowUps: 1, Lease: minute})
		if got, want := ids(rows), []string{suc[0], sub[0], sub[1], sub[2]}; !slices.Equal(got, want) {
			t.Errorf("backlog: leased %v, want %v", got, want)
		}
		// One first query left: the follow-ups take what it leaves.
		rows, _ = leaseForPoll(t, db, store.PollLease{Now: now, Limit: 4, FollowUps: 1, Lease: minute})
		if got, want := ids(rows), []string{suc[1], sub[3], suc[2], suc[3]}; !slices.Equal(got, want) {
			t.Errorf("few first queries: leased %v, want %v", got, want)
		}
		// No follow-up due (all leased): the first queries take the whole
		// batch.
		var fresh []string
		for i := range 4 {
			fresh = append(fresh, seedRow(t, db, fmt.Sprintf("fresh-%d", i), withdrawal.StateSubmitted, now.Add(-time.Duration(4-i)*time.Second), nil).ID)
		}
		rows, _ = leaseForPoll(t, db, store.PollLease{Now: now, Limit: 3, FollowUps: 2, Lease: minute})
		if got, want := ids(rows), fresh[:3]; !slices.Equal(got, want) {
			t.Errorf("no follow-ups: leased %v, want %v", got, want)
		}
		// Nothing due: no lease mark.
		if rows, until := leaseForPoll(t, db, store.PollLease{Now: now.Add(-time.Hour), Limit: 4, FollowUps: 1, Lease: minute}); len(rows) != 0 || !until.IsZero() {
			t.Errorf("nothing due: leased %v, mark %v", ids(rows), until)
		}
	}},
	{"LeaseForPoll/skips locked rows", func(t *testing.T, db *store.DB) {
		if db.Dialect != store.MySQL {
			t.Skip("SQLite has no row locks: its single connection serialises the claims")
		}
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		locked := seedRow(t, db, "locked", withdrawal.StateSubmitted, now.Add(-2*time.Minute), nil)
		free := seedRow(t, db, "free", withdrawal.StateSubmitted, now.Add(-time.Minute), nil)
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- db.InTx(ctx, func(tx *store.Tx) error {
				if _, err := store.LockWithdrawal(ctx, tx, locked.ID); err != nil {
					return err
				}
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		start := time.Now()
		rows, _ := leaseForPoll(t, db, store.PollLease{Now: now, Limit: 10, Lease: func(int) time.Duration { return time.Minute }})
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := ids(rows); !slices.Equal(got, []string{free.ID}) {
			t.Errorf("leased %v while another transaction held %s, want only %s", got, locked.ID, free.ID)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the claim waited %v for the locked row", took)
		}
	}},
	{"LatestAttemptStart", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		w := seedWithdrawal(t, db, "sent", now)
		other := seedWithdrawal(t, db, "other", now)
		sent := []string{"submit", "resubmit"}
		if got, err := store.LatestAttemptStart(ctx, db, w.ID, sent); err != nil || !got.IsZero() {
			t.Fatalf("no audit yet: %v, %v; want zero", got, err)
		}
		attempt := func(id, op string, at time.Time) store.Attempt {
			return store.Attempt{WithdrawalID: id, Operation: op, StartedAt: at, Outcome: "ACCEPTED", Instance: "t"}
		}
		if err := store.InsertAttempts(ctx, db, []store.Attempt{
			attempt(w.ID, "submit", now.Add(-3*time.Hour)),
			attempt(w.ID, "resubmit", now.Add(-2*time.Hour+123*time.Microsecond)),
			attempt(w.ID, "query", now.Add(-time.Hour)),          // not a send
			attempt(other.ID, "resubmit", now.Add(-time.Minute)), // another withdrawal's
			attempt(w.ID, "submit", now.Add(-4*time.Hour)),       // inserted last, older
		}); err != nil {
			t.Fatal(err)
		}
		err := db.InTx(ctx, func(tx *store.Tx) error {
			got, err := store.LatestAttemptStart(ctx, tx, w.ID, sent)
			if err != nil {
				return err
			}
			if want := now.Add(-2*time.Hour + 123*time.Microsecond); !got.Equal(want) {
				t.Errorf("latest send %v, want %v", got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := store.LatestAttemptStart(ctx, db, w.ID, []string{"query"}); err != nil || !got.Equal(now.Add(-time.Hour)) {
			t.Errorf("latest query: %v, %v", got, err)
		}
		if got, err := store.LatestAttemptStart(ctx, db, w.ID, nil); err != nil || !got.IsZero() {
			t.Errorf("no operations: %v, %v; want zero", got, err)
		}
	}},
	{"CountStuck+ListStuck", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		ago := func(d time.Duration) time.Time { return now.Add(-d) }
		at := func(d time.Duration) *time.Time { t := ago(d); return &t }
		row := func(no string, st withdrawal.State, created time.Duration, set func(w *store.Withdrawal)) *store.Withdrawal {
			return seedRow(t, db, no, st, now.Add(time.Hour), func(w *store.Withdrawal) {
				w.CreatedAt = ago(created)
				if set != nil {
					set(w)
				}
			})
		}
		// UNKNOWN: the age counts from the first send, else the
		// submission, else the creation.
		u1 := row("u-sent", withdrawal.StateUnknown, 40*time.Hour, func(w *store.Withdrawal) { w.FirstSentAt = at(30 * time.Hour) })
		u2 := row("u-submitted", withdrawal.StateUnknown, 40*time.Hour, func(w *store.Withdrawal) { w.SubmittedAt = at(35 * time.Hour) })
		u3 := row("u-created", withdrawal.StateUnknown, 26*time.Hour, nil)
		row("u-recent", withdrawal.StateUnknown, 40*time.Hour, func(w *store.Withdrawal) { w.FirstSentAt = at(time.Hour) })
		row("u-recent-sub", withdrawal.StateUnknown, 40*time.Hour, func(w *store.Withdrawal) {
			w.SubmittedAt = at(time.Hour)
			w.FirstSentAt = at(2 * time.Hour)
		})
		unknown := store.StuckClass{State: string(withdrawal.StateUnknown), Age: store.SinceFirstSent, Before: ago(24 * time.Hour)}
		assertStuck(t, db, unknown, 3, []*store.Withdrawal{u2, u1, u3}, []time.Time{ago(35 * time.Hour), ago(30 * time.Hour), ago(26 * time.Hour)})

		// SUBMITTED INIT between the alert and the query window.
		init := func(no string, sent time.Duration, status string) *store.Withdrawal {
			return row(no, withdrawal.StateSubmitted, 100*24*time.Hour, func(w *store.Withdrawal) {
				w.FirstSentAt, w.ProviderStatus = at(sent), status
			})
		}
		i1 := init("i-stuck", 5*24*time.Hour, "INIT")
		init("i-recent", time.Hour, "INIT")
		init("i-processing", 5*24*time.Hour, "PROCESSING")
		old := init("i-past-window", 95*24*time.Hour, "INIT")
		initClass := store.StuckClass{State: string(withdrawal.StateSubmitted), ProviderStatus: "INIT", Age: store.SinceFirstSent,
			Before: ago(3 * 24 * time.Hour), NotBefore: ago(90 * 24 * time.Hour)}
		assertStuck(t, db, initClass, 1, []*store.Withdrawal{i1}, []time.Time{ago(5 * 24 * time.Hour)})
		window := store.StuckClass{State: string(withdrawal.StateSubmitted), Age: store.SinceFirstSent, Before: ago(90 * 24 * time.Hour)}
		assertStuck(t, db, window, 1, []*store.Withdrawal{old}, []time.Time{ago(95 * 24 * time.Hour)})

		// ACCEPTED: the age counts from the creation, even when a send is
		// recorded.
		a1 := row("a-old", withdrawal.StateAccepted, 3*time.Hour, func(w *store.Withdrawal) { w.FirstSentAt = at(time.Minute) })
		a2 := row("a-older", withdrawal.StateAccepted, 5*time.Hour, nil)
		row("a-new", withdrawal.StateAccepted, time.Minute, func(w *store.Withdrawal) { w.FirstSentAt = at(10 * time.Hour) })
		accepted := store.StuckClass{State: string(withdrawal.StateAccepted), Age: store.SinceCreated, Before: ago(time.Hour)}
		assertStuck(t, db, accepted, 2, []*store.Withdrawal{a2, a1}, []time.Time{ago(5 * time.Hour), ago(3 * time.Hour)})

		// The limit bounds the list, not the count.
		if rows, err := store.ListStuck(ctx, db, unknown, 2); err != nil || len(rows) != 2 || rows[0].ID != u2.ID {
			t.Errorf("list of 2: %+v, %v", rows, err)
		}
		if rows, err := store.ListStuck(ctx, db, unknown, 0); err != nil || len(rows) != 0 {
			t.Errorf("list of 0: %+v, %v", rows, err)
		}
		if n, err := store.CountStuck(ctx, db, store.StuckClass{State: string(withdrawal.StateFailed), Before: now}); err != nil || n != 0 {
			t.Errorf("no stuck FAILED: %d, %v", n, err)
		}
	}},
}

// seedRow inserts one platform withdrawal in state, due at `due` (also its
// creation time unless set changes it), with set applied first.
func seedRow(t *testing.T, db *store.DB, no string, state withdrawal.State, due time.Time, set func(w *store.Withdrawal)) *store.Withdrawal {
	t.Helper()
	w := store.Withdrawal{
		ID: withdrawal.NewID(), Channel: string(withdrawal.ChannelWeChatPlatform), Account: "acct", OutRequestNo: no,
		MerchantKey: "m", Amount: 100, ParamsHash: "h", Params: []byte(`{}`), State: string(state), Version: 3,
		NextAttemptAt: due, CreatedAt: due, UpdatedAt: due,
	}
	if set != nil {
		set(&w)
	}
	if err := db.Gorm().Create(&w).Error; err != nil {
		t.Fatal(err)
	}
	return get(t, db, w.ID)
}

func get(t *testing.T, db *store.DB, id string) *store.Withdrawal {
	t.Helper()
	w, err := store.GetWithdrawal(context.Background(), db, id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// leaseForPoll runs LeaseForPoll in a transaction of its own.
func leaseForPoll(t *testing.T, db *store.DB, l store.PollLease) ([]store.Withdrawal, time.Time) {
	t.Helper()
	ctx := context.Background()
	var rows []store.Withdrawal
	var until time.Time
	err := db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		rows, until, err = store.LeaseForPoll(ctx, tx, l)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows, until
}

// assertStuck checks the count and the list (oldest first, with the time
// each one's age counts from) of class c.
func assertStuck(t *testing.T, db *store.DB, c store.StuckClass, count int64, want []*store.Withdrawal, since []time.Time) {
	t.Helper()
	ctx := context.Background()
	n, err := store.CountStuck(ctx, db, c)
	if err != nil || n != count {
		t.Errorf("%s/%s: count %d, %v; want %d", c.State, c.ProviderStatus, n, err, count)
	}
	rows, err := store.ListStuck(ctx, db, c, 10)
	if err != nil {
		t.Fatalf("%s/%s: list: %v", c.State, c.ProviderStatus, err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%s/%s: listed %+v, want %d rows", c.State, c.ProviderStatus, rows, len(want))
	}
	for i, w := range want {
		r := rows[i]
		if r.ID != w.ID || r.OutRequestNo != w.OutRequestNo || r.Channel != w.Channel || r.Account != w.Account ||
			r.State != w.State || !r.Since.Equal(since[i]) {
			t.Errorf("%s/%s row %d: %+v, want %s since %v", c.State, c.ProviderStatus, i, r, w.OutRequestNo, since[i])
		}
	}
}
