package dispatch

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// claimable are the states the dispatcher takes work from; SUBMITTED rows
// are taken too when the poller requested a re-submission.
var claimable = []string{string(withdrawal.StateAccepted), string(withdrawal.StateUnknown)}

// claimed is one withdrawal this instance holds a lease on.
type claimed struct {
	row  store.Withdrawal
	req  provider.Request
	prov provider.Provider
}

// claim takes up to budget due withdrawals, at most PerMerchant in flight
// per merchant across all instances, and returns them with their requests.
// A claim from a reused due-merchant list that finds nothing is tried once
// more with a fresh scan (due.go).
func (d *Dispatcher) claim(ctx context.Context, budget int) ([]claimed, error) {
	d.claimMu.Lock()
	defer d.claimMu.Unlock()
	now := d.opts.Now()
	due, err := d.dueMerchants(ctx, now, false)
	if err != nil {
		return nil, err
	}
	out, err := d.claimFrom(ctx, due, budget, now)
	if err == nil && len(out) == 0 && due.cached {
		if due, err = d.dueMerchants(ctx, now, true); err != nil {
			return nil, err
		}
		out, err = d.claimFrom(ctx, due, budget, now)
	}
	return out, err
}

// claimFrom claims from the merchants of due, in their order.
func (d *Dispatcher) claimFrom(ctx context.Context, due dueList, budget int, now time.Time) ([]claimed, error) {
	merchants := due.merchants
	if len(merchants) == 0 {
		return nil, nil
	}
	if err := d.registerMerchants(ctx, merchants); err != nil {
		return nil, err
	}

	var out []claimed
	var exhausted []string
	var txOpts []*sql.TxOptions
	mysql := d.db.Dialect == store.MySQL
	if mysql {
		// Read committed: the in-flight count below must see claims other
		// instances committed after this transaction began.
		txOpts = append(txOpts, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	}
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		out = out[:0]
		quota := map[string]int{}
		var served []string
		total := 0
		// Merchants are taken in fairness order a chunk at a time, until the
		// budget is spent: locking and counting all of them each round cost
		// more than the claim itself when few slots were free.
		chunk := 2*budget + 16
		for start := 0; start < len(merchants) && total < budget; start += chunk {
			candidates := merchants[start:min(start+chunk, len(merchants))]
			locked := candidates
			if mysql {
				// The merchant's lock row serialises claimers of one
				// merchant; SKIP LOCKED lets this instance serve the others
				// meanwhile.
				got, err := queryStrings(ctx, tx, "SELECT merchant_key FROM dispatch_merchants WHERE merchant_key IN ("+
					store.Placeholders(len(candidates))+") FOR UPDATE SKIP LOCKED", store.AppendStrings(nil, candidates)...)
				if err != nil {
					return fmt.Errorf("lock merchants: %w", err)
				}
				locked = keepOrder(candidates, got)
			}
			inFlight, err := d.inFlight(ctx, tx, locked)
			if err != nil {
				return err
			}
			for _, m := range locked {
				if total >= budget {
					break
				}
				if free := min(d.perMerchant(m)-inFlight[m], budget-total); free > 0 {
					quota[m] = free
					total += free
					served = append(served, m)
				}
			}
		}
		due.resolve(&d.due, served)
		rows, err := d.dueRows(ctx, tx, served, quota, due, now)
		if err != nil {
			return err
		}
		// A merchant given room that filled less of it has nothing more
		// due: off the reused list.
		got := make(map[string]int, len(served))
		for _, w := range rows {
			got[w.MerchantKey]++
		}
		exhausted = exhausted[:0]
		for _, m := range served {
			if got[m] < quota[m] {
				exhausted = append(exhausted, m)
			}
		}
		out, err = d.takeAll(ctx, tx, rows, now)
		return err
	}, txOpts...)
	if err != nil {
		return nil, err
	}
	d.due.drop(exhausted, due.gen)
	d.mu.Lock()
	for _, c := range out {
		d.lastServed[c.row.MerchantKey] = now
	}
	d.mu.Unlock()
	d.opts.Metrics.claims.Add(float64(len(out)))
	return out, nil
}

