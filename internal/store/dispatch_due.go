package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// What the dispatcher's claim reads: which merchants have due work, and
// their earliest due rows.

// DueMerchant is a merchant with withdrawals due in State.
type DueMerchant struct {
	MerchantKey string
	State       string
}

// DueMerchants lists the merchants with withdrawals in one of states due at
// now, once per merchant and state: one index dive per merchant and state
// (ix_withdrawals_merchant_due), however long a merchant's queue is.
func DueMerchants(ctx context.Context, ex Executor, states []string, now time.Time) ([]DueMerchant, error) {
	// "state IN (...) GROUP BY state, merchant_key" on purpose: with a single
	// "state = ?" MariaDB reads the state's whole index range (ref access)
	// instead of one entry per merchant (loose index scan, "Using index for
	// group-by"), which cost a scan of the entire backlog per claim.
	var groups []DueMerchant
	err := ex.handle().WithContext(ctx).Model(&Withdrawal{}).Select("state, merchant_key").
		Where("state IN ?", states).
		Group("state, merchant_key").
		Having("MIN(next_attempt_at) <= ?", now).
		Scan(&groups).Error
	if err != nil {
		return nil, fmt.Errorf("due merchants: %w", err)
	}
	return groups, nil
}

// DueResubmitMerchants lists the merchants with SUBMITTED withdrawals due
// at now whose re-submission the poller requested (WeChat INIT; it set
// next_attempt_at to when). resubmit_requested is in no index (every index
// costs the intake an insert per command): this reads every due SUBMITTED
// row, so callers space it out.
func DueResubmitMerchants(ctx context.Context, ex Executor, now time.Time) ([]string, error) {
	var keys []string
	err := ex.handle().WithContext(ctx).Model(&Withdrawal{}).
		Where("state = ? AND next_attempt_at <= ? AND resubmit_requested = ?", string(withdrawal.StateSubmitted), now, true).
		Distinct("merchant_key").
		Pluck("merchant_key", &keys).Error
	if err != nil {
		return nil, fmt.Errorf("due re-submissions: %w", err)
	}
	return keys, nil
}

// DueRange is one ordered range of due rows a claim reads.
type DueRange struct {
	MerchantKey string
	// State is the state read (ACCEPTED or UNKNOWN), unless Resubmit.
	State string
	// Resubmit reads the merchant's SUBMITTED rows whose re-submission was
	// requested instead; State is not used.
	Resubmit bool
	// Limit is how many rows at most: the earliest due.
	Limit int
}

// dueMerchantsPerStatement bounds the merchants of one DueWithdrawals
// statement (and so the cached UNION texts, per engine).
const dueMerchantsPerStatement = 100

// DueWithdrawals reads the earliest rows of each range due at now, up to its
// limit, in one statement per dueMerchantsPerStatement merchants (a
// merchant's ranges should be adjacent in ranges): a UNION ALL of one
// ordered range of ix_withdrawals_merchant_due per range (or, for
// re-submissions, of the merchant's due SUBMITTED rows), so a merchant with
// 10,000 queued costs what one with 3 does. The rows come range by range,
// and the ranges of one merchant together may hold more than one range's
// limit. No row locks: the merchant lock rows (LockMerchants) keep other
// claimers away, and the claim's UPDATE (ClaimWithdrawals) checks each
// row's version against anyone else.
func DueWithdrawals(ctx context.Context, ex Executor, ranges []DueRange, now time.Time) ([]Withdrawal, error) {
	var rows []Withdrawal
	for start := 0; start < len(ranges); {
		end, merchants := start, 0
		for ; end < len(ranges); end++ {
			if end == start || ranges[end].MerchantKey != ranges[end-1].MerchantKey {
				if merchants == dueMerchantsPerStatement {
					break
				}
				merchants++
			}
		}
		branches, args := dueBranches(ranges[start:end], now)
		res, err := queryRaw(ctx, ex, unionAll(ex.engine(), branches), args...)
		if err != nil {
			return nil, fmt.Errorf("due withdrawals: %w", err)
		}
		if rows, err = scanWithdrawals(res, rows); err != nil {
			return nil, fmt.Errorf("due withdrawals: %w", err)
		}
		start = end
	}
	return rows, nil
}

// dueBranches are the SELECTs of DueWithdrawals for ranges, with their
// arguments.
func dueBranches(ranges []DueRange, now time.Time) (branches []string, args []any) {
	branches = make([]string, 0, len(ranges))
	args = make([]any, 0, 5*len(ranges))
	for _, r := range ranges {
		if r.Resubmit {
			branches = append(branches, resubmitBranch)
			args = append(args, string(withdrawal.StateSubmitted), r.MerchantKey, now, true, r.Limit)
			continue
		}
		branches = append(branches, dueBranch)
		args = append(args, r.State, r.MerchantKey, now, r.Limit)
	}
	return branches, args
}

// The SELECTs of dueBranches.
var (
	dueBranch      = "SELECT " + withdrawalColumnList + " FROM withdrawals WHERE state = ? AND merchant_key = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
	resubmitBranch = "SELECT " + withdrawalColumnList + " FROM withdrawals WHERE state = ? AND merchant_key = ? AND next_attempt_at <= ? AND resubmit_requested = ? ORDER BY next_attempt_at LIMIT ?"
)

// unionAll joins ordered, limited SELECTs. MySQL takes each in parentheses;
// SQLite allows ORDER BY/LIMIT only inside a subquery.
func unionAll(dialect Dialect, branches []string) string {
	// The usual claim reads one plain branch per merchant: its text depends
	// only on how many, and is built once per count.
	plain := true
	for _, q := range branches {
		plain = plain && q == dueBranch
	}
	key := unionKey{dialect, len(branches)}
	if plain {
		if q, ok := plainUnions.Load(key); ok {
			return q.(string)
		}
	}
	var b strings.Builder
	for i, q := range branches {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		if dialect == SQLite {
			fmt.Fprintf(&b, "SELECT * FROM (%s) AS b%d", q, i)
		} else {
			b.WriteString("(" + q + ")")
		}
	}
	if plain {
		plainUnions.Store(key, b.String())
	}
	return b.String()
}

// unionKey names the UNION of n plain due branches in a dialect.
type unionKey struct {
	dialect Dialect
	n       int
}

// plainUnions caches the text of unionAll for plain branches (a few
// hundred per engine at most: a statement serves dueMerchantsPerStatement
// merchants, and a merchant has few ranges).
var plainUnions sync.Map // unionKey → string
