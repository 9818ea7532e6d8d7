package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

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
	err := d.db.InTxReadCommitted(ctx, func(tx *store.Tx) error {
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
			locked, err := store.LockMerchants(ctx, tx, candidates)
			if err != nil {
				return err
			}
			inFlight, err := store.CountInFlight(ctx, tx, locked)
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
	})
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
	if err := store.RegisterMerchants(ctx, d.db, merchants); err != nil {
		return err
	}
	d.mu.Lock()
	for _, m := range merchants {
		d.registered[m] = true
	}
	d.mu.Unlock()
	return nil
}

// dueRows reads, in one statement (per hundred merchants), the earliest
// due withdrawals of each merchant up to its quota: one range per merchant
// and claimable state it has due work in (due.states), and one for its
// due re-submissions (store.DueWithdrawals).
func (d *Dispatcher) dueRows(ctx context.Context, tx *store.Tx, merchants []string, quota map[string]int, due dueList, now time.Time) ([]store.Withdrawal, error) {
	ranges := dueRanges(merchants, quota, due)
	if len(ranges) == 0 {
		return nil, nil
	}
	rows, err := store.DueWithdrawals(ctx, tx, ranges, now)
	if err != nil {
		return nil, err
	}
	// The ranges of one merchant together may exceed its quota: keep the
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

// dueRanges are the ranges dueRows reads for merchants: per merchant, one
// for each claimable state it has due work in (all of them when unknown)
// and one for its due re-submissions, each up to the merchant's quota.
func dueRanges(merchants []string, quota map[string]int, due dueList) []store.DueRange {
	ranges := make([]store.DueRange, 0, len(merchants))
	for _, m := range merchants {
		states, known := due.states[m]
		for i, state := range claimable {
			if known && states&(1<<i) == 0 {
				continue
			}
			ranges = append(ranges, store.DueRange{MerchantKey: m, State: state, Limit: quota[m]})
		}
		if due.resubmit[m] {
			ranges = append(ranges, store.DueRange{MerchantKey: m, Resubmit: true, Limit: quota[m]})
		}
	}
	return ranges
}

// takeAll moves due rows to SUBMITTING under this instance's lease, in one
// UPDATE (store.ClaimWithdrawals). The first time a row is claimed its
// provider request is built and its exact bytes are stored in the same
// statement, before anything is sent. A row that cannot be sent now (its
// provider account is missing, its request cannot be built) is postponed,
// not failed: the money is still owed.
func (d *Dispatcher) takeAll(ctx context.Context, tx *store.Tx, rows []store.Withdrawal, now time.Time) ([]claimed, error) {
	out := make([]claimed, 0, len(rows))
	claims := make([]store.Claim, 0, len(rows))
	for i := range rows {
		w := &rows[i]
		c, built, err := d.prepare(ctx, w)
		if err != nil {
			d.log.Error("withdrawal cannot be sent; postponed", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
				"channel", w.Channel, "account", w.Account, "retry_in", d.opts.ConfigErrorDelay, "alert", true, "err", err)
			if _, err := store.PostponeWithdrawal(ctx, tx, w.ID, w.Version, now.Add(d.opts.ConfigErrorDelay), now); err != nil {
				return nil, err
			}
			continue
		}
		claim := store.Claim{ID: w.ID, Version: w.Version}
		if built {
			claim.Request, claim.RequestSerial = w.ProviderRequest, c.req.WechatpaySerial
		}
		claims = append(claims, claim)
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, nil
	}
	lease := now.Add(d.opts.LeaseTTL)
	lost, err := store.ClaimWithdrawals(ctx, tx, claims, d.owner, lease, now)
	if err != nil {
		return nil, err
	}
	if len(lost) > 0 {
		drop := make(map[string]bool, len(lost))
		for _, id := range lost {
			drop[id] = true
		}
		kept := out[:0]
		for _, c := range out {
			if !drop[c.row.ID] {
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
	err := d.db.InTx(ctx, func(tx *store.Tx) error {
		rows, err := store.LockExpiredLeases(ctx, tx, now, expireBatch)
		if err != nil {
			return err
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

// expireBatch is the most expired leases one sweep takes.
const expireBatch = 100
