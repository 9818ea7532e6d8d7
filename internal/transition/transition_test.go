package transition_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// databases are the dialects ApplyAll's statement must work on.
func databases(t *testing.T) map[string]*store.DB {
	t.Helper()
	dbs := map[string]*store.DB{"sqlite": storetest.SQLite(t)}
	if !testing.Short() {
		dbs["mysql"], _ = storetest.MySQL(t, store.PoolOptions{})
	}
	return dbs
}

// claimAll seeds one ACCEPTED withdrawal per name and claims them all as
// the dispatcher does (SUBMITTING under owner), returning the claim
// snapshots in order.
func claimAll(t *testing.T, db *store.DB, owner string, now time.Time, names ...string) []store.Withdrawal {
	t.Helper()
	ctx := context.Background()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*withdrawal.Command
	for _, n := range names {
		cmds = append(cmds, providertest.Command(withdrawal.ChannelWeChatEcommerce, n, 100))
	}
	ids := storetest.Seed(t, db, keys, cmds...)
	var out []store.Withdrawal
	for _, n := range names {
		if err := db.Gorm().Exec("UPDATE withdrawals SET state = ?, claimed_from = ?, lease_owner = ?, lease_expires_at = ?, next_attempt_at = ? WHERE id = ?",
			string(withdrawal.StateSubmitting), string(withdrawal.StateAccepted), owner, now.Add(time.Minute), now.Add(time.Minute), ids[n]).Error; err != nil {
			t.Fatal(err)
		}
		w, err := store.GetWithdrawal(ctx, db, ids[n])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *w)
	}
	return out
}

// answers is a mix of what the dispatcher records: acceptances with and
// without a provider reference, a rejection, an ambiguous answer, a 429 put
// back without an event, and a re-drive that clears the re-send request.
func answers(now time.Time) []transition.Change {
	attempt := func(outcome string) []store.Attempt {
		return []store.Attempt{{Operation: "submit", StartedAt: now, Outcome: outcome, Instance: "t"}}
	}
	no := false
	return []transition.Change{
		{To: withdrawal.StateSubmitted, ProviderRef: "REF-1", ProviderStatus: "CREATE_SUCCESS", NextAttemptAt: now.Add(time.Hour), AddSubmissions: 1, Attempts: attempt("accepted")},
		{To: withdrawal.StateFailed, ReasonCode: "NOT_ENOUGH", Reason: "余额不足", NextAttemptAt: now, AddSubmissions: 1, Attempts: attempt("rejected")},
		{To: withdrawal.StateAccepted, NextAttemptAt: now.Add(time.Second), Attempts: attempt("retry_later")},
		{To: withdrawal.StateUnknown, ReasonCode: "SYSTEM_ERROR", NextAttemptAt: now.Add(2 * time.Minute), AddSubmissions: 2, Attempts: attempt("ambiguous")},
		{To: withdrawal.StateSubmitted, Resubmit: &no, NextAttemptAt: now.Add(time.Hour), AddSubmissions: 1},
		{To: withdrawal.StateSubmitted, NextAttemptAt: now.Add(time.Hour), AddSubmissions: 1, Attempts: attempt("accepted")},
	}
}

// comparable is what a change writes to a row.
func comparable(w *store.Withdrawal) string {
	return fmt.Sprintf("state=%s from=%q owner=%q lease=%v next=%s status=%q ref=%q subs=%d resubmit=%v version=%d reason=%q/%q submitted=%v final=%v updated=%s",
		w.State, w.ClaimedFrom, w.LeaseOwner, w.LeaseExpiresAt, w.NextAttemptAt.UTC().Format(time.RFC3339Nano), w.ProviderStatus, w.ProviderRef,
		w.Submissions, w.ResubmitRequested, w.Version, w.ReasonCode, w.Reason, w.SubmittedAt != nil, w.FinalAt != nil, w.UpdatedAt.UTC().Format(time.RFC3339Nano))
}

// TestApplyAllWritesWhatApplyWrites: the same answers written one by one
// (ApplyDeferred) and together (ApplyAll) leave identical rows, events and
// audit rows, on both dialects.
//
// Two batches: every kind of answer by one owner (columns that differ per
// row, CASE guards collapsed), and the same answer to rows of two owners
// (columns collapsed, the lease-owner guard per row).
func TestApplyAllWritesWhatApplyWrites(t *testing.T) {
	ctx := context.Background()
	for name, db := range databases(t) {
		for _, batch := range []string{"mixed answers", "two owners"} {
			t.Run(name+"/"+batch, func(t *testing.T) {
				testApplyAllWritesWhatApplyWrites(ctx, t, db, batch == "two owners")
			})
		}
	}
}

