package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// The dispatcher's claim: a short transaction that locks the merchants it
// serves, counts what they have in flight, reads their earliest due rows
// (dispatch_due.go) and moves them to SUBMITTING under its lease. Any number
// of dispatchers may claim at once.
//
// Its statements go straight to the connection (execRaw, queryRaw in raw.go).

// InTxReadCommitted runs fn in a transaction, as InTx does, at READ
// COMMITTED on MySQL: the claim's in-flight count (CountInFlight) must see
// claims other instances committed after the transaction began, which
// MySQL's default REPEATABLE READ snapshot hides. SQLite has one writer at
// a time, so its transactions see every earlier commit anyway.
func (db *DB) InTxReadCommitted(ctx context.Context, fn func(tx *Tx) error) error {
	var opts []*sql.TxOptions
	if db.Dialect == MySQL {
		opts = append(opts, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	}
	return db.g.WithContext(ctx).Transaction(func(g *gorm.DB) error {
		return fn(&Tx{g: g, dialect: db.Dialect})
	}, opts...)
}

// RegisterMerchants makes sure each merchant has its lock row in
// dispatch_merchants (LockMerchants), in one statement; merchants already
// registered are skipped.
func RegisterMerchants(ctx context.Context, ex Executor, merchants []string) error {
	if len(merchants) == 0 {
		return nil
	}
	insert := "INSERT IGNORE INTO dispatch_merchants (merchant_key) VALUES "
	if ex.engine() == SQLite {
		insert = "INSERT OR IGNORE INTO dispatch_merchants (merchant_key) VALUES "
	}
	q := insert + strings.TrimSuffix(strings.Repeat("(?),", len(merchants)), ",")
	if _, err := execRaw(ctx, ex, q, appendStrings(make([]any, 0, len(merchants)), merchants)...); err != nil {
		return fmt.Errorf("register %d merchants: %w", len(merchants), err)
	}
	return nil
}

// LockMerchants locks the lock rows of merchants (RegisterMerchants) for
// the rest of tx and returns those it locked, in the order of merchants.
// The merchant's lock row serialises claimers of one merchant, so that its
// in-flight cap holds across instances; SKIP LOCKED lets this instance
// serve the others meanwhile: a merchant another claimer holds, or without
// a lock row, is left out. On SQLite, which has no row locks and whose
// single writer serialises the claims, every merchant is returned without
// a statement.
func LockMerchants(ctx context.Context, tx *Tx, merchants []string) ([]string, error) {
	if tx.dialect != MySQL || len(merchants) == 0 {
		return merchants, nil
	}
	got, err := queryStrings(ctx, tx, "SELECT merchant_key FROM dispatch_merchants WHERE merchant_key IN ("+
		placeholders(len(merchants))+") FOR UPDATE SKIP LOCKED", appendStrings(make([]any, 0, len(merchants)), merchants)...)
	if err != nil {
		return nil, fmt.Errorf("lock merchants: %w", err)
	}
	return keepOrder(merchants, got), nil
}

// CountInFlight counts the SUBMITTING withdrawals of each merchant (claimed
// by any instance, their answer not recorded yet); a merchant without any
// is missing from the map.
func CountInFlight(ctx context.Context, ex Executor, merchants []string) (map[string]int, error) {
	counts := make(map[string]int, len(merchants))
	if len(merchants) == 0 {
		return counts, nil
	}
	args := appendStrings(make([]any, 0, len(merchants)+1), merchants)
	rows, err := queryRaw(ctx, ex, "SELECT merchant_key, COUNT(*) FROM withdrawals WHERE merchant_key IN ("+
		placeholders(len(merchants))+") AND state = ? GROUP BY merchant_key", append(args, string(withdrawal.StateSubmitting))...)
	if err != nil {
		return nil, fmt.Errorf("count in-flight: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			return nil, fmt.Errorf("count in-flight: %w", err)
		}
		counts[m] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count in-flight: %w", err)
	}
	return counts, nil
}

// Claim is one withdrawal a claim takes: the row as the claimer read it
// (DueWithdrawals).
type Claim struct {
	ID string
	// Version guards the claim: a row changed since it was read (a
	// callback, an operator) is left alone.
	Version int
	// Request, when not nil, is the provider request built for this first
	// send: its exact bytes (and RequestSerial) are stored by the claim,
	// before anything is sent, and every later send re-sends them.
	Request       []byte
	RequestSerial string
}

// ClaimWithdrawals moves claims to SUBMITTING under owner's lease until
// leaseUntil, in one UPDATE, and returns the ids of those it could not take
// (their row changed since it was read, or another instance claimed it).
// A claimed row records the state it was claimed from (claimed_from), its
// first send time (first_sent_at, kept if set), and is next due when its
// lease expires: the lease sweep (LockExpiredLeases) finds it through the
// (state, next_attempt_at) index like all due work. Only rows in a state a
// claim may take (ACCEPTED, UNKNOWN, SUBMITTED for a re-submission) are
// claimed. In the usual case (nothing lost) it is one statement; otherwise a
// second one reads which rows are now this owner's.
func ClaimWithdrawals(ctx context.Context, ex Executor, claims []Claim, owner string, leaseUntil, now time.Time) (lost []string, err error) {
	if len(claims) == 0 {
		return nil, nil
	}
	ids := make([]any, 0, len(claims))
	var version, request, serial caseByID
	for i := range claims {
		c := &claims[i]
		ids = append(ids, c.ID)
		version.Add(c.ID, c.Version)
		if c.Request != nil {
			request.Add(c.ID, c.Request)
			serial.Add(c.ID, c.RequestSerial)
		}
	}
	// claimed_from = state comes first: MySQL assigns left to right (SQLite
	// reads old values throughout), so it records the state before the claim.
	q := "UPDATE withdrawals SET claimed_from = state, state = ?, lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?, " +
		"updated_at = ?, first_sent_at = COALESCE(first_sent_at, ?)"
	args := []any{string(withdrawal.StateSubmitting), owner, leaseUntil, leaseUntil, now, now}
	if request.Len() > 0 {
		requestExpr, requestArgs := request.SQL("provider_request")
		serialExpr, serialArgs := serial.SQL("provider_request_serial")
		q += ", provider_request = " + requestExpr + ", provider_request_serial = " + serialExpr
		args = append(append(args, requestArgs...), serialArgs...)
	}
	versionExpr, versionArgs := version.SQL("")
	q += " WHERE id IN (" + placeholders(len(ids)) + ") AND version = " + versionExpr + " AND state IN (?, ?, ?)"
	args = append(append(append(args, ids...), versionArgs...),
		string(withdrawal.StateAccepted), string(withdrawal.StateUnknown), string(withdrawal.StateSubmitted))
	n, err := execRaw(ctx, ex, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim %d withdrawals: %w", len(claims), err)
	}
	if int(n) == len(claims) {
		return nil, nil
	}
	ours, err := queryStrings(ctx, ex, "SELECT id FROM withdrawals WHERE id IN ("+placeholders(len(ids))+
		") AND state = ? AND lease_owner = ?", append(ids[:len(ids):len(ids)], string(withdrawal.StateSubmitting), owner)...)
	if err != nil {
		return nil, fmt.Errorf("claimed rows: %w", err)
	}
	keep := make(map[string]bool, len(ours))
	for _, id := range ours {
		keep[id] = true
	}
	for i := range claims {
		if !keep[claims[i].ID] {
			lost = append(lost, claims[i].ID)
		}
	}
	return lost, nil
}

// PostponeWithdrawal makes a withdrawal due again at until, if it is still
// at version: a row the dispatcher cannot send now (its provider account is
// missing, its request cannot be built) waits instead of failing, as the
// money is still owed. It reports whether the row was at version.
func PostponeWithdrawal(ctx context.Context, ex Executor, id string, version int, until, now time.Time) (bool, error) {
	n, err := execRaw(ctx, ex, "UPDATE withdrawals SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND version = ?",
		until, now, id, version)
	if err != nil {
		return false, fmt.Errorf("postpone %s: %w", id, err)
	}
	return n == 1, nil
}

// queryStrings runs a SELECT of one string column.
func queryStrings(ctx context.Context, ex Executor, q string, args ...any) ([]string, error) {
	rows, err := queryRaw(ctx, ex, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// keepOrder returns the elements of order that are in set, in order's order.
func keepOrder(order, set []string) []string {
	in := make(map[string]bool, len(set))
	for _, s := range set {
		in[s] = true
	}
	out := order[:0:0]
	for _, s := range order {
		if in[s] {
			out = append(out, s)
		}
	}
	return out
}
