package dispatch

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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

// dueMerchants lists the merchants with due work, least recently served by
// this instance first. One index dive per merchant and state
// (ix_withdrawals_merchant_due), however long a merchant's queue is.
func (d *Dispatcher) dueMerchants(ctx context.Context, now time.Time) (out []string, resubmit map[string]bool, err error) {
	seen := map[string]bool{}
	for _, state := range claimable {
		var keys []string
		err := d.db.WithContext(ctx).Model(&store.Withdrawal{}).
			Where("state = ?", state).
			Group("merchant_key").
			Having("MIN(next_attempt_at) <= ?", now).
			Pluck("merchant_key", &keys).Error
		if err != nil {
			return nil, nil, fmt.Errorf("due merchants: %w", err)
		}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	// SUBMITTED withdrawals the provider wants re-sent (INIT): few, found
	// through their own index.
	var keys []string
	err = d.db.WithContext(ctx).Model(&store.Withdrawal{}).
		Where("resubmit_requested = ? AND state = ?", true, string(withdrawal.StateSubmitted)).
		Group("merchant_key").
		Having("MIN(next_attempt_at) <= ?", now).
		Pluck("merchant_key", &keys).Error
	if err != nil {
		return nil, nil, fmt.Errorf("due re-submissions: %w", err)
	}
	resubmit = make(map[string]bool, len(keys))
	for _, k := range keys {
		resubmit[k] = true
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	d.mu.Lock()
	sort.SliceStable(out, func(i, j int) bool { return d.lastServed[out[i]].Before(d.lastServed[out[j]]) })
	d.mu.Unlock()
	return out, resubmit, nil
}

// claim takes up to budget due withdrawals, at most PerMerchant in flight
// per merchant across all instances, and returns them with their requests.
func (d *Dispatcher) claim(ctx context.Context, budget int) ([]claimed, error) {
	now := d.opts.Now()
	merchants, resubmit, err := d.dueMerchants(ctx, now)
	if err != nil || len(merchants) == 0 {
		return nil, err
	}
	if err := d.registerMerchants(ctx, merchants); err != nil {
		return nil, err
	}

	var out []claimed
	var txOpts []*sql.TxOptions
	mysql := d.db.Dialect == store.MySQL
	if mysql {
		// Read committed: the in-flight count below must see claims other
		// instances committed after this transaction began.
		txOpts = append(txOpts, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	}
	err = d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		out = out[:0]
		locked := merchants
		if mysql {
			// The merchant's lock row serialises claimers of one merchant;
			// SKIP LOCKED lets this instance serve the others meanwhile.
			var got []string
			if err := tx.Table("dispatch_merchants").Where("merchant_key IN ?", merchants).
				Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked}).
				Pluck("merchant_key", &got).Error; err != nil {
				return fmt.Errorf("lock merchants: %w", err)
			}
			locked = keepOrder(merchants, got)
		}
		inFlight, err := d.inFlight(tx, locked)
		if err != nil {
			return err
		}
		var served []string
		for _, m := range locked {
			free := min(d.perMerchant(m)-inFlight[m], budget-len(out))
			if free <= 0 {
				continue
			}
			var due []store.Withdrawal
			q := tx.Where("merchant_key = ? AND state IN ? AND next_attempt_at <= ?", m, claimable, now).
				Order("next_attempt_at").Limit(free)
			if mysql {
				q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
			}
			if err := q.Find(&due).Error; err != nil {
				return fmt.Errorf("claim withdrawals of %s: %w", m, err)
			}
			if resubmit[m] && len(due) < free {
				var again []store.Withdrawal
				q := tx.Where("resubmit_requested = ? AND merchant_key = ? AND state = ? AND next_attempt_at <= ?",
					true, m, string(withdrawal.StateSubmitted), now).Order("next_attempt_at").Limit(free - len(due))
				if mysql {
					q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
				}
				if err := q.Find(&again).Error; err != nil {
					return fmt.Errorf("claim re-submissions of %s: %w", m, err)
				}
				due = append(due, again...)
			}
			for i := range due {
				c, ok, err := d.take(ctx, tx, &due[i], now)
				if err != nil {
					return err
				}
				if ok {
					out = append(out, c)
				}
			}
			if len(due) > 0 {
				served = append(served, m)
			}
			if len(out) >= budget {
				break
			}
		}
		if len(served) > 0 {
			return tx.Table("dispatch_merchants").Where("merchant_key IN ?", served).Update("last_claimed_at", now).Error
		}
		return nil
	}, txOpts...)
	if err != nil {
		return nil, err
	}
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
func (d *Dispatcher) inFlight(tx *gorm.DB, merchants []string) (map[string]int, error) {
	counts := map[string]int{}
	if len(merchants) == 0 {
		return counts, nil
	}
	var rows []struct {
		MerchantKey string
		N           int
	}
	err := tx.Model(&store.Withdrawal{}).Select("merchant_key, COUNT(*) AS n").
		Where("merchant_key IN ? AND state = ?", merchants, string(withdrawal.StateSubmitting)).
		Group("merchant_key").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count in-flight: %w", err)
	}
	for _, r := range rows {
		counts[r.MerchantKey] = r.N
	}
	return counts, nil
}

