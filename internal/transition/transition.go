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
	"time"

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

// Lock loads a withdrawal for update inside tx.
func Lock(ctx context.Context, tx *store.Tx, id string) (*store.Withdrawal, error) {
	return store.LockWithdrawal(ctx, tx, id)
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
func Apply(ctx context.Context, tx *store.Tx, w *store.Withdrawal, c Change, now time.Time) (evented bool, err error) {
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
func (w *Writes) Flush(ctx context.Context, tx *store.Tx) error {
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
		w.attempts = append(w.attempts, a)
	}
}

// ApplyDeferred is Apply with the event and audit rows gathered into rows
// instead of inserted; the caller Flushes them in the same transaction.
func ApplyDeferred(ctx context.Context, tx *store.Tx, w *store.Withdrawal, c Change, now time.Time, rows *Writes) (evented bool, err error) {
	p, err := plan(w, c, now)
	if err != nil {
		return false, err
	}
	n, err := store.UpdateWithdrawals(ctx, tx, []store.WithdrawalChange{p.write})
	if err != nil {
		return false, fmt.Errorf("update withdrawal %s: %w", w.ID, err)
	}
	if n != 1 {
		return false, fmt.Errorf("update withdrawal %s: %w", w.ID, ErrStale)
	}
	return p.changed, p.done(w, c, now, rows)
}

// Pending is one change of ApplyAll: the row (a snapshot the caller trusts,
// as for Apply) and what was learnt about it.
type Pending struct {
	W *store.Withdrawal
	C Change
}

// ApplyAll is ApplyDeferred for several rows in one UPDATE: each column
// takes its value per row (CASE id …), and the guard checks every row's
// version, state and lease owner. It is all or nothing: if any row no
// longer matches it returns ErrStale, and the caller must roll the
// transaction back (rows that did match were updated) and apply the
// changes one by one to find out which. The dispatcher records the answers
// that finish together this way: one statement instead of one per answer
// was most of the database's parsing at full load.
func ApplyAll(ctx context.Context, tx *store.Tx, items []Pending, now time.Time, rows *Writes) error {
	switch len(items) {
	case 0:
		return nil
	case 1:
		_, err := ApplyDeferred(ctx, tx, items[0].W, items[0].C, now, rows)
		return err
	}
	plans := make([]planned, len(items))
	writes := make([]store.WithdrawalChange, len(items))
	for i, it := range items {
		p, err := plan(it.W, it.C, now)
		if err != nil {
			return err
		}
		plans[i], writes[i] = p, p.write
	}
	n, err := store.UpdateWithdrawals(ctx, tx, writes)
	if err != nil {
		return fmt.Errorf("update %d withdrawals: %w", len(items), err)
	}
	if n != int64(len(items)) {
		return fmt.Errorf("update %d withdrawals, %d matched: %w", len(items), n, ErrStale)
	}
	for i, it := range items {
		if err := plans[i].done(it.W, it.C, now, rows); err != nil {
			return err
		}
	}
	return nil
}

// planned is what applying a change to a row writes: the guarded update,
// the row afterwards, and whether it is a state change (an event).
type planned struct {
	write   store.WithdrawalChange
	next    store.Withdrawal
	changed bool
	from    withdrawal.State
}

// plan checks a change against the state machine and works out the update
// and the row after it.
func plan(w *store.Withdrawal, c Change, now time.Time) (planned, error) {
	from := withdrawal.State(w.State)
	resting := Resting(w)
	changed := c.To != resting
	if changed && !withdrawal.CanTransition(from, c.To) && !(from == withdrawal.StateSubmitting && withdrawal.CanTransition(resting, c.To)) {
		return planned{}, fmt.Errorf("withdrawal %s: %s -> %s is not a valid transition", w.ID, from, c.To)
	}
	p := planned{next: *w, changed: changed, from: from}
	next, write := &p.next, &p.write
	*write = store.WithdrawalChange{
		ID: w.ID, Version: w.Version, State: w.State, LeaseOwner: w.LeaseOwner,
		NewState: string(c.To), NextAttemptAt: c.NextAttemptAt, UpdatedAt: now,
	}
	next.State, next.ClaimedFrom, next.LeaseOwner, next.LeaseExpiresAt = string(c.To), "", "", nil
	next.NextAttemptAt, next.UpdatedAt = c.NextAttemptAt, now
	if c.ProviderStatus != "" {
		next.ProviderStatus = store.Fit(c.ProviderStatus, store.WidthProviderStatus)
		write.ProviderStatus = &next.ProviderStatus
	}
	if c.AddSubmissions > 0 {
		next.Submissions += c.AddSubmissions
		write.AddSubmissions = c.AddSubmissions
	}
	if c.Resubmit != nil {
		next.ResubmitRequested = *c.Resubmit
		write.Resubmit = c.Resubmit
	}
	if c.ProviderRef != "" {
		next.ProviderRef = store.Fit(c.ProviderRef, store.WidthProviderRef)
		write.ProviderRef = &next.ProviderRef
	}
	if changed || c.ReasonCode != "" {
		// A state change sets the reason (or clears it). Without one, a
		// reason code given replaces the stored one: an UNKNOWN withdrawal
		// keeps in it what its last send was answered, which decides
		// between FAILED and a re-send once a query finds nothing.
		next.ReasonCode = store.Fit(c.ReasonCode, store.WidthReasonCode)
		next.Reason = store.Fit(c.Reason, store.WidthReason)
		write.ReasonCode, write.Reason = &next.ReasonCode, &next.Reason
	}
	if changed {
		next.Version++
		write.NewVersion = next.Version
		at := now
		switch c.To {
		case withdrawal.StateSubmitted:
			if next.SubmittedAt == nil {
				next.SubmittedAt, write.SubmittedAt = &at, &at
			}
		case withdrawal.StateFailed, withdrawal.StateReversed, withdrawal.StateSucceeded:
			next.FinalAt, write.FinalAt = &at, &at
		}
	}
	return p, nil
}

// done follows a written plan: the event of a state change and the audit
// rows go into rows, and w becomes the row as written.
func (p planned) done(w *store.Withdrawal, c Change, now time.Time, rows *Writes) error {
	if p.changed {
		ev := p.next.Event(withdrawal.NewID(), p.from, now)
		rec, err := outbox.Record(ev, now)
		if err != nil {
			return err
		}
		rows.events = append(rows.events, rec)
	}
	rows.AddAttempts(w.ID, c.Attempts)
	*w = p.next
	return nil
}
