// Package storetest holds helpers for tests that need withdrawals in a
// database: seeding them as the intake would, and a log sink to inspect.
package storetest

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Seed stores valid commands as ACCEPTED withdrawals with their
// withdrawal.accepted events, as the intake would, and returns their ids by
// out_request_no. An invalid command fails the test.
func Seed(t testing.TB, db *store.DB, keys *pii.Keyring, cmds ...*withdrawal.Command) map[string]string {
	t.Helper()
	now := time.Now().UTC()
	ids := make(map[string]string, len(cmds))
	rows := make([]store.Withdrawal, 0, len(cmds))
	events := make([]store.OutboxEvent, 0, len(cmds))
	for _, c := range cmds {
		if rej := withdrawal.Validate(c); rej != nil {
			t.Fatalf("storetest: %s: %v", c.OutRequestNo, rej)
		}
		h, err := withdrawal.ParamsHash(c)
		if err != nil {
			t.Fatal(err)
		}
		row, err := store.NewWithdrawalRow(withdrawal.NewID(), c, h, keys, now)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := outbox.Record(row.Event(withdrawal.NewID(), "", now), now)
		if err != nil {
			t.Fatal(err)
		}
		rows, events = append(rows, row), append(events, rec)
		ids[c.OutRequestNo] = row.ID
	}
	ctx := context.Background()
	if err := store.InsertWithdrawals(ctx, db.DB, rows); err != nil {
		t.Fatal(err)
	}
	if err := store.InsertOutbox(ctx, db.DB, events); err != nil {
		t.Fatal(err)
	}
	return ids
}

// LogBuffer is a log sink safe for concurrent writers, for slog handlers in
// tests that inspect what was logged.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// MySQL returns a migrated, empty database of its own on the local test
// environment's server (closed and dropped when the test ends) and its DSN.
func MySQL(t testing.TB, pool store.PoolOptions) (*store.DB, string) {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.FreshDatabase(t)
	db, err := store.OpenMySQL(ctx, dsn, pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

// SQLite returns a migrated, empty SQLite database in a file of the test's
// temporary directory, closed when the test ends.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "withdraw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
