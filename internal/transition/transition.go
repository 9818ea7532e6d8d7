// Package transition is the one code path that changes a withdrawal's
// state: the dispatcher's submission results, the poller's query results
// and the providers' callbacks all end here, so each change is checked
// against the state machine, versioned, and written with its outbox event
// and its audit rows in the caller's transaction.
package transition

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// ErrStale is returned when the row changed under the caller (another
// instance applied a change first). The caller drops its result: whatever
// it learnt, the newer change already accounts for it or a later query will.
var ErrStale = errors.New("withdrawal changed concurrently")

// Change is what a caller learnt about a withdrawal.
type Change struct {
	// To is the new state. Equal to the row's resting state (its state, or
	// for SUBMITTING the state it was claimed from) means "no change": the
	// row is updated (next attempt, provider status) but no event is written.
	To withdrawal.State
	// ProviderStatus and ProviderRef replace the stored ones when not empty.
	ProviderStatus string
	ProviderRef    string
	// ReasonCode and Reason are set on FAILED/REVERSED (the provider's code
	// and message) and cleared otherwise.
	ReasonCode string
	Reason     string
	// NextAttemptAt is when the dispatcher or poller should look again.
	NextAttemptAt time.Time
	// Resubmit, when not nil, sets or clears the request for the
	// dispatcher to re-send the stored request (WeChat INIT).
	Resubmit *bool
	// AddSubmissions is added to the row's count of requests sent.
	AddSubmissions int
	// Attempts are audit rows of the provider calls behind the change.
	Attempts []store.Attempt
}

// Lock loads a withdrawal for update inside tx. On SQLite, which has no row
// locks, the single-writer connection serialises transactions instead.
func Lock(ctx context.Context, tx *gorm.DB, id string) (*store.Withdrawal, error) {
	q := tx.WithContext(ctx)
	if tx.Dialector.Name() == "mysql" {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var w store.Withdrawal
	if err := q.Where("id = ?", id).Take(&w).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("withdrawal %s: %w", id, store.ErrNotFound)
		}
		return nil, fmt.Errorf("lock withdrawal %s: %w", id, err)
	}
	return &w, nil
}

// Resting is the state a row rests in: its state, or for a claimed row the
// state the claim came from.
func Resting(w *store.Withdrawal) withdrawal.State {
	if withdrawal.State(w.State) == withdrawal.StateSubmitting && w.ClaimedFrom != "" {
		return withdrawal.State(w.ClaimedFrom)
	}
	return withdrawal.State(w.State)
}

// Apply writes a change to a row and updates w to match. w is either locked
// in tx (see Lock) or a snapshot the caller trusts; either way the UPDATE is
// guarded by the row's id, version, state and lease owner, and ErrStale
// reports a row that no longer matches, with nothing written. It releases
// any claim. A real state change increments the version and writes exactly
// one event with it; a change the state machine forbids is an error.
func Apply(ctx context.Context, tx *gorm.DB, w *store.Withdrawal, c Change, now time.Time) (evented bool, err error) {
	var rows Writes
	if evented, err = ApplyDeferred(ctx, tx, w, c, now, &rows); err != nil {
		return false, err
	}
	return evented, rows.Flush(ctx, tx)
}

// Writes gathers the outbox events and audit rows of the changes applied in
// one transaction, so that Flush inserts them in two statements however
// many changes there were (the dispatcher records its answers in batches).
type Writes struct {
	events   []store.OutboxEvent
	attempts []store.Attempt
}

// Flush inserts the gathered rows in tx and empties w. It must run before
// the transaction commits: a change without its event is not a change.
func (w *Writes) Flush(ctx context.Context, tx *gorm.DB) error {
	if len(w.events) > 0 {
		if err := store.InsertOutbox(ctx, tx, w.events); err != nil {
			return err
		}
	}
	if len(w.attempts) > 0 {
		if err := store.InsertAttempts(ctx, tx, w.attempts); err != nil {
			return fmt.Errorf("record provider calls: %w", err)
		}
	}
	w.events, w.attempts = w.events[:0], w.attempts[:0]
	return nil
}