func testApplyAllWritesWhatApplyWrites(ctx context.Context, t *testing.T, db *store.DB, twoOwners bool) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	changes := answers(now)
	prefix := "M"
	if twoOwners {
		prefix = "T"
		for i := range changes {
			changes[i] = answers(now)[0]
			changes[i].ProviderRef = fmt.Sprintf("REF-%d", i)
		}
	}
	var aNames, bNames []string
	for i := range changes {
		aNames = append(aNames, fmt.Sprintf("%sONE%d", prefix, i))
		bNames = append(bNames, fmt.Sprintf("%sALL%d", prefix, i))
	}
	half := len(changes) // all by "owner"
	if twoOwners {
		half = len(changes) / 2 // the rest by "other"
	}
	one := append(claimAll(t, db, "owner", now, aNames[:half]...), claimAll(t, db, "other", now, aNames[half:]...)...)
	all := append(claimAll(t, db, "owner", now, bNames[:half]...), claimAll(t, db, "other", now, bNames[half:]...)...)

	var oneRows, allRows transition.Writes
	if err := db.InTx(ctx, func(tx *store.Tx) error {
		for i := range one {
			if _, err := transition.ApplyDeferred(ctx, tx, &one[i], changes[i], now, &oneRows); err != nil {
				return err
			}
		}
		return oneRows.Flush(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}
	items := make([]transition.Pending, len(all))
	for i := range all {
		items[i] = transition.Pending{W: &all[i], C: changes[i]}
	}
	if err := db.InTx(ctx, func(tx *store.Tx) error {
		if err := transition.ApplyAll(ctx, tx, items, now, &allRows); err != nil {
			return err
		}
		return allRows.Flush(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}

	for i := range changes {
		a, err := store.GetWithdrawal(ctx, db, one[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := store.GetWithdrawal(ctx, db, all[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if comparable(a) != comparable(b) {
			t.Errorf("answer %d (%s):\n one by one: %s\n together:   %s", i, changes[i].To, comparable(a), comparable(b))
		}
		// The snapshot handed in is now the row as written.
		if comparable(&all[i]) != comparable(b) {
			t.Errorf("answer %d: snapshot after ApplyAll:\n %s\n database:\n %s", i, comparable(&all[i]), comparable(b))
		}
		for _, table := range []string{"outbox", "withdrawal_attempts"} {
			var na, nb int64
			if err := db.Gorm().Table(table).Where("withdrawal_id = ?", a.ID).Count(&na).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Gorm().Table(table).Where("withdrawal_id = ?", b.ID).Count(&nb).Error; err != nil {
				t.Fatal(err)
			}
			if na != nb {
				t.Errorf("answer %d: %d %s rows one by one, %d together", i, na, table, nb)
			}
		}
	}
}

// TestApplyAllIsAllOrNothing: one claim lost behind the batch's back (here
// its version moved) fails the whole statement with ErrStale, and after
// the caller's rollback no row of the batch has changed.
func TestApplyAllIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			now := time.Now().UTC().Truncate(time.Microsecond)
			rows := claimAll(t, db, "owner", now, "S0", "S1", "S2")
			if err := db.Gorm().Exec("UPDATE withdrawals SET version = version + 1 WHERE id = ?", rows[1].ID).Error; err != nil {
				t.Fatal(err)
			}
			items := make([]transition.Pending, len(rows))
			for i := range rows {
				items[i] = transition.Pending{W: &rows[i], C: transition.Change{To: withdrawal.StateSubmitted, NextAttemptAt: now.Add(time.Hour)}}
			}
			var w transition.Writes
			err := db.InTx(ctx, func(tx *store.Tx) error { return transition.ApplyAll(ctx, tx, items, now, &w) })
			if !errors.Is(err, transition.ErrStale) {
				t.Fatalf("ApplyAll with a lost claim = %v, want ErrStale", err)
			}
			for _, r := range rows {
				got, err := store.GetWithdrawal(ctx, db, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != string(withdrawal.StateSubmitting) {
					t.Errorf("%s is %s after the failed batch, want SUBMITTING", r.OutRequestNo, got.State)
				}
			}
		})
	}
}
