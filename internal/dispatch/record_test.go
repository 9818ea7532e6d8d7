package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// One bad answer in a batch must not cost the others: the batch transaction
// fails as a whole, and each answer is then written on its own.
func TestRecordBatchIsolatesABadAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MariaDB")
	}
	ctx := context.Background()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	ids := storetest.Seed(t, db, keys,
		providertest.Command(withdrawal.ChannelWeChatEcommerce, "GOOD1", 100),
		providertest.Command(withdrawal.ChannelWeChatEcommerce, "BAD1", 200))
	d := New(db, nil, keys, Options{Instance: "t"})
	now := time.Now().UTC().Truncate(time.Microsecond)

	// Claim both by hand, as takeAll would.
	claim := func(id string) claimed {
		t.Helper()
		if err := db.Exec("UPDATE withdrawals SET state = ?, claimed_from = ?, lease_owner = ?, lease_expires_at = ? WHERE id = ?",
			string(withdrawal.StateSubmitting), string(withdrawal.StateAccepted), d.owner, now.Add(time.Minute), id).Error; err != nil {
			t.Fatal(err)
		}
		w, err := store.GetWithdrawal(ctx, db.DB, id)
		if err != nil {
			t.Fatal(err)
		}
		return claimed{row: *w}
	}
	good := recordJob{c: claim(ids["GOOD1"]), done: make(chan error, 1), change: transition.Change{
		To: withdrawal.StateSubmitted, NextAttemptAt: now.Add(time.Hour),
		Attempts: []store.Attempt{{Operation: OpSubmit, StartedAt: now, Outcome: "accepted", Instance: "t"}},
	}}
	// ACCEPTED -> REVERSED is no transition: Apply refuses it.
	bad := recordJob{c: claim(ids["BAD1"]), done: make(chan error, 1), change: transition.Change{
		To: withdrawal.StateReversed, NextAttemptAt: now.Add(time.Hour),
		Attempts: []store.Attempt{{Operation: OpSubmit, StartedAt: now, Outcome: "accepted", Instance: "t"}},
	}}

	d.recordBatch(ctx, []recordJob{good, bad})

	if err := <-good.done; err != nil {
		t.Fatalf("good answer: %v", err)
	}
	if err := <-bad.done; err == nil {
		t.Fatal("bad answer recorded without an error")
	}
	g, err := store.GetWithdrawal(ctx, db.DB, ids["GOOD1"])
	if err != nil {
		t.Fatal(err)
	}
	if g.State != string(withdrawal.StateSubmitted) || g.Version != 2 {
		t.Errorf("good withdrawal: %s v%d, want SUBMITTED v2", g.State, g.Version)
	}
	b, err := store.GetWithdrawal(ctx, db.DB, ids["BAD1"])
	if err != nil {
		t.Fatal(err)
	}
	if b.State != string(withdrawal.StateSubmitting) || b.Version != 1 {
		t.Errorf("bad withdrawal: %s v%d, want untouched SUBMITTING v1 (its lease expires into UNKNOWN)", b.State, b.Version)
	}
	for id, want := range map[string]int{ids["GOOD1"]: 2, ids["BAD1"]: 1} {
		events, err := store.EventsOf(ctx, db.DB, id)
		if err != nil {
			t.Fatal(err)
		}
		attempts, err := store.AttemptsOf(ctx, db.DB, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != want || len(attempts) != want-1 {
			t.Errorf("%s: %d events and %d audit rows, want %d and %d", id, len(events), len(attempts), want, want-1)
		}
	}
}