// AddAttempts gathers audit rows of withdrawal id that come with no change.
func (w *Writes) AddAttempts(id string, attempts []store.Attempt) {
	for _, a := range attempts {
		a.WithdrawalID = id
		a.Error = truncate(a.Error, 512)
		w.attempts = append(w.attempts, a)
	}
}

// ApplyDeferred is Apply with the event and audit rows gathered into rows
// instead of inserted; the caller Flushes them in the same transaction.
func ApplyDeferred(ctx context.Context, tx *gorm.DB, w *store.Withdrawal, c Change, now time.Time, rows *Writes) (evented bool, err error) {
	from := withdrawal.State(w.State)
	resting := Resting(w)
	changed := c.To != resting
	if changed && !withdrawal.CanTransition(from, c.To) && !(from == withdrawal.StateSubmitting && withdrawal.CanTransition(resting, c.To)) {
		return false, fmt.Errorf("withdrawal %s: %s -> %s is not a valid transition", w.ID, from, c.To)
	}

	// The SET list is built by hand (this is the dispatcher's per-submission
	// hot path); updated_at always changes, so a matched row always counts
	// as affected, which is what the stale check below relies on.
	var set strings.Builder
	var args []any
	assign := func(col string, v any) {
		if set.Len() > 0 {
			set.WriteString(", ")
		}
		set.WriteString(col + " = ?")
		args = append(args, v)
	}
	next := *w
	next.State, next.ClaimedFrom, next.LeaseOwner, next.LeaseExpiresAt = string(c.To), "", "", nil
	next.NextAttemptAt, next.UpdatedAt = c.NextAttemptAt, now
	assign("state", next.State)
	assign("claimed_from", "")
	assign("lease_owner", "")
	assign("lease_expires_at", nil)
	assign("next_attempt_at", c.NextAttemptAt)
	assign("updated_at", now)
	if c.ProviderStatus != "" {
		next.ProviderStatus = c.ProviderStatus
		assign("provider_status", c.ProviderStatus)
	}
	if c.AddSubmissions > 0 {
		next.Submissions += c.AddSubmissions
		set.WriteString(", submissions = submissions + ?")
		args = append(args, c.AddSubmissions)
	}
	if c.Resubmit != nil {
		next.ResubmitRequested = *c.Resubmit
		assign("resubmit_requested", *c.Resubmit)
	}
	if c.ProviderRef != "" {
		next.ProviderRef = c.ProviderRef
		assign("provider_ref", c.ProviderRef)
	}
	if changed {
		next.Version++
		next.ReasonCode, next.Reason = c.ReasonCode, truncate(c.Reason, 512)
		assign("version", next.Version)
		assign("reason_code", next.ReasonCode)
		assign("reason", next.Reason)
		switch c.To {
		case withdrawal.StateSubmitted:
			if next.SubmittedAt == nil {
				next.SubmittedAt = &now
				assign("submitted_at", now)
			}
		case withdrawal.StateFailed, withdrawal.StateReversed, withdrawal.StateSucceeded:
			next.FinalAt = &now
			assign("final_at", now)
		}
	}
	args = append(args, w.ID, w.Version, w.State, w.LeaseOwner)
	res := tx.WithContext(ctx).Exec("UPDATE withdrawals SET "+set.String()+
		" WHERE id = ? AND version = ? AND state = ? AND lease_owner = ?", args...)
	if res.Error != nil {
		return false, fmt.Errorf("update withdrawal %s: %w", w.ID, res.Error)
	}
	if res.RowsAffected != 1 {
		return false, fmt.Errorf("update withdrawal %s: %w", w.ID, ErrStale)
	}
	if changed {
		ev := next.Event(withdrawal.NewID(), from, now)
		rec, err := outbox.Record(ev, now)
		if err != nil {
			return false, err
		}
		rows.events = append(rows.events, rec)
	}
	rows.AddAttempts(w.ID, c.Attempts)
	*w = next
	return changed, nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
