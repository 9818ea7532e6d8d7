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

// TestExecuteAndRecord: what execute and recordBatch do with claims they
// cannot carry through — a call that must not start any more, an answer
// the batch cannot write — driven by hand, without Run.
func TestExecuteAndRecord(t *testing.T) {
	t.Parallel()

	// setup gives a subtest a fresh MariaDB database and a PII keyring.
	setup := func(t *testing.T) (*store.DB, *pii.Keyring) {
		t.Helper()
		if testing.Short() {
			t.Skip("needs MariaDB")
		}
		db, _ := storetest.MySQL(t, store.PoolOptions{})
		keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
		if err != nil {
			t.Fatal(err)
		}
		return db, keys
	}

	// One bad answer in a batch must not cost the others: the batch
	// transaction fails as a whole, and each answer is then written on its
	// own.
	t.Run("BadAnswerInABatchCostsTheOthersNothing", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db, keys := setup(t)
		ids := storetest.Seed(t, db, keys,
			providertest.Command(withdrawal.ChannelWeChatEcommerce, "GOOD1", 100),
			providertest.Command(withdrawal.ChannelWeChatEcommerce, "BAD1", 200))
		d := mustNew(t, db, nil, keys, Options{Instance: "t"})
		now := time.Now().UTC().Truncate(time.Microsecond)

		// Claim both, as takeAll would.
		claim := func(id string) claimed {
			t.Helper()
			if lost, err := store.ClaimWithdrawals(ctx, db, []store.Claim{{ID: id, Version: 1}}, d.owner, now.Add(time.Minute), now); err != nil || len(lost) > 0 {
				t.Fatalf("claim %s: lost %v, %v", id, lost, err)
			}
			w, err := store.GetWithdrawal(ctx, db, id)
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
		g, err := store.GetWithdrawal(ctx, db, ids["GOOD1"])
		if err != nil {
			t.Fatal(err)
		}
		if g.State != string(withdrawal.StateSubmitted) || g.Version != 2 {
			t.Errorf("good withdrawal: %s v%d, want SUBMITTED v2", g.State, g.Version)
		}
		b, err := store.GetWithdrawal(ctx, db, ids["BAD1"])
		if err != nil {
			t.Fatal(err)
		}
		if b.State != string(withdrawal.StateSubmitting) || b.Version != 1 {
			t.Errorf("bad withdrawal: %s v%d, want untouched SUBMITTING v1 (its lease expires into UNKNOWN)", b.State, b.Version)
		}
		for id, want := range map[string]int{ids["GOOD1"]: 2, ids["BAD1"]: 1} {
			events, err := store.EventsOf(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			attempts, err := store.AttemptsOf(ctx, db, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != want || len(attempts) != want-1 {
				t.Errorf("%s: %d events and %d audit rows, want %d and %d", id, len(events), len(attempts), want, want-1)
			}
		}
	})

	// A claim that waited for a call slot through half its lease is put
	// back unsent: calling now could outlive the lease, and another
	// instance would then declare it "maybe sent" while it is being sent.
	t.Run("ClaimThatWaitedTooLongIsPutBack", func(t *testing.T) {
		t.Parallel()
		db, keys := setup(t)
		d, id, c := claimedByHand(t, db, keys, "WAITED1", 20*time.Second) // 40 of 60s gone
		d.execute(context.Background(), c)
		assertPutBack(t, d, db, id)
	})

	// A claim still waiting for a slot when the dispatcher shuts down is
	// put back unsent: no new provider call starts after SIGTERM.
	t.Run("ClaimAfterShutdownIsPutBack", func(t *testing.T) {
		t.Parallel()
		db, keys := setup(t)
		d, id, c := claimedByHand(t, db, keys, "STOPPED1", time.Minute) // fresh
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.execute(ctx, c)
		assertPutBack(t, d, db, id)
	})
}

// claimedByHand seeds one withdrawal in db and claims it for a dispatcher
// without providers (a provider call would fail the test by panicking),
// with a lease of 60s that ends in leaseLeft, counted as pending as Run
// would.
func claimedByHand(t *testing.T, db *store.DB, keys *pii.Keyring, outRequestNo string, leaseLeft time.Duration) (*Dispatcher, string, claimed) {
	t.Helper()
	id := storetest.Seed(t, db, keys, providertest.Command(withdrawal.ChannelWeChatEcommerce, outRequestNo, 100))[outRequestNo]
	d := mustNew(t, db, nil, keys, Options{Instance: "t", LeaseTTL: time.Minute})
	lease := time.Now().UTC().Add(leaseLeft).Truncate(time.Microsecond)
	if lost, err := store.ClaimWithdrawals(context.Background(), db, []store.Claim{{ID: id, Version: 1}}, d.owner, lease, time.Now().UTC()); err != nil || len(lost) > 0 {
		t.Fatalf("claim %s: lost %v, %v", id, lost, err)
	}
	w, err := store.GetWithdrawal(context.Background(), db, id)
	if err != nil {
		t.Fatal(err)
	}
	d.pending.Add(1)
	d.wg.Add(1)
	return d, id, claimed{row: *w}
}

// assertPutBack checks that a claim went back to ACCEPTED unsent.
func assertPutBack(t *testing.T, d *Dispatcher, db *store.DB, id string) {
	t.Helper()
	ctx := context.Background()

	got, err := store.GetWithdrawal(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != string(withdrawal.StateAccepted) || got.Version != 1 || got.LeaseOwner != "" || got.NextAttemptAt.After(time.Now()) {
		t.Errorf("after the wait: %s v%d lease %q next %s, want ACCEPTED v1, no lease, due now", got.State, got.Version, got.LeaseOwner, got.NextAttemptAt)
	}
	if attempts, _ := store.AttemptsOf(ctx, db, got.ID); len(attempts) != 0 {
		t.Errorf("%d audit rows for a call never made", len(attempts))
	}
	if d.pending.Load() != 0 || len(d.sem) != 0 || len(d.recording) != 0 {
		t.Errorf("slots not given back: pending %d, calls %d, recording %d", d.pending.Load(), len(d.sem), len(d.recording))
	}
}
