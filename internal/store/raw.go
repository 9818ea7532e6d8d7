package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// The dispatcher's claim and record statements go straight to the
// connection: they are complete SQL already, and GORM's Exec and Scan spent
// more CPU building its own statement from the arguments and filling
// structs by reflection than the rest of the claim did (docs/bench.md).
// GORM still runs the transactions around them.

// execRaw runs a complete statement on tx's connection (the *sql.Tx inside a
// transaction) and returns the rows it affected. Its placeholders are plain
// "?": a slice argument is not expanded, use placeholders.
func execRaw(ctx context.Context, ex Executor, q string, args ...any) (int64, error) {
	tx := ex.handle()
	res, err := tx.Statement.ConnPool.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryRaw runs a complete SELECT on tx's connection, as execRaw does.
func queryRaw(ctx context.Context, ex Executor, q string, args ...any) (*sql.Rows, error) {
	tx := ex.handle()
	return tx.Statement.ConnPool.QueryContext(ctx, q, args...)
}

// placeholders returns "?, ?, …" for n values, for an IN list.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// appendStrings appends values to args as []any elements, for an IN list.
func appendStrings(args []any, values []string) []any {
	for _, v := range values {
		args = append(args, v)
	}
	return args
}

// withdrawalColumnList lists every column of withdrawals in the order
// scanWithdrawals reads them: a SELECT for scanWithdrawals names them
// (never "*", whose order is the table's).
var withdrawalColumnList = strings.Join([]string{
	"id", "channel", "account", "out_request_no", "merchant_key", "amount", "params_hash", "params",
	"sensitive_key_id", "sensitive_data", "state", "version", "provider_status", "provider_ref",
	"reason_code", "reason", "submissions", "next_attempt_at", "lease_owner", "lease_expires_at",
	"claimed_from", "first_sent_at", "resubmit_requested", "provider_request", "provider_request_serial",
	"submitted_at", "final_at", "created_at", "updated_at",
}, ", ")

// scanWithdrawals reads rows selected with withdrawalColumnList, appending to
// out, and closes rows.
func scanWithdrawals(rows *sql.Rows, out []Withdrawal) ([]Withdrawal, error) {
	defer rows.Close()
	for rows.Next() {
		var w Withdrawal
		if err := rows.Scan(&w.ID, &w.Channel, &w.Account, &w.OutRequestNo, &w.MerchantKey, &w.Amount, &w.ParamsHash, &w.Params,
			&w.SensitiveKeyID, &w.SensitiveData, &w.State, &w.Version, &w.ProviderStatus, &w.ProviderRef,
			&w.ReasonCode, &w.Reason, &w.Submissions, &w.NextAttemptAt, &w.LeaseOwner, &w.LeaseExpiresAt,
			&w.ClaimedFrom, &w.FirstSentAt, &w.ResubmitRequested, &w.ProviderRequest, &w.ProviderRequestSerial,
			&w.SubmittedAt, &w.FinalAt, &w.CreatedAt, &w.UpdatedAt); err != nil {
			return out, fmt.Errorf("read withdrawal: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read withdrawals: %w", err)
	}
	return out, nil
}
