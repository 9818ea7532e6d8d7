package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// The poller's operations: the sweep's claim, the audit read of the INIT
// rule, the daily stuck report and the daily job's named lock.

// PollLease is one claim of the poller's sweep: up to Limit due rows,
// FollowUps of them kept for the follow-ups of SUCCEEDED rows.
type PollLease struct {
	// Now decides which rows are due (next_attempt_at <= Now) and is the
	// start of the lease.
	Now time.Time
	// Limit is the most rows claimed.
	Limit int
	// FollowUps is the share of Limit taken first from the SUCCEEDED rows
	// (refunds, 退票), so that a backlog of first queries (the 08:00
	// burst) never starves them, nor they it: each class takes its share
	// first, then what the other left.
	FollowUps int
	// Lease is how long a claim of n rows is held: the claimed rows' next
	// attempt moves to Now + Lease(n), so that other sweeps skip them until
	// then. Nil or a non-positive duration holds them until Now.
	Lease func(n int) time.Duration
}

// pollColumns are the columns a sweep needs (not the stored request).
var pollColumns = []string{"id", "channel", "account", "out_request_no", "amount", "params", "state", "version",
	"provider_status", "provider_ref", "reason_code", "reason", "submissions", "next_attempt_at", "claimed_from",
	"first_sent_at", "resubmit_requested", "submitted_at", "final_at", "created_at", "updated_at"}

// LeaseForPoll claims the rows the poller's sweep is due to query: the
// SUCCEEDED rows due (followed for refunds, or taken once to leave the
// sweep when their channel has none) up to l.FollowUps, then the SUBMITTED
// rows due that wait for no re-send (those are the dispatcher's) up to what
// is left of l.Limit, then more SUCCEEDED rows if the first take came back
// full; oldest due first within each take. It moves their next_attempt_at
// to the lease mark, which it returns (zero when nothing was due): a result
// is to be applied only while the row still carries it.
//
// The rows are read with SELECT … FOR UPDATE SKIP LOCKED on MySQL, so
// concurrent sweeps of other instances skip them instead of waiting, and
// each take is a range of ix_withdrawals_due (state, next_attempt_at),
// reading no row that is not due (TestPollerScale/IdleSweepReadsNoRowThatIsNotDue in internal/poll).
// On SQLite the single-writer connection serialises the claims instead.
// The rows come back as read: NextAttemptAt is the due time, not the mark.
func LeaseForPoll(ctx context.Context, tx *Tx, l PollLease) ([]Withdrawal, time.Time, error) {
	now := l.Now
	lock := func(q *gorm.DB) *gorm.DB {
		if tx.dialect == MySQL {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
		}
		return q
	}
	g := tx.g.WithContext(ctx)
	var rows []Withdrawal
	take := func(what string, limit int, q *gorm.DB) error {
		if limit <= 0 {
			return nil
		}
		var more []Withdrawal
		if err := lock(q.Select(pollColumns).Order("next_attempt_at").Limit(limit)).Find(&more).Error; err != nil {
			return fmt.Errorf("claim %s: %w", what, err)
		}
		rows = append(rows, more...)
		return nil
	}
	succeeded := func() *gorm.DB {
		return g.Where("state = ? AND next_attempt_at <= ?", string(withdrawal.StateSucceeded), now)
	}
	followShare := max(min(l.FollowUps, l.Limit), 0)
	if err := take("succeeded", followShare, succeeded()); err != nil {
		return nil, time.Time{}, err
	}
	follows := len(rows)
	if err := take("submitted", l.Limit-follows, g.Where("state = ? AND next_attempt_at <= ? AND resubmit_requested = ?",
		string(withdrawal.StateSubmitted), now, false)); err != nil {
		return nil, time.Time{}, err
	}
	if follows == followShare {
		// More follow-ups may be due: the rest of the batch.
		ids := make([]string, follows)
		for i := range ids {
			ids[i] = rows[i].ID
		}
		q := succeeded()
		if len(ids) > 0 {
			q = q.Where("id NOT IN ?", ids)
		}
		if err := take("succeeded", l.Limit-len(rows), q); err != nil {
			return nil, time.Time{}, err
		}
	}
	if len(rows) == 0 {
		return nil, time.Time{}, nil
	}
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	var lease time.Duration
	if l.Lease != nil {
		lease = max(l.Lease(len(rows)), 0)
	}
	until := now.Add(lease).Truncate(TimePrecision)
	if err := g.Model(&Withdrawal{}).Where("id IN ?", ids).Update("next_attempt_at", until).Error; err != nil {
		return nil, time.Time{}, fmt.Errorf("lease claimed rows: %w", err)
	}
	return rows, until, nil
}

