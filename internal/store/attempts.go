package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PurgeAttempts deletes up to limit audit rows (withdrawal_attempts) that
// started before cutoff, oldest first, and returns how many it deleted. It
// reads the first rows by primary key — the oldest, since ids grow with
// time — and deletes those by primary key, so each call locks at most limit
// records and no range new audit rows insert into; no index on started_at
// is needed. Callers loop, pausing between calls, until it returns 0.
func PurgeAttempts(ctx context.Context, ex Executor, cutoff time.Time, limit int) (int64, error) {
	db := ex.handle()
	var rows []struct {
		ID        int64
		StartedAt time.Time
	}
	if err := db.WithContext(ctx).Raw("SELECT id, started_at FROM withdrawal_attempts ORDER BY id LIMIT ?", limit).
		Scan(&rows).Error; err != nil {
		return 0, fmt.Errorf("select audit rows to purge: %w", err)
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		if !r.StartedAt.Before(cutoff) {
			break
		}
		ids = append(ids, strconv.FormatInt(r.ID, 10))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res := db.WithContext(ctx).Exec("DELETE FROM withdrawal_attempts WHERE id IN (" + strings.Join(ids, ",") + ")")
	if res.Error != nil {
		return 0, fmt.Errorf("purge %d audit rows: %w", len(ids), res.Error)
	}
	return res.RowsAffected, nil
}
