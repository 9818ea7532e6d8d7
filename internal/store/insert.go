package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The hot inserts are built by hand: GORM's CreateInBatches spent more CPU
// on reflection per row than the database spent storing it (the intake's
// profile, docs/intake.md). Columns left out take their schema defaults.

var withdrawalColumns = []string{"id", "channel", "account", "out_request_no", "merchant_key", "amount",
	"params_hash", "params", "sensitive_key_id", "sensitive_data", "state", "version",
	"next_attempt_at", "created_at", "updated_at"}

var outboxColumns = []string{"event_id", "withdrawal_id", "event_key", "lane", "event_type", "version", "payload", "created_at"}

var attemptColumns = []string{"withdrawal_id", "operation", "started_at", "latency_us", "http_status", "provider_code", "outcome", "instance", "error"}

// maxPlaceholders stays under MySQL's 65,535 parameters per statement.
const maxPlaceholders = 60_000

// InsertWithdrawals inserts new withdrawals (ACCEPTED, no lease, no provider
// data) in multi-row statements. A duplicate key is an error: the caller's
// transaction must roll back and look again, never skip silently.
func InsertWithdrawals(ctx context.Context, ex Executor, rows []Withdrawal) error {
	return insertRows(ctx, ex, "withdrawals", withdrawalColumns, "", len(rows), func(i int, args []any) []any {
		w := &rows[i]
		return append(args, w.ID, w.Channel, w.Account, w.OutRequestNo, w.MerchantKey, w.Amount,
			w.ParamsHash, w.Params, w.SensitiveKeyID, w.SensitiveData, w.State, w.Version,
			w.NextAttemptAt, w.CreatedAt, w.UpdatedAt)
	})
}

// InsertOutbox appends events to the outbox. An event already there is
// skipped: rejection event ids are derived from the command, so a
// redelivered rejection meets its twin on uq_outbox_subject (empty
// withdrawal_id, version 0, event_id) and is stored once. Any other error is
// returned.
func InsertOutbox(ctx context.Context, ex Executor, rows []OutboxEvent) error {
	skip := " ON DUPLICATE KEY UPDATE event_id = event_id"
	if ex.engine() != MySQL {
		skip = " ON CONFLICT (withdrawal_id, version, event_id) DO NOTHING"
	}
	return insertRows(ctx, ex, "outbox", outboxColumns, skip, len(rows), func(i int, args []any) []any {
		e := &rows[i]
		return append(args, e.EventID, e.WithdrawalID, e.EventKey, e.Lane, e.EventType, e.Version, e.Payload, e.CreatedAt)
	})
}

// InsertAttempts records provider calls. The provider's code and the error
// text are cut to their columns (Fit): an audit row is never lost to a long
// code.
func InsertAttempts(ctx context.Context, ex Executor, rows []Attempt) error {
	return insertRows(ctx, ex, "withdrawal_attempts", attemptColumns, "", len(rows), func(i int, args []any) []any {
		a := &rows[i]
		return append(args, a.WithdrawalID, a.Operation, a.StartedAt, a.LatencyUS, a.HTTPStatus,
			Fit(a.ProviderCode, WidthProviderCode), a.Outcome, a.Instance, Fit(a.Error, WidthAttemptError))
	})
}

// preparedSizes are the row counts sent as server-side prepared statements
// (binary protocol), largest first: a batch is cut into these, and only the
// remainder below the smallest goes as SQL text. In the intake's profile
// MariaDB spent about 30% of its CPU parsing the text of the 1,000-row
// INSERTs (lexing and converting every string literal); a prepared
// statement is parsed once per connection and its values arrive as binary.
// Fixed sizes keep the number of prepared statements small and reused.
var preparedSizes = []int{512, 256, 128, 64, 32, 16}

