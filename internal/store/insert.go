package store

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
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
func InsertWithdrawals(ctx context.Context, tx *gorm.DB, rows []Withdrawal) error {
	return insertRows(ctx, tx, "withdrawals", withdrawalColumns, "", len(rows), func(i int, args []any) []any {
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
func InsertOutbox(ctx context.Context, tx *gorm.DB, rows []OutboxEvent) error {
	skip := " ON DUPLICATE KEY UPDATE event_id = event_id"
	if tx.Dialector.Name() != "mysql" {
		skip = " ON CONFLICT (withdrawal_id, version, event_id) DO NOTHING"
	}
	return insertRows(ctx, tx, "outbox", outboxColumns, skip, len(rows), func(i int, args []any) []any {
		e := &rows[i]
		return append(args, e.EventID, e.WithdrawalID, e.EventKey, e.Lane, e.EventType, e.Version, e.Payload, e.CreatedAt)
	})
}

// InsertAttempts records provider calls.
func InsertAttempts(ctx context.Context, tx *gorm.DB, rows []Attempt) error {
	return insertRows(ctx, tx, "withdrawal_attempts", attemptColumns, "", len(rows), func(i int, args []any) []any {
		a := &rows[i]
		return append(args, a.WithdrawalID, a.Operation, a.StartedAt, a.LatencyUS, a.HTTPStatus, a.ProviderCode, a.Outcome, a.Instance, a.Error)
	})
}

func insertRows(ctx context.Context, tx *gorm.DB, table string, cols []string, suffix string, n int, appendRow func(int, []any) []any) error {
	per := maxPlaceholders / len(cols)
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ",") + ") VALUES "
	for start := 0; start < n; start += per {
		end := min(start+per, n)
		var q strings.Builder
		q.Grow(len(head) + (end-start)*(len(tuple)+1) + len(suffix))
		q.WriteString(head)
		args := make([]any, 0, (end-start)*len(cols))
		for i := start; i < end; i++ {
			if i > start {
				q.WriteByte(',')
			}
			q.WriteString(tuple)
			args = appendRow(i, args)
		}
		q.WriteString(suffix)
		// Straight to the connection (the *sql.Tx inside a transaction):
		// GORM's Exec walks every one of the thousands of arguments to
		// build its own statement first, which cost the intake 7% of its
		// CPU for nothing, as the statement is complete already.
		if _, err := tx.Statement.ConnPool.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("insert %d rows into %s: %w", end-start, table, err)
		}
	}
	return nil
}
