package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// ErrNotFound is returned when no row matches.
var ErrNotFound = errors.New("not found")

// KeyHash is the identity and fingerprint of an existing withdrawal: what the
// intake needs to tell a redelivery from a conflict.
type KeyHash struct {
	ID           string
	Channel      string
	Account      string
	OutRequestNo string
	ParamsHash   string
}

// FindKeyHashes returns the withdrawals whose out_request_no is one of nos
// (any channel and account; the caller matches the full key).
//
// It is a plain read, not a locking one: a shared lock would take gap locks
// on keys that do not exist yet, and two intake instances inserting into each
// other's gaps would deadlock. A concurrent insert of the same key instead
// fails the later transaction on the unique index; the caller retries, and
// the retry sees the winner's row.
func FindKeyHashes(ctx context.Context, tx *gorm.DB, nos []string) ([]KeyHash, error) {
	if len(nos) == 0 {
		return nil, nil
	}
	var rows []KeyHash
	err := tx.WithContext(ctx).Model(&Withdrawal{}).
		Select("id", "channel", "account", "out_request_no", "params_hash").
		Where("out_request_no IN ?", nos).
		Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("find withdrawals by out_request_no: %w", err)
	}
	return rows, nil
}

// GetWithdrawal loads one withdrawal by id.
func GetWithdrawal(ctx context.Context, db *gorm.DB, id string) (*Withdrawal, error) {
	var w Withdrawal
	err := db.WithContext(ctx).Where("id = ?", id).Take(&w).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("withdrawal %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get withdrawal %s: %w", id, err)
	}
	return &w, nil
}

// GetWithdrawalByKey loads one withdrawal by its idempotency key.
func GetWithdrawalByKey(ctx context.Context, db *gorm.DB, channel, account, outRequestNo string) (*Withdrawal, error) {
	var w Withdrawal
	err := db.WithContext(ctx).
		Where("out_request_no = ? AND channel = ? AND account = ?", outRequestNo, channel, account).
		Take(&w).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("withdrawal %s/%s/%s: %w", channel, account, outRequestNo, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get withdrawal %s/%s/%s: %w", channel, account, outRequestNo, err)
	}
	return &w, nil
}

// EventsOf lists the outbox events of a withdrawal still kept, oldest first.
func EventsOf(ctx context.Context, db *gorm.DB, withdrawalID string) ([]OutboxEvent, error) {
	var rows []OutboxEvent
	// uq_outbox_subject (withdrawal_id, version, event_id) serves this.
	if err := db.WithContext(ctx).Where("withdrawal_id = ?", withdrawalID).Order("version, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("events of %s: %w", withdrawalID, err)
	}
	return rows, nil
}

// AttemptsOf lists the provider calls made for a withdrawal, oldest first.
func AttemptsOf(ctx context.Context, db *gorm.DB, withdrawalID string) ([]Attempt, error) {
	var rows []Attempt
	if err := db.WithContext(ctx).Where("withdrawal_id = ?", withdrawalID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", withdrawalID, err)
	}
	return rows, nil
}

// CountByState counts withdrawals per state.
func CountByState(ctx context.Context, db *gorm.DB) (map[string]int64, error) {
	var rows []struct {
		State string
		N     int64
	}
	if err := db.WithContext(ctx).Model(&Withdrawal{}).Select("state, COUNT(*) AS n").Group("state").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count by state: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}
