package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// settled describes a withdrawal as reconciliation finds it: sent, maybe
// settled, created at a chosen time.
type settled struct {
	n           int // tells apart ids created in the same millisecond
	created     time.Time
	channel     withdrawal.Channel
	account, no string
	ref         string
	state       withdrawal.State
	sent        time.Time
	amount      int64
}

// seedSettled inserts s with every column (the intake's insert leaves the
// provider's data out) and an id of the millisecond s.created.
func seedSettled(t *testing.T, db *store.DB, s settled) *store.Withdrawal {
	t.Helper()
	if s.channel == "" {
		s.channel = withdrawal.ChannelWeChatPlatform
	}
	if s.account == "" {
		s.account = "default"
	}
	if s.state == "" {
		s.state = withdrawal.StateSucceeded
	}
	if s.amount == 0 {
		s.amount = 100
	}
	created := s.created.UTC().Truncate(store.TimePrecision)
	w := &store.Withdrawal{
		ID: store.IDAt(created)[:24] + fmt.Sprintf("%012x", s.n), Channel: string(s.channel), Account: s.account,
		OutRequestNo: s.no, MerchantKey: "m", Amount: s.amount, ParamsHash: "h", Params: []byte(`{}`),
		State: string(s.state), Version: 3, ProviderRef: s.ref, ProviderStatus: "SUCCESS",
		NextAttemptAt: created.Add(365 * 24 * time.Hour), CreatedAt: created, UpdatedAt: created,
	}
	if !s.sent.IsZero() {
		sent := s.sent.UTC().Truncate(store.TimePrecision)
		w.FirstSentAt = &sent
	}
	if err := db.Gorm().Create(w).Error; err != nil {
		t.Fatal(err)
	}
	return w
}

func ids(rows []store.Withdrawal) []string {
	out := make([]string, len(rows))
	for i := range rows {
		out[i] = rows[i].ID
	}
	return out
}

// item is a recon item of date about w (nil: none).
func item(date, key, outcome, kind string, w *store.Withdrawal) store.ReconItem {
	it := store.ReconItem{BillDate: date, Source: "src", ItemKey: key, Outcome: outcome, LineKind: kind,
		BillAmount: 100, CreatedAt: time.Now().UTC()}
	if w != nil {
		it.WithdrawalID, it.OutRequestNo, it.OurAmount, it.OurState = w.ID, w.OutRequestNo, w.Amount, w.State
	}
	return it
}

func insertItems(t *testing.T, db *store.DB, items ...store.ReconItem) {
	t.Helper()
	if _, err := store.InsertReconItems(context.Background(), db, items); err != nil {
		t.Fatal(err)
	}
}

