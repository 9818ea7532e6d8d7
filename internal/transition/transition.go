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
		w.attempts = append(w.attempts, a)
	}
}

// ApplyDeferred is Apply with the event and audit rows gathered into rows
// instead of inserted; the caller Flushes them in the same transaction.
func ApplyDeferred(ctx context.Context, tx *gorm.DB, w *store.Withdrawal, c Change, now time.Time, rows *Writes) (evented bool, err error) {
	p, err := plan(w, c, now)
	if err != nil {
		return false, err
	}
	var set strings.Builder
	var args []any
	for i, a := range p.assign {
		if i > 0 {
			set.WriteString(", ")
		}
		if a.add {
			set.WriteString(a.col + " = " + a.col + " + ?")
		} else {
			set.WriteString(a.col + " = ?")
		}
		args = append(args, a.val)
	}
	args = append(args, w.ID, w.Version, w.State, w.LeaseOwner)
	n, err := store.Exec(ctx, tx, "UPDATE withdrawals SET "+set.String()+
		" WHERE id = ? AND version = ? AND state = ? AND lease_owner = ?", args...)
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
func ApplyAll(ctx context.Context, tx *gorm.DB, items []Pending, now time.Time, rows *Writes) error {
	switch len(items) {
	case 0:
		return nil
	case 1:
		_, err := ApplyDeferred(ctx, tx, items[0].W, items[0].C, now, rows)
		return err
	}
	plans := make([]planned, len(items))
	var cols []column // in order of first appearance
	for i, it := range items {
		p, err := plan(it.W, it.C, now)
		if err != nil {
			return err
		}
		plans[i] = p
	assign:
		for _, a := range p.assign {
			for c := range cols {
				if cols[c].name == a.col {
					cols[c].per[i] = a
					continue assign
				}
			}
			col := column{name: a.col, add: a.add, per: make([]assignment, len(items))}
			col.per[i] = a
			cols = append(cols, col)
		}
	}
	var q strings.Builder
	args := make([]any, 0, 4*len(items)*len(cols))
	q.WriteString("UPDATE withdrawals SET ")
	for n, c := range cols {
		col, per := c.name, c.per
		if n > 0 {
			q.WriteString(", ")
		}
		if v, ok := sameForAll(per); ok {
			if c.add {
				q.WriteString(col + " = " + col + " + ?")
			} else {
				q.WriteString(col + " = ?")
			}
			args = append(args, v)
			continue
		}
		var values store.CaseByID
		for i := range items {
			if per[i].col != "" {
				values.Add(items[i].W.ID, per[i].val)
			}
		}
		// Rows without a value keep theirs: col = CASE … ELSE col END, or
		// for an added column col = col + CASE … ELSE 0 END.
		prefix, otherwise := "", col
		if c.add {
			prefix, otherwise = col+" + ", "0"
		}
		expr, exprArgs := values.SQL(otherwise)
		q.WriteString(col + " = " + prefix + expr)
		args = append(args, exprArgs...)
	}
	q.WriteString(" WHERE id IN (")
	q.WriteString(store.Placeholders(len(items)) + ")")
	for _, it := range items {
		args = append(args, it.W.ID)
	}
	// Each row's guard: its own version, and the state and lease owner
	// the caller read, which are usually the same for the whole batch
	// (SUBMITTING, this instance): then one "col = ?" serves them all.
	for _, guard := range []struct {
		col   string
		value func(w *store.Withdrawal) any
	}{
		{"version", func(w *store.Withdrawal) any { return w.Version }},
		{"state", func(w *store.Withdrawal) any { return w.State }},
		{"lease_owner", func(w *store.Withdrawal) any { return w.LeaseOwner }},
	} {
		first, same := guard.value(items[0].W), true
		for _, it := range items[1:] {
			same = same && guard.value(it.W) == first
		}
		if same {
			q.WriteString(" AND " + guard.col + " = ?")
			args = append(args, first)
			continue
		}
		var values store.CaseByID
		for _, it := range items {
			values.Add(it.W.ID, guard.value(it.W))
		}
		expr, exprArgs := values.SQL("")
		q.WriteString(" AND " + guard.col + " = " + expr)
		args = append(args, exprArgs...)
	}
	n, err := store.Exec(ctx, tx, q.String(), args...)
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

// column is one column of ApplyAll's UPDATE: per item, its assignment
// (col empty where the item leaves the column alone).
type column struct {
	name string
	add  bool
	per  []assignment
}

// sameForAll reports whether every row assigns the same plain value to a
// column (the lease columns, updated_at), or adds the same value to it
// (submissions): then one "col = ?" or "col = col + ?" serves them.
func sameForAll(per []assignment) (any, bool) {
	for _, a := range per {
		if a.col == "" || a.add != per[0].add || !sameValue(a.val, per[0].val) {
			return nil, false
		}
	}
	return per[0].val, true
}

// sameValue compares the value kinds plan assigns.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case string, bool, int:
		return a == b
	default:
		return false
	}
}

