// Package storetest holds helpers for tests that need withdrawals in a
// database: seeding them as the intake would, and a log sink to inspect.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/invariant"
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
	if err := store.InsertWithdrawals(ctx, db, rows); err != nil {
		t.Fatal(err)
	}
	if err := store.InsertOutbox(ctx, db, events); err != nil {
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

// MySQLOneConnection is a migrated MySQL database opened with a pool of one
// connection, so that the session's status counters (IndexRowsRead) are the
// code's own.
func MySQLOneConnection(t testing.TB) *store.DB {
	t.Helper()
	_, dsn := MySQL(t, store.PoolOptions{})
	db, err := store.OpenMySQL(context.Background(), dsn, store.PoolOptions{MaxOpen: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// FillWithdrawals inserts n withdrawals of the platform channel in state,
// due at `at`, with one INSERT … SELECT over MariaDB's sequence engine, as
// months of history would leave them; then it refreshes the statistics.
func FillWithdrawals(t testing.TB, db *store.DB, state withdrawal.State, n int, at time.Time) {
	t.Helper()
	prefix := fmt.Sprintf("%s%s%09d-", state[:3], state[len(state)-3:], at.UnixNano()%1e9)
	err := db.Gorm().Exec(`INSERT INTO withdrawals (id, channel, account, out_request_no, merchant_key, amount, params_hash, params,
			state, version, next_attempt_at, created_at, updated_at, final_at, first_sent_at)
		SELECT LEFT(CONCAT(?, seq), 36), 'wechatpay_platform', 'default', LEFT(CONCAT(?, seq), 32), 'wechatpay_platform/default',
			100, REPEAT('0', 64), '{}', ?, 3, ?, ?, ?, ?, ?
		FROM seq_1_to_`+strconv.Itoa(n), prefix, prefix, string(state), at, at.Add(-48*time.Hour), at.Add(-48*time.Hour),
		at.Add(-24*time.Hour), at.Add(-48*time.Hour)).Error
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Gorm().Exec("ANALYZE TABLE withdrawals").Error; err != nil {
		t.Fatal(err)
	}
}

// IndexRowsRead is store.IndexRowsRead for a test: read it before and
// after the code under test on a MySQLOneConnection database.
func IndexRowsRead(t testing.TB, db *store.DB) int64 {
	t.Helper()
	n, err := store.IndexRowsRead(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// AssertVersionsGapFree fails the test unless every withdrawal's stored
// events have versions 1..version, in order, the last one the row's state
// (invariant.VersionsGapFree, the chaos suite's check on the topic).
func AssertVersionsGapFree(t testing.TB, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	var rows []store.Withdrawal
	if err := db.Gorm().WithContext(ctx).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	hist := make([]invariant.Row, len(rows))
	var events []invariant.Event
	for i, w := range rows {
		hist[i] = invariant.Row{ID: w.ID, OutRequestNo: w.OutRequestNo, State: w.State, Version: w.Version}
		stored, err := store.EventsOf(ctx, db, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range stored {
			var ev withdrawal.Event
			if err := json.Unmarshal(e.Payload, &ev); err != nil {
				t.Fatalf("%s: event v%d is not JSON: %v", w.OutRequestNo, e.Version, err)
			}
			events = append(events, invariant.Event{WithdrawalID: w.ID, Version: e.Version, State: string(ev.State)})
		}
	}
	for _, v := range invariant.VersionsGapFree(hist, events).Violations {
		t.Error(v)
	}
}
