package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// The dispatcher's operations: registering and locking merchants, counting
// what they have in flight, reading due work, claiming it, and sweeping
// expired leases.
var dispatchOperations = []operation{
	{"RegisterMerchants", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := store.RegisterMerchants(ctx, db, []string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		// Registering again, with a new one among them, skips the known.
		if err := store.RegisterMerchants(ctx, db, []string{"b", "c", "a"}); err != nil {
			t.Fatalf("registering known merchants again: %v", err)
		}
		var keys []string
		if err := db.Gorm().Raw("SELECT merchant_key FROM dispatch_merchants ORDER BY merchant_key").Scan(&keys).Error; err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"a", "b", "c"}) {
			t.Errorf("lock rows %v, want [a b c] once each", keys)
		}
	}},
	{"LockMerchants", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := store.RegisterMerchants(ctx, db, []string{"a", "b", "c"}); err != nil {
			t.Fatal(err)
		}
		lock := func(merchants ...string) []string {
			t.Helper()
			var got []string
			if err := db.InTx(ctx, func(tx *store.Tx) (err error) {
				got, err = store.LockMerchants(ctx, tx, merchants)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return got
		}
		if db.Dialect != store.MySQL {
			// No row locks: the single writer serialises the claims, and
			// every merchant is the caller's, in its order.
			if got := lock("c", "x", "a"); !slices.Equal(got, []string{"c", "x", "a"}) {
				t.Errorf("locked %v, want [c x a]", got)
			}
			return
		}
		if got := lock("c", "x", "a"); !slices.Equal(got, []string{"c", "a"}) {
			t.Errorf("locked %v, want [c a]: in the caller's order, x has no lock row", got)
		}
		// Another claimer holds b: it is skipped, not waited for.
		err := db.InTx(ctx, func(holder *store.Tx) error {
			if got, err := store.LockMerchants(ctx, holder, []string{"b"}); err != nil || !slices.Equal(got, []string{"b"}) {
				return fmt.Errorf("holder locked %v, %v", got, err)
			}
			if got := lock("c", "b", "a"); !slices.Equal(got, []string{"c", "a"}) {
				t.Errorf("locked %v while b is held, want [c a]", got)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := lock("c", "b", "a"); !slices.Equal(got, []string{"c", "b", "a"}) {
			t.Errorf("locked %v once b is free, want [c b a]", got)
		}
	}},
	{"CountInFlight", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		seedRows(t, db,
			dueRow{merchant: "m1", state: withdrawal.StateSubmitting, at: now},
			dueRow{merchant: "m1", state: withdrawal.StateSubmitting, at: now},
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now},
			dueRow{merchant: "m2", state: withdrawal.StateSubmitted, at: now},
			dueRow{merchant: "m3", state: withdrawal.StateSubmitting, at: now})
		got, err := store.CountInFlight(ctx, db, []string{"m1", "m2", "m4"})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"m1": 2}; !maps.Equal(got, want) {
			t.Errorf("in flight %v, want %v (SUBMITTING only, merchants asked for only)", got, want)
		}
		if got, err := store.CountInFlight(ctx, db, nil); err != nil || len(got) != 0 {
			t.Errorf("no merchants: %v, %v", got, err)
		}
	}},
	{"DueMerchants", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		seedRows(t, db,
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now.Add(-time.Second)},
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now.Add(time.Hour)},
			dueRow{merchant: "m1", state: withdrawal.StateUnknown, at: now.Add(time.Minute)}, // not due
			dueRow{merchant: "m2", state: withdrawal.StateUnknown, at: now},                  // due at now exactly
			dueRow{merchant: "m2", state: withdrawal.StateAccepted, at: now.Add(time.Second)},
			dueRow{merchant: "m3", state: withdrawal.StateSubmitted, at: now.Add(-time.Hour)}, // not asked for
			dueRow{merchant: "m4", state: withdrawal.StateAccepted, at: now.Add(time.Hour)})
		due := func(states ...string) []string {
			t.Helper()
			got, err := store.DueMerchants(ctx, db, states, now)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, g := range got {
				out = append(out, g.MerchantKey+"/"+g.State)
			}
			slices.Sort(out)
			return out
		}
		if got, want := due("ACCEPTED", "UNKNOWN"), []string{"m1/ACCEPTED", "m2/UNKNOWN"}; !slices.Equal(got, want) {
			t.Errorf("due %v, want %v", got, want)
		}
		if got, want := due("ACCEPTED"), []string{"m1/ACCEPTED"}; !slices.Equal(got, want) {
			t.Errorf("due ACCEPTED %v, want %v", got, want)
		}
	}},
	{"DueResubmitMerchants", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		ids := seedRows(t, db,
			dueRow{merchant: "m1", state: withdrawal.StateSubmitted, at: now.Add(-time.Second), resubmit: true},
			dueRow{merchant: "m1", state: withdrawal.StateSubmitted, at: now, resubmit: true},
			dueRow{merchant: "m2", state: withdrawal.StateSubmitted, at: now.Add(time.Second), resubmit: true}, // not due
			dueRow{merchant: "m3", state: withdrawal.StateSubmitted, at: now.Add(-time.Second)},                // not requested
			dueRow{merchant: "m4", state: withdrawal.StateUnknown, at: now.Add(-time.Second), resubmit: true})  // not SUBMITTED
		got, err := store.DueResubmitMerchants(ctx, db, now)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"m1"}) {
			t.Errorf("merchants %v, want [m1] once (rows %v)", got, ids)
		}
	}},
	{"DueWithdrawals", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		ids := seedRows(t, db,
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now.Add(-3 * time.Second)},             // 0
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now.Add(-time.Second)},                 // 1: beyond the limit
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now.Add(-2 * time.Second)},             // 2
			dueRow{merchant: "m1", state: withdrawal.StateAccepted, at: now.Add(time.Second)},                  // 3: not due
			dueRow{merchant: "m1", state: withdrawal.StateUnknown, at: now.Add(-5 * time.Second)},              // 4
			dueRow{merchant: "m1", state: withdrawal.StateUnknown, at: now.Add(-4 * time.Second)},              // 5: beyond the limit
			dueRow{merchant: "m2", state: withdrawal.StateAccepted, at: now.Add(-time.Second)},                 // 6: no range reads it
			dueRow{merchant: "m2", state: withdrawal.StateSubmitted, at: now, resubmit: true},                  // 7
			dueRow{merchant: "m2", state: withdrawal.StateSubmitted, at: now.Add(-time.Second)},                // 8: not requested
			dueRow{merchant: "m2", state: withdrawal.StateSubmitted, at: now.Add(time.Minute), resubmit: true}, // 9: not due
			dueRow{merchant: "m3", state: withdrawal.StateUnknown, at: now.Add(-time.Second)},                  // 10: only ACCEPTED read
		)
		got, err := store.DueWithdrawals(ctx, db, []store.DueRange{
			{MerchantKey: "m1", State: "ACCEPTED", Limit: 2},
			{MerchantKey: "m1", State: "UNKNOWN", Limit: 1},
			{MerchantKey: "m2", Resubmit: true, Limit: 5},
			{MerchantKey: "m3", State: "ACCEPTED", Limit: 5},
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{ids[0], ids[2], ids[4], ids[7]}
		if gotIDs := idsOf(got); !slices.Equal(sorted(gotIDs), sorted(want)) {
			t.Errorf("read %v, want %v", gotIDs, want)
		}
		for _, w := range got {
			if w.ID == ids[7] && (!w.ResubmitRequested || w.State != "SUBMITTED" || w.MerchantKey != "m2" || string(w.Params) != `{}`) {
				t.Errorf("row read incompletely: %+v", w)
			}
		}
		if got, err := store.DueWithdrawals(ctx, db, nil, now); err != nil || len(got) != 0 {
			t.Errorf("no ranges: %v, %v", got, err)
		}
	}},
	{"DueWithdrawals/many merchants", func(t *testing.T, db *store.DB) {
		// More merchants than one statement serves: every range is read.
		ctx := context.Background()
		now := testNow()
		var rows []dueRow
		var ranges []store.DueRange
		for i := range 230 {
			m := fmt.Sprintf("m%03d", i)
			rows = append(rows,
				dueRow{merchant: m, state: withdrawal.StateAccepted, at: now.Add(-time.Second)},
				dueRow{merchant: m, state: withdrawal.StateAccepted, at: now.Add(-2 * time.Second)})
			ranges = append(ranges, store.DueRange{MerchantKey: m, State: "ACCEPTED", Limit: 1})
			if i%3 == 0 {
				ranges = append(ranges, store.DueRange{MerchantKey: m, State: "UNKNOWN", Limit: 1})
			}
		}
		ids := seedRows(t, db, rows...)
		for range 2 { // the second time from the cached statement text
			got, err := store.DueWithdrawals(ctx, db, ranges, now)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 1; i < len(ids); i += 2 {
				want = append(want, ids[i]) // each merchant's earlier row
			}
			if gotIDs := idsOf(got); !slices.Equal(sorted(gotIDs), sorted(want)) {
				t.Fatalf("read %d rows, want the earliest of each of the 230 merchants", len(gotIDs))
			}
		}
	}},
	{"ClaimWithdrawals", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		earlier := now.Add(-time.Hour)
		ids := seedRows(t, db,
			dueRow{merchant: "m", state: withdrawal.StateAccepted, at: now},                  // a: first send
			dueRow{merchant: "m", state: withdrawal.StateUnknown, at: now, version: 3},       // b: sent before
			dueRow{merchant: "m", state: withdrawal.StateAccepted, at: now},                  // c: read at another version
			dueRow{merchant: "m", state: withdrawal.StateSubmitting, at: now, version: 2},    // d: claimed by another
			dueRow{merchant: "m", state: withdrawal.StateSubmitted, at: now, resubmit: true}) // e: re-submission
		a, b, c, d, e := ids[0], ids[1], ids[2], ids[3], ids[4]
		update(t, db, b, map[string]any{"provider_request": []byte(`{"old":1}`), "provider_request_serial": "S0", "first_sent_at": earlier})
		update(t, db, d, map[string]any{"lease_owner": "other", "lease_expires_at": now.Add(time.Minute)})
		until := now.Add(time.Minute)
		lost, err := store.ClaimWithdrawals(ctx, db, []store.Claim{
			{ID: a, Version: 1, Request: []byte(`{"new":1}`), RequestSerial: "S1"},
			{ID: b, Version: 3},
			{ID: c, Version: 7},
			{ID: d, Version: 2},
			{ID: e, Version: 1},
		}, "me", until, now)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(lost, []string{c, d}) {
			t.Errorf("lost %v, want [c d] = %v", lost, []string{c, d})
		}
		get := func(id string) *store.Withdrawal {
			t.Helper()
			w, err := store.GetWithdrawal(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		for id, from := range map[string]string{a: "ACCEPTED", b: "UNKNOWN", e: "SUBMITTED"} {
			w := get(id)
			if w.State != "SUBMITTING" || w.ClaimedFrom != from || w.LeaseOwner != "me" || w.LeaseExpiresAt == nil ||
				!w.LeaseExpiresAt.Equal(until) || !w.NextAttemptAt.Equal(until) || !w.UpdatedAt.Equal(now) || w.FirstSentAt == nil {
				t.Errorf("claimed from %s: %+v", from, w)
			}
		}
		if w := get(a); string(w.ProviderRequest) != `{"new":1}` || w.ProviderRequestSerial != "S1" || !w.FirstSentAt.Equal(now) || w.Version != 1 {
			t.Errorf("first send: request %s serial %q first sent %v version %d", w.ProviderRequest, w.ProviderRequestSerial, w.FirstSentAt, w.Version)
		}
		if w := get(b); string(w.ProviderRequest) != `{"old":1}` || w.ProviderRequestSerial != "S0" || !w.FirstSentAt.Equal(earlier) {
			t.Errorf("the stored request and first send were not kept: %s %q %v", w.ProviderRequest, w.ProviderRequestSerial, w.FirstSentAt)
		}
		if w := get(c); w.State != "ACCEPTED" || w.LeaseOwner != "" {
			t.Errorf("stale claim took the row: %+v", w)
		}
		if w := get(d); w.LeaseOwner != "other" || w.ClaimedFrom != "" {
			t.Errorf("another's claim was taken over: %+v", w)
		}
		// Claimed rows are not claimed again by anyone else.
		lost, err = store.ClaimWithdrawals(ctx, db, []store.Claim{{ID: a, Version: 1}}, "third", until, now)
		if err != nil || !slices.Equal(lost, []string{a}) {
			t.Errorf("second claim: lost %v, %v; want [a]", lost, err)
		}
	}},
	{"PostponeWithdrawal", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		id := seedRows(t, db, dueRow{merchant: "m", state: withdrawal.StateAccepted, at: now})[0]
		until := now.Add(5 * time.Minute)
		if ok, err := store.PostponeWithdrawal(ctx, db, id, 2, until, now); err != nil || ok {
			t.Errorf("stale postpone: %v, %v; want false", ok, err)
		}
		if w, _ := store.GetWithdrawal(ctx, db, id); !w.NextAttemptAt.Equal(now) {
			t.Errorf("a stale postpone moved the row to %s", w.NextAttemptAt)
		}
		if ok, err := store.PostponeWithdrawal(ctx, db, id, 1, until, now); err != nil || !ok {
			t.Fatalf("postpone: %v, %v", ok, err)
		}
		if w, _ := store.GetWithdrawal(ctx, db, id); !w.NextAttemptAt.Equal(until) || w.State != "ACCEPTED" || w.Version != 1 {
			t.Errorf("after postponing: %s v%d next %s", w.State, w.Version, w.NextAttemptAt)
		}
	}},
	{"LockExpiredLeases", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		ids := seedRows(t, db,
			dueRow{merchant: "m", state: withdrawal.StateSubmitting, at: now.Add(-2 * time.Second)},
			dueRow{merchant: "m", state: withdrawal.StateSubmitting, at: now.Add(-3 * time.Second)},
			dueRow{merchant: "m", state: withdrawal.StateSubmitting, at: now.Add(-time.Second)},
			dueRow{merchant: "m", state: withdrawal.StateSubmitting, at: now},                  // expires at now: not yet
			dueRow{merchant: "m", state: withdrawal.StateSubmitting, at: now.Add(time.Minute)}, // live
			dueRow{merchant: "m", state: withdrawal.StateAccepted, at: now.Add(-time.Hour)})    // no lease
		expired := func(limit int) []string {
			t.Helper()
			var got []store.Withdrawal
			if err := db.InTx(ctx, func(tx *store.Tx) (err error) {
				got, err = store.LockExpiredLeases(ctx, tx, now, limit)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return idsOf(got)
		}
		if got, want := expired(2), []string{ids[1], ids[0]}; !slices.Equal(got, want) {
			t.Errorf("expired (limit 2) %v, want the two earliest %v", got, want)
		}
		if got, want := expired(10), []string{ids[1], ids[0], ids[2]}; !slices.Equal(got, want) {
			t.Errorf("expired %v, want %v", got, want)
		}
		if db.Dialect != store.MySQL {
			return
		}
		// A row another sweep holds is skipped, not waited for.
		err := db.InTx(ctx, func(holder *store.Tx) error {
			if _, err := store.LockWithdrawal(ctx, holder, ids[1]); err != nil {
				return err
			}
			if got, want := expired(10), []string{ids[0], ids[2]}; !slices.Equal(got, want) {
				t.Errorf("expired %v while one is held, want %v", got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}},
	{"AddSubmissions", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		ids := seedRows(t, db,
			dueRow{merchant: "m", state: withdrawal.StateUnknown, at: now.Add(-time.Hour)},
			dueRow{merchant: "m", state: withdrawal.StateUnknown, at: now.Add(-time.Hour)})
		later := now.Add(time.Second)
		for range 2 {
			if err := store.AddSubmissions(ctx, db, ids[0], 2, later); err != nil {
				t.Fatal(err)
			}
		}
		w, _ := store.GetWithdrawal(ctx, db, ids[0])
		if w.Submissions != 4 || !w.UpdatedAt.Equal(later) || w.State != "UNKNOWN" || w.Version != 1 {
			t.Errorf("after adding 2+2 sends: %d sends, updated %s, %s v%d", w.Submissions, w.UpdatedAt, w.State, w.Version)
		}
		if other, _ := store.GetWithdrawal(ctx, db, ids[1]); other.Submissions != 0 {
			t.Errorf("another row counted %d sends", other.Submissions)
		}
	}},
	{"InTxReadCommitted", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := testNow()
		ids := seedRows(t, db, dueRow{merchant: "m", state: withdrawal.StateAccepted, at: now})
		// An error rolls back.
		boom := errors.New("boom")
		err := db.InTxReadCommitted(ctx, func(tx *store.Tx) error {
			if _, err := store.PostponeWithdrawal(ctx, tx, ids[0], 1, now.Add(time.Hour), now); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err %v, want boom", err)
		}
		if w, _ := store.GetWithdrawal(ctx, db, ids[0]); !w.NextAttemptAt.Equal(now) {
			t.Errorf("a rolled back postpone stayed: next %s", w.NextAttemptAt)
		}
		if db.Dialect != store.MySQL {
			return
		}
		// A claim another instance commits meanwhile counts at once: the
		// in-flight cap must see it.
		err = db.InTxReadCommitted(ctx, func(tx *store.Tx) error {
			if n, err := store.CountInFlight(ctx, tx, []string{"m"}); err != nil || n["m"] != 0 {
				return fmt.Errorf("before: %v, %v", n, err)
			}
			if lost, err := store.ClaimWithdrawals(ctx, db, []store.Claim{{ID: ids[0], Version: 1}}, "other", now.Add(time.Minute), now); err != nil || lost != nil {
				return fmt.Errorf("claim: lost %v, %v", lost, err)
			}
			if n, err := store.CountInFlight(ctx, tx, []string{"m"}); err != nil || n["m"] != 1 {
				t.Errorf("in flight after another's commit: %v, %v; want 1", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}},
}

// testNow is now at the schema's precision.
func testNow() time.Time { return time.Now().UTC().Truncate(store.TimePrecision) }

// dueRow is a withdrawal to seed for the dispatcher's operations.
type dueRow struct {
	merchant string
	state    withdrawal.State
	at       time.Time // next_attempt_at
	version  int       // default 1
	resubmit bool      // resubmit_requested
}

// seedRows inserts rows and returns their ids, in order.
func seedRows(t *testing.T, db *store.DB, rows ...dueRow) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, len(rows))
	ws := make([]store.Withdrawal, len(rows))
	for i, r := range rows {
		ids[i] = withdrawal.NewID()
		v := r.version
		if v == 0 {
			v = 1
		}
		ws[i] = store.Withdrawal{
			ID: ids[i], Channel: string(withdrawal.ChannelWeChatEcommerce), Account: "acct", OutRequestNo: "D" + ids[i],
			MerchantKey: r.merchant, Amount: 100, ParamsHash: "h", Params: []byte(`{}`),
			State: string(r.state), Version: v, NextAttemptAt: r.at, CreatedAt: r.at, UpdatedAt: r.at,
		}
	}
	if err := db.InTx(ctx, func(tx *store.Tx) error { return store.InsertWithdrawals(ctx, tx, ws) }); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if r.resubmit {
			update(t, db, ids[i], map[string]any{"resubmit_requested": true})
		}
	}
	return ids
}

// update sets columns of one row, as the other packages' statements would.
func update(t *testing.T, db *store.DB, id string, cols map[string]any) {
	t.Helper()
	if err := db.Gorm().Table("withdrawals").Where("id = ?", id).Updates(cols).Error; err != nil {
		t.Fatal(err)
	}
}

func idsOf(rows []store.Withdrawal) []string {
	out := make([]string, len(rows))
	for i := range rows {
		out[i] = rows[i].ID
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