// take moves one locked row to SUBMITTING under this instance's lease. The
// first time, it builds the provider request and stores its exact bytes in
// the same transaction, before anything is sent. ok is false when the row
// cannot be sent now (its provider account is missing or the request cannot
// be built): it is postponed, not failed, because the money is still owed.
func (d *Dispatcher) take(ctx context.Context, tx *gorm.DB, w *store.Withdrawal, now time.Time) (c claimed, ok bool, err error) {
	postpone := func(cause error) (claimed, bool, error) {
		d.log.Error("withdrawal cannot be sent; postponed", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
			"channel", w.Channel, "account", w.Account, "retry_in", d.opts.ConfigErrorDelay, "alert", true, "err", cause)
		return claimed{}, false, tx.Model(&store.Withdrawal{}).Where("id = ?", w.ID).
			Updates(map[string]any{"next_attempt_at": now.Add(d.opts.ConfigErrorDelay), "updated_at": now}).Error
	}
	prov, err := d.providers.Get(withdrawal.Channel(w.Channel), w.Account)
	if err != nil {
		return postpone(err)
	}
	updates := map[string]any{
		"state":            string(withdrawal.StateSubmitting),
		"claimed_from":     w.State,
		"lease_owner":      d.owner,
		"lease_expires_at": now.Add(d.opts.LeaseTTL),
		// A claimed row is next due when its lease expires: the lease sweep
		// finds it through the (state, next_attempt_at) index like all due work.
		"next_attempt_at": now.Add(d.opts.LeaseTTL),
		"updated_at":       now,
	}
	var req provider.Request
	if len(w.ProviderRequest) == 0 {
		cmd, err := w.Command(d.keys)
		if err != nil {
			return postpone(err)
		}
		req, err = prov.BuildSubmit(ctx, cmd)
		if err != nil {
			return postpone(err)
		}
		stored, err := json.Marshal(req)
		if err != nil {
			return postpone(err)
		}
		updates["provider_request"] = stored
		updates["provider_request_serial"] = req.WechatpaySerial
		w.ProviderRequest = stored
	} else if err := json.Unmarshal(w.ProviderRequest, &req); err != nil {
		return postpone(fmt.Errorf("stored request of %s: %w", w.ID, err))
	}
	if w.FirstSentAt == nil {
		// From here on the request may be on the wire.
		updates["first_sent_at"] = now
		w.FirstSentAt = &now
	}
	res := tx.Model(&store.Withdrawal{}).Where("id = ? AND state = ? AND version = ?", w.ID, w.State, w.Version).Updates(updates)
	if res.Error != nil {
		return claimed{}, false, fmt.Errorf("claim %s: %w", w.ID, res.Error)
	}
	if res.RowsAffected != 1 {
		return claimed{}, false, nil // changed since it was read: not ours
	}
	w.ClaimedFrom, w.State, w.LeaseOwner = w.State, string(withdrawal.StateSubmitting), d.owner
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
			if _, err := transition.Apply(ctx, tx, w, transition.Change{
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