// LatestAttemptStart is when the latest audit row of withdrawalID among
// the given operations started (the last time a request left for the
// provider, for the INIT rule), or zero when there is none: one range of
// ix_attempts_withdrawal. Inside a transaction, pass it: SQLite's single
// connection is busy with the transaction, so a read through the pool would
// wait forever.
func LatestAttemptStart(ctx context.Context, ex Executor, withdrawalID string, operations []string) (time.Time, error) {
	if len(operations) == 0 {
		return time.Time{}, nil
	}
	q := ex.handle().WithContext(ctx).Model(&Attempt{}).Select("MAX(started_at)").
		Where("withdrawal_id = ? AND operation IN ?", withdrawalID, operations)
	if ex.engine() == SQLite {
		// SQLite's MAX loses the column's type and returns the stored
		// text, which database/sql does not read into a time.
		var text sql.NullString
		if err := q.Scan(&text).Error; err != nil {
			return time.Time{}, fmt.Errorf("latest attempt of %s: %w", withdrawalID, err)
		}
		if !text.Valid || text.String == "" {
			return time.Time{}, nil
		}
		t, err := parseSQLiteTime(text.String)
		if err != nil {
			return time.Time{}, fmt.Errorf("latest attempt of %s: %w", withdrawalID, err)
		}
		return t, nil
	}
	var last sql.NullTime // NULL when there is no such row
	if err := q.Scan(&last).Error; err != nil {
		return time.Time{}, fmt.Errorf("latest attempt of %s: %w", withdrawalID, err)
	}
	return last.Time, nil
}

// StuckAge names the time a stuck withdrawal's age counts from.
type StuckAge int

const (
	// SinceFirstSent counts from when the request first left for the
	// provider: first_sent_at, else submitted_at, else created_at.
	SinceFirstSent StuckAge = iota
	// SinceCreated counts from when the withdrawal was accepted.
	SinceCreated
)

// column is the SQL of the age's time.
func (a StuckAge) column() string {
	if a == SinceCreated {
		return "created_at"
	}
	return "COALESCE(first_sent_at, submitted_at, created_at)"
}

// StuckClass describes one class of stuck withdrawals: those in State
// (with ProviderStatus when set) whose age time is before Before and, when
// NotBefore is set, not before NotBefore.
type StuckClass struct {
	State          string
	ProviderStatus string
	Age            StuckAge
	Before         time.Time
	NotBefore      time.Time
}

// where is the class's WHERE clause and its arguments.
func (c StuckClass) where() (string, []any) {
	w, args := "state = ?", []any{c.State}
	if c.ProviderStatus != "" {
		w += " AND provider_status = ?"
		args = append(args, c.ProviderStatus)
	}
	age := c.Age.column()
	w += " AND " + age + " < ?"
	args = append(args, c.Before)
	if !c.NotBefore.IsZero() {
		w += " AND " + age + " >= ?"
		args = append(args, c.NotBefore)
	}
	return w, args
}

// StuckWithdrawal is one stuck withdrawal: what the report logs and the
// console shows. Since is the time its age counts from.
type StuckWithdrawal struct {
	ID           string
	Channel      string
	Account      string
	OutRequestNo string
	State        string
	Since        time.Time
}

// CountStuck counts the withdrawals of class c: a range of
// ix_withdrawals_due on the state, the age filtered on its rows (the stuck
// states hold few rows).
func CountStuck(ctx context.Context, ex Executor, c StuckClass) (int64, error) {
	where, args := c.where()
	var n int64
	if err := ex.handle().WithContext(ctx).Model(&Withdrawal{}).Where(where, args...).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count stuck %s: %w", c.State, err)
	}
	return n, nil
}

// ListStuck lists up to limit withdrawals of class c, oldest first.
func ListStuck(ctx context.Context, ex Executor, c StuckClass, limit int) ([]StuckWithdrawal, error) {
	if limit <= 0 {
		return nil, nil
	}
	where, args := c.where()
	since := c.Age.column()
	var rows []StuckWithdrawal
	q := ex.handle().WithContext(ctx).Model(&Withdrawal{}).
		Select("id, channel, account, out_request_no, state, "+since+" AS since").
		Where(where, args...).Order(since).Limit(limit)
	if ex.engine() == SQLite {
		// COALESCE loses the column's type on SQLite: read the text.
		var raw []struct {
			ID, Channel, Account, OutRequestNo, State string
			Since                                     string
		}
		if err := q.Scan(&raw).Error; err != nil {
			return nil, fmt.Errorf("list stuck %s: %w", c.State, err)
		}
		for _, r := range raw {
			t, err := parseSQLiteTime(r.Since)
			if err != nil {
				return nil, fmt.Errorf("list stuck %s: %w", c.State, err)
			}
			rows = append(rows, StuckWithdrawal{ID: r.ID, Channel: r.Channel, Account: r.Account,
				OutRequestNo: r.OutRequestNo, State: r.State, Since: t})
		}
		return rows, nil
	}
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("list stuck %s: %w", c.State, err)
	}
	return rows, nil
}

// sqliteTimeLayouts are the layouts the SQLite driver writes times in.
var sqliteTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	time.RFC3339Nano,
}

// parseSQLiteTime reads a time SQLite returned as text (an expression over
// a DATETIME column has no declared type, so the driver does not convert).
func parseSQLiteTime(s string) (time.Time, error) {
	for _, layout := range sqliteTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unreadable time %q", s)
}
