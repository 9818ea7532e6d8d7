package intake

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/paycore/withdraw/internal/store"
)

// The intake's two INSERTs are built by hand: GORM's CreateInBatches spent
// more CPU on reflection per row than the database spent storing it (see
// docs/intake.md). Columns left out take their schema defaults; a new
// withdrawal has no lease, no provider data and no submissions yet.

var withdrawalColumns = []string{"id", "channel", "account", "out_request_no", "merchant_key", "amount",
	"params_hash", "params", "sensitive_key_id", "sensitive_data", "state", "version",
	"next_attempt_at", "created_at", "updated_at"}

var outboxColumns = []string{"event_id", "withdrawal_id", "event_key", "lane", "event_type", "version", "payload", "created_at"}

// maxPlaceholders stays under MySQL's 65,535 parameters per statement.
const maxPlaceholders = 60_000

// insertWithdrawals inserts new rows; a duplicate key fails the statement
// (and so the transaction, which is retried and then sees the winner's row).
func insertWithdrawals(ctx context.Context, tx *gorm.DB, rows []store.Withdrawal) error {
	return insertRows(ctx, tx, "withdrawals", withdrawalColumns, "", len(rows), func(i int, args []any) []any {
		w := &rows[i]
		return append(args, w.ID, w.Channel, w.Account, w.OutRequestNo, w.MerchantKey, w.Amount,
			w.ParamsHash, w.Params, w.SensitiveKeyID, w.SensitiveData, w.State, w.Version,
			w.NextAttemptAt, w.CreatedAt, w.UpdatedAt)
	})
}

// insertOutbox appends events; an event_id already there is skipped (the
// deterministic ids of redelivered rejections), any other error is not.
func insertOutbox(ctx context.Context, tx *gorm.DB, dialect store.Dialect, rows []store.OutboxEvent) error {
	skipDuplicates := " ON DUPLICATE KEY UPDATE event_id = event_id"
	if dialect == store.SQLite {
		skipDuplicates = " ON CONFLICT (event_id) DO NOTHING"
	}
	return insertRows(ctx, tx, "outbox", outboxColumns, skipDuplicates, len(rows), func(i int, args []any) []any {
		e := &rows[i]
		return append(args, e.EventID, e.WithdrawalID, e.EventKey, e.Lane, e.EventType, e.Version, e.Payload, e.CreatedAt)
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
		if err := tx.WithContext(ctx).Exec(q.String(), args...).Error; err != nil {
			return fmt.Errorf("insert %d rows into %s: %w", end-start, table, err)
		}
	}
	return nil
}
