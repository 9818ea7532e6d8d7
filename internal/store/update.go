package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// WithdrawalChange is one guarded update of a withdrawal: what the
// transition package decided to write. The row must still be at Version,
// in State and leased by LeaseOwner (the guard); the update always
// releases the lease and sets the state, the next attempt and updated_at;
// the optional fields are written only when set.
type WithdrawalChange struct {
	// The guard: the row as the caller read it.
	ID         string
	Version    int
	State      string
	LeaseOwner string

	// Always written. The lease (owner, expiry, claimed_from) is cleared.
	NewState      string
	NextAttemptAt time.Time
	UpdatedAt     time.Time

	// Written when not nil (AddSubmissions: when positive; NewVersion: when
	// not zero).
	ProviderStatus *string
	ProviderRef    *string
	Resubmit       *bool
	ReasonCode     *string // with Reason: both or neither
	Reason         *string
	AddSubmissions int
	NewVersion     int
	SubmittedAt    *time.Time
	FinalAt        *time.Time
}

// assignment is one column of an UPDATE: col = val, or with add
// col = col + val.
type assignment struct {
	col string
	val any
	add bool
}

// assignments lists the columns c writes, in a fixed order.
func (c *WithdrawalChange) assignments() []assignment {
	a := make([]assignment, 0, 16)
	set := func(col string, v any) { a = append(a, assignment{col: col, val: v}) }
	set("state", c.NewState)
	set("claimed_from", "")
	set("lease_owner", "")
	set("lease_expires_at", nil)
	set("next_attempt_at", c.NextAttemptAt)
	set("updated_at", c.UpdatedAt)
	if c.ProviderStatus != nil {
		set("provider_status", *c.ProviderStatus)
	}
	if c.AddSubmissions > 0 {
		a = append(a, assignment{col: "submissions", val: c.AddSubmissions, add: true})
	}
	if c.Resubmit != nil {
		set("resubmit_requested", *c.Resubmit)
	}
	if c.ProviderRef != nil {
		set("provider_ref", *c.ProviderRef)
	}
	if c.ReasonCode != nil {
		set("reason_code", *c.ReasonCode)
		set("reason", deref(c.Reason))
	}
	if c.NewVersion != 0 {
		set("version", c.NewVersion)
	}
	if c.SubmittedAt != nil {
		set("submitted_at", *c.SubmittedAt)
	}
	if c.FinalAt != nil {
		set("final_at", *c.FinalAt)
	}
	return a
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// UpdateWithdrawals writes changes in one UPDATE and returns how many rows
// matched their guards. Each column takes its value per row (CASE id …)
// unless every row writes the same value, and each row's guard is checked:
// fewer matches than changes means some row changed under the caller, and
// the caller must roll the transaction back (rows that did match were
// updated). updated_at always changes, so a matched row always counts as
// affected. One statement for a batch instead of one per row was most of
// the database's parsing at full load.
func UpdateWithdrawals(ctx context.Context, ex Executor, changes []WithdrawalChange) (int64, error) {
	switch len(changes) {
	case 0:
		return 0, nil
	case 1:
		c := &changes[0]
		var set strings.Builder
		var args []any
		for i, a := range c.assignments() {
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
		args = append(args, c.ID, c.Version, c.State, c.LeaseOwner)
		return execRaw(ctx, ex, "UPDATE withdrawals SET "+set.String()+
			" WHERE id = ? AND version = ? AND state = ? AND lease_owner = ?", args...)
	}
	var cols []column // in order of first appearance
	for i := range changes {
	assign:
		for _, a := range changes[i].assignments() {
			for c := range cols {
				if cols[c].name == a.col {
					cols[c].per[i] = a
					continue assign
				}
			}
			col := column{name: a.col, add: a.add, per: make([]assignment, len(changes))}
			col.per[i] = a
			cols = append(cols, col)
		}
	}
	var q strings.Builder
	args := make([]any, 0, 4*len(changes)*len(cols))
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
		var values caseByID
		for i := range changes {
			if per[i].col != "" {
				values.Add(changes[i].ID, per[i].val)
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
	q.WriteString(placeholders(len(changes)) + ")")
	for i := range changes {
		args = append(args, changes[i].ID)
	}
	// Each row's guard: its own version, and the state and lease owner
	// the caller read, which are usually the same for the whole batch
	// (SUBMITTING, this instance): then one "col = ?" serves them all.
	for _, guard := range []struct {
		col   string
		value func(c *WithdrawalChange) any
	}{
		{"version", func(c *WithdrawalChange) any { return c.Version }},
		{"state", func(c *WithdrawalChange) any { return c.State }},
		{"lease_owner", func(c *WithdrawalChange) any { return c.LeaseOwner }},
	} {
		first, same := guard.value(&changes[0]), true
		for i := range changes[1:] {
			same = same && guard.value(&changes[i+1]) == first
		}
		if same {
			q.WriteString(" AND " + guard.col + " = ?")
			args = append(args, first)
			continue
		}
		var values caseByID
		for i := range changes {
			values.Add(changes[i].ID, guard.value(&changes[i]))
		}
		expr, exprArgs := values.SQL("")
		q.WriteString(" AND " + guard.col + " = " + expr)
		args = append(args, exprArgs...)
	}
	return execRaw(ctx, ex, q.String(), args...)
}

// column is one column of a batched UPDATE: per row, its assignment (col
// empty where the row leaves the column alone).
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

// sameValue compares the value kinds a change assigns.
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

// LockWithdrawal loads a withdrawal for update inside tx. On SQLite, which
// has no row locks, the single-writer connection serialises transactions
// instead.
func LockWithdrawal(ctx context.Context, tx *Tx, id string) (*Withdrawal, error) {
	q := tx.g.WithContext(ctx)
	if tx.dialect == MySQL {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var w Withdrawal
	if err := q.Where("id = ?", id).Take(&w).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("withdrawal %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("lock withdrawal %s: %w", id, err)
	}
	return &w, nil
}
