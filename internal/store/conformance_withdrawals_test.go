package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var withdrawalOperations = []operation{
	{"UpdateWithdrawals/one", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		w := seedWithdrawal(t, db, "one", now)
		status, ref := "PROCESSING", "ref-1"
		change := store.WithdrawalChange{
			ID: w.ID, Version: w.Version, State: w.State, LeaseOwner: w.LeaseOwner,
			NewState: string(withdrawal.StateSubmitted), NextAttemptAt: now.Add(time.Minute), UpdatedAt: now,
			ProviderStatus: &status, ProviderRef: &ref, AddSubmissions: 1, NewVersion: w.Version + 1, SubmittedAt: &now,
		}
		n, err := store.UpdateWithdrawals(ctx, db, []store.WithdrawalChange{change})
		if err != nil || n != 1 {
			t.Fatalf("update: %d rows, %v", n, err)
		}
		got, err := store.GetWithdrawal(ctx, db, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != string(withdrawal.StateSubmitted) || got.Version != w.Version+1 || got.ProviderStatus != status ||
			got.ProviderRef != ref || got.Submissions != 1 || got.SubmittedAt == nil || !got.NextAttemptAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("row after update: %+v", got)
		}
		// The same guard again matches nothing: the version moved on.
		if n, err := store.UpdateWithdrawals(ctx, db, []store.WithdrawalChange{change}); err != nil || n != 0 {
			t.Fatalf("stale update: %d rows, %v; want 0", n, err)
		}
	}},
	{"UpdateWithdrawals/batch", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		a, b, c := seedWithdrawal(t, db, "a", now), seedWithdrawal(t, db, "b", now), seedWithdrawal(t, db, "c", now)
		code, reason := "NOT_ENOUGH", "balance"
		changes := []store.WithdrawalChange{
			{ID: a.ID, Version: a.Version, State: a.State, NewState: string(withdrawal.StateSubmitted),
				NextAttemptAt: now.Add(time.Second), UpdatedAt: now, AddSubmissions: 1, NewVersion: a.Version + 1},
			{ID: b.ID, Version: b.Version, State: b.State, NewState: string(withdrawal.StateFailed),
				NextAttemptAt: now.Add(2 * time.Second), UpdatedAt: now, ReasonCode: &code, Reason: &reason,
				NewVersion: b.Version + 1, FinalAt: &now},
			// c's guard is stale: its row is at another version.
			{ID: c.ID, Version: c.Version + 5, State: c.State, NewState: string(withdrawal.StateSubmitted),
				NextAttemptAt: now, UpdatedAt: now},
		}
		n, err := store.UpdateWithdrawals(ctx, db, changes)
		if err != nil || n != 2 {
			t.Fatalf("batch update: %d rows, %v; want 2 (the third guard is stale)", n, err)
		}
		ga, _ := store.GetWithdrawal(ctx, db, a.ID)
		gb, _ := store.GetWithdrawal(ctx, db, b.ID)
		gc, _ := store.GetWithdrawal(ctx, db, c.ID)
		if ga.State != string(withdrawal.StateSubmitted) || ga.Submissions != 1 || ga.ReasonCode != "" || !ga.NextAttemptAt.Equal(now.Add(time.Second)) {
			t.Errorf("a: %+v", ga)
		}
		if gb.State != string(withdrawal.StateFailed) || gb.Submissions != 0 || gb.ReasonCode != code || gb.Reason != reason || gb.FinalAt == nil {
			t.Errorf("b: %+v", gb)
		}
		if gc.State != c.State || gc.Version != c.Version {
			t.Errorf("c changed under a stale guard: %+v", gc)
		}
	}},
	{"LockWithdrawal", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := seedWithdrawal(t, db, "lock", time.Now().UTC())
		err := db.InTx(ctx, func(tx *store.Tx) error {
			got, err := store.LockWithdrawal(ctx, tx, w.ID)
			if err != nil {
				return err
			}
			if got.ID != w.ID || got.Version != w.Version {
				t.Errorf("locked %+v, want %+v", got, w)
			}
			_, err = store.LockWithdrawal(ctx, tx, "missing")
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("lock of a missing id: %v, want ErrNotFound", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}},
}
