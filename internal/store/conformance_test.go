package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// engines are the databases every named operation must behave the same on:
// MariaDB in production, SQLite in the single-process devstack.
var engines = []struct {
	name string
	open func(t *testing.T) *store.DB
}{
	{"mariadb", func(t *testing.T) *store.DB { db, _ := storetest.MySQL(t, store.PoolOptions{}); return db }},
	{"sqlite", func(t *testing.T) *store.DB { return storetest.SQLite(t) }},
}

// operation is one conformance test: it gets a fresh, migrated, empty
// database of one engine.
type operation struct {
	name string
	test func(t *testing.T, db *store.DB)
}

// operations lists the conformance tests of the named operations, one entry
// per operation or group of operations that only make sense together. Each
// file conformance_*_test.go contributes its own list.
func operations() [][]operation {
	return [][]operation{
		withdrawalOperations,
		readOperations,
		reconOperations,
		intakeOperations,
		pollOperations,
		dispatchOperations,
		outboxOperations,
	}
}

// TestStore is the store's conformance suite, in the manner of River's
// driver test suite: every named operation against both engines, each
// subtest on a database of its own.
func TestStore(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine.name, func(t *testing.T) {
			t.Parallel()
			for _, group := range operations() {
				for _, op := range group {
					t.Run(op.name, func(t *testing.T) {
						t.Parallel()
						op.test(t, engine.open(t))
					})
				}
			}
		})
	}
}

// seedWithdrawal inserts one ACCEPTED platform withdrawal due at `at` and
// returns it as stored.
func seedWithdrawal(t *testing.T, db *store.DB, no string, at time.Time) *store.Withdrawal {
	t.Helper()
	ctx := context.Background()
	id := withdrawal.NewID()
	w := store.Withdrawal{
		ID: id, Channel: string(withdrawal.ChannelWeChatPlatform), Account: "acct", OutRequestNo: no,
		MerchantKey: "m", Amount: 100, ParamsHash: "h", Params: []byte(`{}`),
		State: string(withdrawal.StateAccepted), Version: 1,
		NextAttemptAt: at, CreatedAt: at, UpdatedAt: at,
	}
	if err := db.InTx(ctx, func(tx *store.Tx) error { return store.InsertWithdrawals(ctx, tx, []store.Withdrawal{w}) }); err != nil {
		t.Fatal(err)
	}
	got, err := store.GetWithdrawal(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
