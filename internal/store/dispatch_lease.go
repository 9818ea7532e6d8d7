package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// LockExpiredLeases locks, for the rest of tx, up to limit claims whose
// lease ran out before now (SUBMITTING rows past their next_attempt_at,
// which a claim sets to the lease's expiry), earliest first: the instance
// holding them died or hung, and the caller moves them on. Any instance may
// run it at any time: on MySQL rows another transaction holds are skipped
// (SKIP LOCKED), not waited for. SQLite has no row locks; its single writer
// serialises the sweeps.
func LockExpiredLeases(ctx context.Context, tx *Tx, now time.Time, limit int) ([]Withdrawal, error) {
	var rows []Withdrawal
	q := tx.g.WithContext(ctx).Where("state = ? AND next_attempt_at < ?", string(withdrawal.StateSubmitting), now).
		Order("next_attempt_at").Limit(limit)
	if tx.dialect == MySQL {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find expired leases: %w", err)
	}
	return rows, nil
}