// registerMerchants makes sure every merchant has its lock row.
func (d *Dispatcher) registerMerchants(ctx context.Context, all []string) error {
	d.mu.Lock()
	var merchants []string
	for _, m := range all {
		if !d.registered[m] {
			merchants = append(merchants, m)
		}
	}
	d.mu.Unlock()
	if len(merchants) == 0 {
		return nil
	}
	insert := "INSERT IGNORE INTO dispatch_merchants (merchant_key) VALUES "
	if d.db.Dialect == store.SQLite {
		insert = "INSERT OR IGNORE INTO dispatch_merchants (merchant_key) VALUES "
	}
	args := make([]any, len(merchants))
	for i, m := range merchants {
		args[i] = m
	}
	sql := insert + strings.TrimSuffix(strings.Repeat("(?),", len(merchants)), ",")
	if err := d.db.WithContext(ctx).Exec(sql, args...).Error; err != nil {
		return fmt.Errorf("register merchants: %w", err)
	}
	d.mu.Lock()
	for _, m := range merchants {
		d.registered[m] = true
	}
	d.mu.Unlock()
	return nil
}

// inFlight counts SUBMITTING withdrawals per merchant.
func (d *Dispatcher) inFlight(ctx context.Context, tx *gorm.DB, merchants []string) (map[string]int, error) {
	counts := make(map[string]int, len(merchants))
	if len(merchants) == 0 {
		return counts, nil
	}
	args := store.AppendStrings(make([]any, 0, len(merchants)+1), merchants)
	rows, err := store.Query(ctx, store.LegacyTx(tx), "SELECT merchant_key, COUNT(*) FROM withdrawals WHERE merchant_key IN ("+
		store.Placeholders(len(merchants))+") AND state = ? GROUP BY merchant_key", append(args, string(withdrawal.StateSubmitting))...)
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

// queryStrings runs a SELECT of one string column.
func queryStrings(ctx context.Context, tx *gorm.DB, q string, args ...any) ([]string, error) {
	rows, err := store.Query(ctx, store.LegacyTx(tx), q, args...)
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

// dueRows reads, in one statement, the earliest due withdrawals of each
// merchant up to its quota: one branch per merchant and claimable state it
// has due work in (due.states), each an ordered range of
// ix_withdrawals_merchant_due (or for re-submissions the merchant's due
// SUBMITTED rows), so a merchant with 10,000 queued costs what one with 3
// does. No row locks: the merchant lock rows keep other claimers away, and
// the claim's UPDATE checks each row's version against anyone else.
func (d *Dispatcher) dueRows(ctx context.Context, tx *gorm.DB, merchants []string, quota map[string]int, due dueList, now time.Time) ([]store.Withdrawal, error) {
	var rows []store.Withdrawal
	const perStatement = 100 // merchants
	for start := 0; start < len(merchants); start += perStatement {
		branches, args := dueBranches(merchants[start:min(start+perStatement, len(merchants))], quota, due, now)
		if len(branches) == 0 {
			continue
		}
		res, err := store.Query(ctx, store.LegacyTx(tx), unionAll(d.db.Dialect, branches), args...)
		if err != nil {
			return nil, fmt.Errorf("due withdrawals: %w", err)
		}
		if rows, err = store.ScanWithdrawals(res, rows); err != nil {
			return nil, fmt.Errorf("due withdrawals: %w", err)
		}
	}
	// The branches of one merchant together may exceed its quota: keep the
	// earliest.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].NextAttemptAt.Before(rows[j].NextAttemptAt) })
	taken := map[string]int{}
	out := rows[:0]
	for _, w := range rows {
		if taken[w.MerchantKey] < quota[w.MerchantKey] {
			taken[w.MerchantKey]++
			out = append(out, w)
		}
	}
	return out, nil
}

// dueBranches are the SELECTs of dueRows for merchants, with their
// arguments: per merchant, one for each claimable state it has due work in
// (all of them when unknown) and one for its due re-submissions.
func dueBranches(merchants []string, quota map[string]int, due dueList, now time.Time) (branches []string, args []any) {
	for _, m := range merchants {
		states, known := due.states[m]
		for i, state := range claimable {
			if known && states&(1<<i) == 0 {
				continue
			}
			branches = append(branches, dueBranch)
			args = append(args, state, m, now, quota[m])
		}
		if due.resubmit[m] {
			branches = append(branches, resubmitBranch)
			args = append(args, string(withdrawal.StateSubmitted), m, now, true, quota[m])
		}
	}
	return branches, args
}

// The SELECTs of dueBranches.
var (
	dueBranch      = "SELECT " + store.WithdrawalColumns + " FROM withdrawals WHERE state = ? AND merchant_key = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
	resubmitBranch = "SELECT " + store.WithdrawalColumns + " FROM withdrawals WHERE state = ? AND merchant_key = ? AND next_attempt_at <= ? AND resubmit_requested = ? ORDER BY next_attempt_at LIMIT ?"
)

// unionAll joins ordered, limited SELECTs. MySQL takes each in parentheses;
// SQLite allows ORDER BY/LIMIT only inside a subquery.
func unionAll(dialect store.Dialect, branches []string) string {
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
		if dialect == store.SQLite {
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
	dialect store.Dialect
	n       int
}

// plainUnions caches the text of unionAll for plain branches (at most
// perStatement per dialect).
var plainUnions sync.Map // unionKey → string

// takeAll moves due rows to SUBMITTING under this instance's lease, in one
// UPDATE. The first time a row is claimed its provider request is built and
// its exact bytes are stored in the same statement, before anything is
// sent. A row that cannot be sent now (its provider account is missing, its
// request cannot be built) is postponed, not failed: the money is still owed.
func (d *Dispatcher) takeAll(ctx context.Context, tx *gorm.DB, rows []store.Withdrawal, now time.Time) ([]claimed, error) {
	out := make([]claimed, 0, len(rows))
	var ids []any
	var version, request, serial store.CaseByID
	for i := range rows {
		w := &rows[i]
		c, built, err := d.prepare(ctx, w)
		if err != nil {
			d.log.Error("withdrawal cannot be sent; postponed", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
				"channel", w.Channel, "account", w.Account, "retry_in", d.opts.ConfigErrorDelay, "alert", true, "err", err)
			if err := tx.Model(&store.Withdrawal{}).Where("id = ? AND version = ?", w.ID, w.Version).
				Updates(map[string]any{"next_attempt_at": now.Add(d.opts.ConfigErrorDelay), "updated_at": now}).Error; err != nil {
				return nil, fmt.Errorf("postpone %s: %w", w.ID, err)
			}
			continue
		}
		ids = append(ids, w.ID)
		version.Add(w.ID, w.Version)
		if built {
			request.Add(w.ID, w.ProviderRequest)
			serial.Add(w.ID, c.req.WechatpaySerial)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, nil
	}
	lease := now.Add(d.opts.LeaseTTL)
	// claimed_from = state comes first: MySQL assigns left to right (SQLite
	// reads old values throughout), so it records the state before the claim.
	// A claimed row is next due when its lease expires: the lease sweep finds
	// it through the (state, next_attempt_at) index like all due work.
	q := "UPDATE withdrawals SET claimed_from = state, state = ?, lease_owner = ?, lease_expires_at = ?, next_attempt_at = ?, " +
		"updated_at = ?, first_sent_at = COALESCE(first_sent_at, ?)"
	args := []any{string(withdrawal.StateSubmitting), d.owner, lease, lease, now, now}
	if request.Len() > 0 {
		requestExpr, requestArgs := request.SQL("provider_request")
		serialExpr, serialArgs := serial.SQL("provider_request_serial")
		q += ", provider_request = " + requestExpr + ", provider_request_serial = " + serialExpr
		args = append(append(args, requestArgs...), serialArgs...)
	}
	// The version guard: a row changed since it was read (a callback, an
	// operator) is left alone.
	versionExpr, versionArgs := version.SQL("")
	q += " WHERE id IN (" + store.Placeholders(len(ids)) + ") AND version = " + versionExpr + " AND state IN (?, ?, ?)"
	args = append(append(append(args, ids...), versionArgs...),
		string(withdrawal.StateAccepted), string(withdrawal.StateUnknown), string(withdrawal.StateSubmitted))
	n, err := store.Exec(ctx, store.LegacyTx(tx), q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim %d withdrawals: %w", len(out), err)
	}
	if int(n) != len(out) {
		ours, err := queryStrings(ctx, tx, "SELECT id FROM withdrawals WHERE id IN ("+store.Placeholders(len(ids))+
			") AND state = ? AND lease_owner = ?", append(ids[:len(ids):len(ids)], string(withdrawal.StateSubmitting), d.owner)...)
		if err != nil {
			return nil, fmt.Errorf("claimed rows: %w", err)
		}
		keep := make(map[string]bool, len(ours))
		for _, id := range ours {
			keep[id] = true
		}
		kept := out[:0]
		for _, c := range out {
			if keep[c.row.ID] {
				kept = append(kept, c)
			}
		}
		out = kept
	}
	for i := range out {
		w := &out[i].row
		w.ClaimedFrom, w.State, w.LeaseOwner = w.State, string(withdrawal.StateSubmitting), d.owner
		w.LeaseExpiresAt, w.NextAttemptAt, w.UpdatedAt = &lease, lease, now
		if w.FirstSentAt == nil {
			w.FirstSentAt = &now
		}
	}
	return out, nil
}

// prepare finds the row's provider and its request: the stored bytes, or
// (built = true) a request built now and set on w.ProviderRequest.
func (d *Dispatcher) prepare(ctx context.Context, w *store.Withdrawal) (c claimed, built bool, err error) {
	prov, err := d.providers.Get(withdrawal.Channel(w.Channel), w.Account)
	if err != nil {
		return claimed{}, false, err
	}
	var req provider.Request
	if len(w.ProviderRequest) > 0 {
		if err := json.Unmarshal(w.ProviderRequest, &req); err != nil {
			return claimed{}, false, fmt.Errorf("stored request of %s: %w", w.ID, err)
		}
		return claimed{row: *w, req: req, prov: prov}, false, nil
	}
	cmd, err := w.Command(d.keys)
	if err != nil {
		return claimed{}, false, err
	}
	if req, err = prov.BuildSubmit(ctx, cmd); err != nil {
		return claimed{}, false, err
	}
	if w.ProviderRequest, err = json.Marshal(req); err != nil {
		return claimed{}, false, err
	}
	w.ProviderRequestSerial = req.WechatpaySerial
	return claimed{row: *w, req: req, prov: prov}, true, nil
}

// ExpireLeases turns claims whose lease ran out into UNKNOWN: the instance
// holding them died or hung, and its request may have reached the provider.
// Any instance may run it; rows are taken with SKIP LOCKED.
func (d *Dispatcher) ExpireLeases(ctx context.Context) (int, error) {
	now := d.opts.Now()
	n := 0
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []store.Withdrawal
		q := tx.Where("state = ? AND next_attempt_at < ?", string(withdrawal.StateSubmitting), now).
			Order("next_attempt_at").Limit(100)
		if d.db.Dialect == store.MySQL {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
		}
		if err := q.Find(&rows).Error; err != nil {
			return fmt.Errorf("find expired leases: %w", err)
		}
		for i := range rows {
			w := &rows[i]
			d.log.Warn("claim lease expired: maybe sent, now UNKNOWN", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo, "lease_owner", w.LeaseOwner)
			if _, err := transition.Apply(ctx, store.LegacyTx(tx), w, transition.Change{
				To: withdrawal.StateUnknown, ReasonCode: "LEASE_EXPIRED",
				Reason:        "the instance that sent it stopped before recording the answer",
				NextAttemptAt: now,
			}, now); err != nil {
				return err
			}
		}
		n = len(rows)
		return nil
	})
	d.opts.Metrics.leaseExpiries.Add(float64(n))
	return n, err
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