func itemsOf(t *testing.T, db *store.DB, date string) []store.ReconItem {
	t.Helper()
	var rows []store.ReconItem
	if err := db.Gorm().Where("bill_date = ?", date).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

var reconOperations = []operation{
	{"TryAdvisoryLock", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// The lock is the server's, not the database's: a name of its own.
		name := fmt.Sprintf("withdraw.test.%d", time.Now().UnixNano())
		release, ok, err := store.TryAdvisoryLock(ctx, db, name)
		if err != nil || !ok || release == nil {
			t.Fatalf("first lock: ok %v, err %v", ok, err)
		}
		again, ok2, err := store.TryAdvisoryLock(ctx, db, name)
		if err != nil || again == nil {
			t.Fatalf("second lock: %v", err)
		}
		switch db.Dialect {
		case store.MySQL:
			// Another connection of the pool asks: held, no wait.
			if ok2 {
				t.Fatal("the lock was granted twice")
			}
		default:
			// One process: nothing to exclude.
			if !ok2 {
				t.Fatal("sqlite refused the lock")
			}
		}
		again() // not held (or a no-op): releases nothing
		if db.Dialect == store.MySQL {
			if _, ok, _ := store.TryAdvisoryLock(ctx, db, name); ok {
				t.Fatal("a refused try's release freed the holder's lock")
			}
		}
		release()
		third, ok, err := store.TryAdvisoryLock(ctx, db, name)
		if err != nil || !ok {
			t.Fatalf("lock after release: ok %v, err %v", ok, err)
		}
		third()
	}},
	{"EnsureReconSource+MarkReconSource", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		row, err := store.EnsureReconSource(ctx, db, "2024-05-01", "a", now)
		if err != nil || row.Status != store.ReconPending || row.Attempts != 0 || !row.CreatedAt.Equal(now) {
			t.Fatalf("new source: %+v, %v", row, err)
		}
		if _, err := store.EnsureReconSource(ctx, db, "2024-05-01", "b", now); err != nil {
			t.Fatal(err)
		}
		// A failure counts an attempt and keeps the (cut) reason; the row
		// stays PENDING.
		why := strings.Repeat("é", store.WidthReconError+100)
		for range 2 {
			if err := store.MarkReconSourceFailed(ctx, db, "2024-05-01", "a", why, now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		srcs, err := store.ReconSources(ctx, db, "2024-05-01")
		if err != nil || len(srcs) != 2 {
			t.Fatalf("sources: %+v, %v", srcs, err)
		}
		a := srcs[0]
		if a.Source != "a" || a.Status != store.ReconPending || a.Attempts != 2 ||
			utf8.RuneCountInString(a.LastError) != store.WidthReconError || !utf8.ValidString(a.LastError) ||
			!a.UpdatedAt.Equal(now.Add(time.Minute)) || a.DoneAt != nil {
			t.Fatalf("after two failures: %+v (last_error %d runes)", a, utf8.RuneCountInString(a.LastError))
		}
		if b := srcs[1]; b.Attempts != 0 || b.LastError != "" {
			t.Fatalf("the other bill changed: %+v", b)
		}
		done := now.Add(2 * time.Minute)
		if err := store.MarkReconSourceDone(ctx, db, "2024-05-01", "a", 1200, 34, done); err != nil {
			t.Fatal(err)
		}
		// Ensuring it again returns the stored row: it creates nothing and
		// resets nothing.
		row, err = store.EnsureReconSource(ctx, db, "2024-05-01", "a", now.Add(time.Hour))
		if err != nil || row.Status != store.ReconDone || row.Attempts != 3 || row.LastError != "" ||
			row.BillLines != 1200 || row.OtherLines != 34 || row.DoneAt == nil || !row.DoneAt.Equal(done) || !row.CreatedAt.Equal(now) {
			t.Fatalf("done source: %+v, %v", row, err)
		}
	}},
	{"ReconWithdrawalsByOutRequestNo", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		at := time.Now().UTC()
		p1 := seedSettled(t, db, settled{n: 1, created: at, no: "N1", ref: "R1", sent: at})
		seedSettled(t, db, settled{n: 2, created: at, no: "N1", account: "other", sent: at})
		e1 := seedSettled(t, db, settled{n: 3, created: at, no: "N2", channel: withdrawal.ChannelWeChatEcommerce, sent: at})
		seedSettled(t, db, settled{n: 4, created: at, no: "N3", channel: withdrawal.ChannelWeChatCancel, sent: at})
		seedSettled(t, db, settled{n: 5, created: at, no: "N4", sent: at})
		chans := []withdrawal.Channel{withdrawal.ChannelWeChatPlatform, withdrawal.ChannelWeChatEcommerce}
		rows, err := store.ReconWithdrawalsByOutRequestNo(ctx, db, "default", chans, []string{"N1", "N2", "N3", "absent"})
		if err != nil {
			t.Fatal(err)
		}
		got := ids(rows)
		slices.Sort(got)
		if want := []string{p1.ID, e1.ID}; !slices.Equal(got, want) {
			t.Fatalf("found %v, want %v (account default, channels %v)", got, want, chans)
		}
		for _, r := range rows {
			if r.ID == p1.ID && (r.ProviderRef != "R1" || r.Amount != 100 || r.State != string(withdrawal.StateSucceeded) ||
				r.Version != 3 || r.FirstSentAt == nil || r.OutRequestNo != "N1") {
				t.Errorf("columns reconciliation reads: %+v", r)
			}
			if r.MerchantKey != "" || r.ParamsHash != "" {
				t.Errorf("read more columns than reconciliation needs: %+v", r)
			}
		}
		if rows, err := store.ReconWithdrawalsByOutRequestNo(ctx, db, "default", chans, nil); err != nil || len(rows) != 0 {
			t.Fatalf("no numbers: %v, %v", rows, err)
		}
	}},
	{"ReconWithdrawalsByProviderRef", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		from := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
		to := from.Add(48 * time.Hour)
		in := seedSettled(t, db, settled{n: 1, created: from, no: "N1", ref: "R1", sent: from})
		last := seedSettled(t, db, settled{n: 2, created: to.Add(-time.Millisecond), no: "N2", ref: "R2", sent: from})
		seedSettled(t, db, settled{n: 3, created: from.Add(-time.Millisecond), no: "N3", ref: "R3", sent: from})
		seedSettled(t, db, settled{n: 4, created: to, no: "N4", ref: "R4", sent: from})
		seedSettled(t, db, settled{n: 5, created: from, no: "N5", ref: "R5", account: "other", sent: from})
		seedSettled(t, db, settled{n: 6, created: from, no: "N6", ref: "R6", channel: withdrawal.ChannelWeChatEcommerce, sent: from})
		rows, err := store.ReconWithdrawalsByProviderRef(ctx, db, "default", []withdrawal.Channel{withdrawal.ChannelWeChatPlatform},
			[]string{"R1", "R2", "R3", "R4", "R5", "R6"}, from, to)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(rows)
		slices.Sort(got)
		if want := []string{in.ID, last.ID}; !slices.Equal(got, want) {
			t.Fatalf("found %v, want %v: created in [from, to), account and channel", got, want)
		}
		if rows, err := store.ReconWithdrawalsByProviderRef(ctx, db, "default", nil, nil, from, to); err != nil || len(rows) != 0 {
			t.Fatalf("no refs: %v, %v", rows, err)
		}
	}},
	{"ListSucceededFirstSent", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		day := time.Date(2024, 5, 1, 16, 0, 0, 0, time.UTC) // midnight in Beijing
		created := day.Add(-time.Hour)
		var want []string
		for i := range 5 {
			w := seedSettled(t, db, settled{n: 10 + i, created: created, no: fmt.Sprintf("OK%d", i), sent: day.Add(time.Duration(i) * time.Hour)})
			want = append(want, w.ID)
		}
		e := seedSettled(t, db, settled{n: 20, created: created, no: "E", channel: withdrawal.ChannelWeChatEcommerce, sent: day})
		want = append(want, e.ID)
		// Not listed: sent the day before or after, not SUCCEEDED, never
		// sent, another channel, created outside the window.
		seedSettled(t, db, settled{n: 30, created: created, no: "before", sent: day.Add(-time.Microsecond)})
		seedSettled(t, db, settled{n: 31, created: created, no: "after", sent: day.Add(24 * time.Hour)})
		seedSettled(t, db, settled{n: 32, created: created, no: "failed", state: withdrawal.StateFailed, sent: day})
		seedSettled(t, db, settled{n: 33, created: created, no: "submitted", state: withdrawal.StateSubmitted, sent: day})
		seedSettled(t, db, settled{n: 34, created: created, no: "unsent"})
		seedSettled(t, db, settled{n: 35, created: created, no: "cancel", channel: withdrawal.ChannelWeChatCancel, sent: day})
		seedSettled(t, db, settled{n: 36, created: day.Add(-8 * 24 * time.Hour), no: "old", sent: day})
		page := store.FirstSentPage{
			Channels:    []withdrawal.Channel{withdrawal.ChannelWeChatPlatform, withdrawal.ChannelWeChatEcommerce},
			CreatedFrom: day.Add(-7 * 24 * time.Hour), CreatedTo: day.Add(48 * time.Hour),
			SentFrom: day, SentTo: day.Add(24 * time.Hour), Limit: 4,
		}
		var got []string
		pages := 0
		for {
			rows, err := store.ListSucceededFirstSent(ctx, db, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > page.Limit {
				t.Fatalf("page of %d rows, limit %d", len(rows), page.Limit)
			}
			if len(rows) == 0 {
				break
			}
			pages++
			got = append(got, ids(rows)...)
			page.After = rows[len(rows)-1].ID
		}
		if !slices.Equal(got, want) || pages != 2 {
			t.Fatalf("listed %v in %d pages, want %v (in id order) in 2", got, pages, want)
		}
	}},
	{"ReconBooked", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		at := time.Now().UTC()
		var ws []*store.Withdrawal
		for i := range 6 {
			ws = append(ws, seedSettled(t, db, settled{n: i, created: at, no: fmt.Sprintf("N%d", i), sent: at}))
		}
		insertItems(t, db,
			item("2024-05-01", "f0", store.ReconMatched, store.ReconLineWithdraw, ws[0]),
			item("2024-05-02", "f0", store.ReconMatched, store.ReconLineWithdraw, ws[0]), // twice: listed once
			item("2024-05-01", "f1", store.ReconAmountMismatch, store.ReconLineWithdraw, ws[1]),
			item("2024-05-01", "f2", store.ReconMatched, store.ReconLineRefund, ws[2]),
			item("2024-05-01", "ours:3", store.ReconMissing, "", ws[3]),
			item("2024-05-01", "f4", store.ReconNotOurs, store.ReconLineWithdraw, ws[4]),
			item("2024-05-01", "f5", store.ReconMatched, store.ReconLineWithdraw, ws[5]), // not asked about
		)
		booked, err := store.ReconBooked(ctx, db, []string{ws[0].ID, ws[1].ID, ws[2].ID, ws[3].ID, ws[4].ID})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(booked)
		if want := []string{ws[0].ID, ws[1].ID}; !slices.Equal(booked, want) {
			t.Fatalf("booked %v, want %v", booked, want)
		}
	}},
	{"InsertReconItems", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var items []store.ReconItem
		for i := range 1100 { // three statements of at most 500
			items = append(items, item("2024-05-01", fmt.Sprintf("f%d", i), store.ReconMatched, store.ReconLineWithdraw, nil))
		}
		n, err := store.InsertReconItems(ctx, db, items)
		if err != nil || n != 1100 {
			t.Fatalf("inserted %d, %v; want 1100", n, err)
		}
		// Again with two new ones: only those count.
		items = append(items[:300], item("2024-05-01", "new1", store.ReconNotOurs, store.ReconLineWithdraw, nil),
			item("2024-05-02", "f0", store.ReconMatched, store.ReconLineWithdraw, nil))
		n, err = store.InsertReconItems(ctx, db, items)
		if err != nil || n != 2 {
			t.Fatalf("re-insert: %d new, %v; want 2", n, err)
		}
		if got := len(itemsOf(t, db, "2024-05-01")); got != 1101 {
			t.Fatalf("%d items stored, want 1101", got)
		}
	}},
	{"RecomputeReconDay+GetReconDay+ReconFindings", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		if _, err := store.GetReconDay(ctx, db, "2024-05-01"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("day never computed: %v, want ErrNotFound", err)
		}
		w := seedSettled(t, db, settled{n: 1, created: now, no: "N1", sent: now, amount: 700})
		missing := item("2024-05-01", "ours:1", store.ReconMissing, "", w)
		missing.BillAmount = 0 // the bill has none: ours counts
		insertItems(t, db,
			item("2024-05-01", "f1", store.ReconMatched, store.ReconLineWithdraw, nil),
			item("2024-05-01", "f2", store.ReconMatched, store.ReconLineWithdraw, nil),
			item("2024-05-01", "f3", store.ReconNotOurs, store.ReconLineWithdraw, nil),
			item("2024-05-01", "f4", store.ReconRefund, store.ReconLineRefund, nil),
			missing,
			item("2024-05-02", "f1", store.ReconNotOurs, store.ReconLineWithdraw, nil), // another day
		)
		for _, s := range []string{"a", "b"} {
			if _, err := store.EnsureReconSource(ctx, db, "2024-05-01", s, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.MarkReconSourceDone(ctx, db, "2024-05-01", "a", 10, 3, now); err != nil {
			t.Fatal(err)
		}
		d, err := store.RecomputeReconDay(ctx, db, "2024-05-01", 2, now)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != store.ReconPending || d.SourcesDone != 1 || d.MatchedCount != 2 || d.MatchedFen != 200 ||
			d.NotOursCount != 1 || d.RefundCount != 1 || d.MissingCount != 1 || d.MissingFen != 700 || d.BillLines != 10 || d.OtherLines != 3 {
			t.Fatalf("one bill of two read: %+v", d)
		}
		if err := store.MarkReconSourceDone(ctx, db, "2024-05-01", "b", 5, 0, now); err != nil {
			t.Fatal(err)
		}
		if _, err := store.RecomputeReconDay(ctx, db, "2024-05-01", 2, now); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetReconDay(ctx, db, "2024-05-01")
		if err != nil || got.Status != store.ReconDone || got.SourcesDone != 2 || got.BillLines != 15 || got.MatchedCount != 2 {
			t.Fatalf("every bill read: %+v, %v", got, err)
		}
		// Findings: everything but MATCHED, by outcome, at most limit.
		f, err := store.ReconFindings(ctx, db, "2024-05-01", 10)
		if err != nil {
			t.Fatal(err)
		}
		var outcomes []string
		for _, it := range f {
			outcomes = append(outcomes, it.Outcome)
		}
		if want := []string{store.ReconMissing, store.ReconNotOurs, store.ReconRefund}; !slices.Equal(outcomes, want) {
			t.Fatalf("findings %v, want %v", outcomes, want)
		}
		if f, err := store.ReconFindings(ctx, db, "2024-05-01", 2); err != nil || len(f) != 2 {
			t.Fatalf("limit 2: %d findings, %v", len(f), err)
		}
	}},
	{"RecordReconFinding", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		w := seedSettled(t, db, settled{n: 1, created: now, no: "N1", sent: now})
		record := func(it store.ReconItem, requery *store.Withdrawal, at time.Time) (bool, string) {
			t.Helper()
			var isNew bool
			var by string
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				var err error
				isNew, by, err = store.RecordReconFinding(ctx, tx, it, requery, at)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return isNew, by
		}
		refund := item("2024-05-01", "f1", store.ReconRefund, store.ReconLineRefund, w)
		if isNew, by := record(refund, w, now); !isNew || by != "poller" {
			t.Fatalf("new refund: new %v, requeried by %q; want the poller", isNew, by)
		}
		got, _ := store.GetWithdrawal(ctx, db, w.ID)
		if !got.NextAttemptAt.Equal(now) || got.Version != w.Version || got.State != w.State {
			t.Fatalf("requeried row: %+v; want due at %s, nothing else changed", got, now)
		}
		// The same finding again: not new, no second query.
		if isNew, by := record(refund, w, now.Add(time.Hour)); isNew || by != "" {
			t.Fatalf("repeated refund: new %v, requeried by %q", isNew, by)
		}
		if got, _ := store.GetWithdrawal(ctx, db, w.ID); !got.NextAttemptAt.Equal(now) {
			t.Fatalf("a repeated finding queried again: due %s", got.NextAttemptAt)
		}
		// No withdrawal to query.
		if isNew, by := record(item("2024-05-01", "f2", store.ReconNotOurs, store.ReconLineWithdraw, nil), nil, now); !isNew || by != "" {
			t.Fatalf("not ours: new %v, requeried by %q", isNew, by)
		}
		// The row moved on: recorded, not queried.
		stale := *w
		stale.Version--
		if isNew, by := record(item("2024-05-01", "ours:1", store.ReconMissing, "", w), &stale, now.Add(time.Hour)); !isNew || by != "" {
			t.Fatalf("stale row: new %v, requeried by %q", isNew, by)
		}
		if got, _ := store.GetWithdrawal(ctx, db, w.ID); !got.NextAttemptAt.Equal(now) {
			t.Fatalf("a stale finding queried: due %s", got.NextAttemptAt)
		}
		if n := len(itemsOf(t, db, "2024-05-01")); n != 3 {
			t.Fatalf("%d items, want 3", n)
		}
		// A failed query rolls the item back with it.
		missing := item("2024-05-02", "ours:1", store.ReconMissing, "", w)
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, _, err := store.RecordReconFinding(ctx, tx, missing, w, now); err != nil {
				return err
			}
			return fmt.Errorf("later step failed")
		})
		if err == nil || len(itemsOf(t, db, "2024-05-02")) != 0 {
			t.Fatalf("rolled back transaction kept its finding (err %v)", err)
		}
	}},
	{"Requery", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		for i, c := range []struct {
			state withdrawal.State
			by    string
		}{
			{withdrawal.StateSucceeded, "poller"}, {withdrawal.StateSubmitted, "poller"},
			{withdrawal.StateUnknown, "dispatcher"}, {withdrawal.StateFailed, ""},
		} {
			w := seedSettled(t, db, settled{n: i, created: now, no: string(c.state), state: c.state, sent: now})
			by, ok, err := store.Requery(ctx, db, w, now)
			if err != nil || by != c.by || ok != (c.by != "") {
				t.Fatalf("%s: by %q, ok %v, %v; want %q", c.state, by, ok, err, c.by)
			}
			// The same time again changes no row (MySQL then counts 0
			// rows): still at that version, so still ok.
			if by, ok, err := store.Requery(ctx, db, w, now); err != nil || by != c.by || ok != (c.by != "") {
				t.Fatalf("%s again: by %q, ok %v, %v", c.state, by, ok, err)
			}
			got, _ := store.GetWithdrawal(ctx, db, w.ID)
			if due := got.NextAttemptAt.Equal(now); due != (c.by != "") {
				t.Fatalf("%s: due %s", c.state, got.NextAttemptAt)
			}
		}
	}},
	{"ResolveLateMissing", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		at := time.Now().UTC()
		w1 := seedSettled(t, db, settled{n: 1, created: at, no: "N1", sent: at})
		w2 := seedSettled(t, db, settled{n: 2, created: at, no: "N2", sent: at})
		insertItems(t, db,
			item("2024-05-01", "ours:1", store.ReconMissing, "", w1),                  // resolved
			item("2024-05-01", "f1", store.ReconNotOurs, store.ReconLineWithdraw, w1), // not MISSING
			item("2024-05-01", "ours:2", store.ReconMissing, "", w2),                  // not asked about
			item("2024-05-02", "ours:1", store.ReconMissing, "", w1),                  // the day itself
			item("2024-05-03", "ours:1", store.ReconMissing, "", w1),                  // a later day
		)
		late, err := store.ResolveLateMissing(ctx, db, "2024-05-02", []string{w1.ID})
		if err != nil || len(late) != 1 || late[0].BillDate != "2024-05-01" || late[0].Outcome != store.ReconMissing ||
			late[0].WithdrawalID != w1.ID {
			t.Fatalf("resolved %+v, %v; want the MISSING item of 2024-05-01, as it was", late, err)
		}
		outcome := func(date, key string) store.ReconItem {
			for _, it := range itemsOf(t, db, date) {
				if it.ItemKey == key {
					return it
				}
			}
			t.Fatalf("no item %s %s", date, key)
			return store.ReconItem{}
		}
		if it := outcome("2024-05-01", "ours:1"); it.Outcome != store.ReconMatched || it.Note != "booked on the bill of 2024-05-02" {
			t.Fatalf("resolved item: %+v", it)
		}
		for _, k := range []struct{ date, key, outcome string }{
			{"2024-05-01", "f1", store.ReconNotOurs}, {"2024-05-01", "ours:2", store.ReconMissing},
			{"2024-05-02", "ours:1", store.ReconMissing}, {"2024-05-03", "ours:1", store.ReconMissing},
		} {
			if it := outcome(k.date, k.key); it.Outcome != k.outcome || it.Note != "" {
				t.Errorf("%s %s changed: %+v", k.date, k.key, it)
			}
		}
		if late, err := store.ResolveLateMissing(ctx, db, "2024-05-02", []string{w1.ID}); err != nil || len(late) != 0 {
			t.Fatalf("second run resolved %+v, %v", late, err)
		}
	}},
}