func insertRows(ctx context.Context, ex Executor, table string, cols []string, suffix string, n int, appendRow func(int, []any) []any) error {
	tx := ex.handle()
	per := maxPlaceholders / len(cols)
	prep := preparerOf(ex)
	for start := 0; start < n; {
		rows, prepared := min(n-start, per), false
		if prep != nil {
			for _, size := range preparedSizes {
				if size <= rows && size <= per {
					rows, prepared = size, true
					break
				}
			}
		}
		key := statementKey{table, suffix, rows}
		q := insertStatement(key, cols)
		args := make([]any, 0, rows*len(cols))
		for i := start; i < start+rows; i++ {
			args = appendRow(i, args)
		}
		var err error
		if st := prep.statement(ctx, key, q, prepared); st != nil {
			_, err = st.ExecContext(ctx, args...)
		} else {
			// Straight to the connection (the *sql.Tx inside a
			// transaction): GORM's Exec walks every one of the thousands of
			// arguments to build its own statement first, which cost the
			// intake 7% of its CPU for nothing, as the statement is
			// complete already.
			_, err = tx.Statement.ConnPool.ExecContext(ctx, q, args...)
		}
		if err != nil {
			return fmt.Errorf("insert %d rows into %s: %w", rows, table, err)
		}
		start += rows
	}
	return nil
}

// insertStatement is the multi-row INSERT of key; the ones of the prepared
// sizes are built once.
func insertStatement(key statementKey, cols []string) string {
	table, suffix, rows := key.table, key.suffix, key.rows
	if q, ok := statements.Load(key); ok {
		return q.(string)
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	var q strings.Builder
	q.Grow(len(table) + 64 + rows*(len(tuple)+1) + len(suffix))
	q.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ",") + ") VALUES ")
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(tuple)
	}
	q.WriteString(suffix)
	if slices.Contains(preparedSizes, rows) {
		statements.Store(key, q.String())
	}
	return q.String()
}

type statementKey struct {
	table, suffix string
	rows          int
}

// statements caches the SQL text of the prepared sizes.
var statements sync.Map // statementKey → string

// preparer runs prepared statements inside one MySQL transaction.
type preparer struct {
	db *sql.DB
	tx *sql.Tx
}

// preparerOf returns the preparer of tx, or nil where statements go as text:
// outside a transaction (nothing to bind the statement's connection to) and
// on SQLite (no wire protocol to save).
func preparerOf(ex Executor) *preparer {
	if ex.engine() != MySQL {
		return nil
	}
	tx := ex.handle()
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return nil
	}
	sqlDB, ok := tx.Config.ConnPool.(*sql.DB)
	if !ok {
		return nil
	}
	return &preparer{db: sqlDB, tx: sqlTx}
}

// statement returns q prepared on the transaction's connection, or nil if
// it goes as text: not asked to prepare (p nil or want false), or the
// statement cannot be prepared now. It is prepared once per database handle
// (database/sql then prepares it once per connection, on first use) and
// never closed: there are a dozen per handle.
func (p *preparer) statement(ctx context.Context, key statementKey, q string, want bool) *sql.Stmt {
	if p == nil || !want {
		return nil
	}
	pkey := preparedKey{p.db, key}
	st, ok := preparedStatements.Load(pkey)
	if !ok {
		if at, failed := prepareFailed.Load(pkey); failed && time.Since(at.(time.Time)) < prepareRetryAfter {
			return nil
		}
		// Preparing on the handle takes a connection of the pool. If every
		// connection is held by a transaction (a small pool, and they all
		// wait for this very insert), that wait would never end: bound it,
		// and send this batch as text.
		pctx, cancel := context.WithTimeout(ctx, prepareWait)
		fresh, err := p.db.PrepareContext(pctx, q)
		cancel()
		if err != nil {
			prepareFailed.Store(pkey, time.Now())
			return nil
		}
		var loaded bool
		if st, loaded = preparedStatements.LoadOrStore(pkey, fresh); loaded {
			fresh.Close()
		}
	}
	return p.tx.StmtContext(ctx, st.(*sql.Stmt))
}

// prepareWait bounds the wait for a pool connection to prepare on; after a
// failure the statement goes as text for prepareRetryAfter before the next
// try, so that a pool too small to prepare costs one wait, not one a batch.
const (
	prepareWait       = 2 * time.Second
	prepareRetryAfter = time.Minute
)

// prepareFailed remembers when preparing a statement last failed.
var prepareFailed sync.Map // preparedKey → time.Time

type preparedKey struct {
	db   *sql.DB
	stmt statementKey
}

// preparedStatements holds the prepared INSERTs by database handle and text.
var preparedStatements sync.Map // preparedKey → *sql.Stmt