// assignment is one column of a planned UPDATE: col = val, or with add
// col = col + val.
type assignment struct {
	col string
	val any
	add bool
}

// planned is what applying a change to a row writes: its columns, the row
// afterwards, and whether it is a state change (an event).
type planned struct {
	assign  []assignment
	next    store.Withdrawal
	changed bool
	from    withdrawal.State
}

// plan checks a change against the state machine and works out the UPDATE
// and the row after it. updated_at always changes, so a matched row always
// counts as affected, which is what the stale checks rely on.
func plan(w *store.Withdrawal, c Change, now time.Time) (planned, error) {
	from := withdrawal.State(w.State)
	resting := Resting(w)
	changed := c.To != resting
	if changed && !withdrawal.CanTransition(from, c.To) && !(from == withdrawal.StateSubmitting && withdrawal.CanTransition(resting, c.To)) {
		return planned{}, fmt.Errorf("withdrawal %s: %s -> %s is not a valid transition", w.ID, from, c.To)
	}
	p := planned{next: *w, changed: changed, from: from, assign: make([]assignment, 0, 16)}
	set := func(col string, v any) { p.assign = append(p.assign, assignment{col: col, val: v}) }
	next := &p.next
	next.State, next.ClaimedFrom, next.LeaseOwner, next.LeaseExpiresAt = string(c.To), "", "", nil
	next.NextAttemptAt, next.UpdatedAt = c.NextAttemptAt, now
	set("state", next.State)
	set("claimed_from", "")
	set("lease_owner", "")
	set("lease_expires_at", nil)
	set("next_attempt_at", c.NextAttemptAt)
	set("updated_at", now)
	if c.ProviderStatus != "" {
		next.ProviderStatus = store.Fit(c.ProviderStatus, store.WidthProviderStatus)
		set("provider_status", next.ProviderStatus)
	}
	if c.AddSubmissions > 0 {
		next.Submissions += c.AddSubmissions
		p.assign = append(p.assign, assignment{col: "submissions", val: c.AddSubmissions, add: true})
	}
	if c.Resubmit != nil {
		next.ResubmitRequested = *c.Resubmit
		set("resubmit_requested", *c.Resubmit)
	}
	if c.ProviderRef != "" {
		next.ProviderRef = store.Fit(c.ProviderRef, store.WidthProviderRef)
		set("provider_ref", next.ProviderRef)
	}
	if changed || c.ReasonCode != "" {
		// A state change sets the reason (or clears it). Without one, a
		// reason code given replaces the stored one: an UNKNOWN withdrawal
		// keeps in it what its last send was answered, which decides
		// between FAILED and a re-send once a query finds nothing.
		next.ReasonCode = store.Fit(c.ReasonCode, store.WidthReasonCode)
		next.Reason = store.Fit(c.Reason, store.WidthReason)
		set("reason_code", next.ReasonCode)
		set("reason", next.Reason)
	}
	if changed {
		next.Version++
		set("version", next.Version)
		switch c.To {
		case withdrawal.StateSubmitted:
			if next.SubmittedAt == nil {
				next.SubmittedAt = &now
				set("submitted_at", now)
			}
		case withdrawal.StateFailed, withdrawal.StateReversed, withdrawal.StateSucceeded:
			next.FinalAt = &now
			set("final_at", now)
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
