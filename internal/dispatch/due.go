package dispatch

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Which merchants have due work. The scan that answers it (one index dive
// per merchant and state) costs the same whether a claim takes one
// withdrawal or fifty, and at full load the dispatcher claims every few
// milliseconds: with 500 merchants the scans were the largest item of the
// database's CPU. So the answer is kept and reused (dueCache) until
//   - it is dueScanMaxAge old (work that fell due without anyone telling
//     this instance: another instance's intake, an UNKNOWN whose query is
//     now due, a merchant back from a 429 delay), or
//   - a claim from it found nothing to take (then it is scanned again at
//     once, so a stale list never leaves due work waiting while slots are
//     free).
//
// Merchants are dropped from it when a claim gave them room and found fewer
// due rows than that room, and added by NotifyDue (the intake of this
// process reports the merchants of each stored batch). A list that is too
// long costs an empty branch in dueRows; one that is too short delays a
// merchant by at most dueScanMaxAge while others keep the slots busy.
// Neither can claim anything twice: dueRows and the claim's UPDATE check
// every row's state and version under the merchant's lock row.

// dueScanMaxAge bounds how long a due-merchant scan is reused.
const dueScanMaxAge = 500 * time.Millisecond

// resubmitScanEvery spaces the scans for re-submissions the poller asked
// for. They are rare (WeChat INIT) and wait for a delay anyway, while the
// scan reads every due SUBMITTED row (resubmit_requested is in no index:
// every index costs the intake an insert per command), and at 08:00 Beijing
// time a whole day of SUBMITTED rows falls due for the poller at once.
const resubmitScanEvery = time.Second

// The scan's share of the time is bounded too: after a scan that took T
// the next waits at least T/resubmitScanShare, but never more than
// resubmitScanMaxWait. At 08:00 a scan of a day's SUBMITTED rows can take
// a good part of a second, and repeating it every second would spend a
// database core on it for as long as the poller needs to work through
// them; a re-submission waits a few seconds longer instead.
const (
	resubmitScanShare   = 0.05
	resubmitScanMaxWait = time.Minute
)

// resubmitScanWait is how long the answer of a scan that took took is
// reused.
func resubmitScanWait(took time.Duration) time.Duration {
	return min(max(resubmitScanEvery, time.Duration(float64(took)/resubmitScanShare)), resubmitScanMaxWait)
}

// dueStates is the set of claimable states a merchant has due work in:
// bit i stands for claimable[i]. dueRows reads one ordered range per state
// in the set, so a merchant with only new withdrawals (the usual case)
// costs one branch of the claim's UNION instead of one per claimable state
// (the branches were a fifth of the database's CPU at full load).
type dueStates uint8

// dueAccepted is the set of a merchant whose new withdrawals were stored.
var dueAccepted = stateBit(string(withdrawal.StateAccepted))

// stateBit is the set holding state alone (empty if it is not claimable).
func stateBit(state string) dueStates {
	for i, s := range claimable {
		if s == state {
			return 1 << i
		}
	}
	return 0
}

// dueEntry is one merchant of the reused list.
type dueEntry struct {
	// gen is the generation of the merchant's latest addition: a claim
	// drops a merchant only if nobody added it after the claim read the
	// list.
	gen    uint64
	states dueStates
}

// dueCache is the reused due-merchant list.
type dueCache struct {
	mu        sync.Mutex
	scannedAt time.Time // zero: no list, scan
	gen       uint64    // counts additions
	merchants map[string]dueEntry
}

// snapshot appends the listed merchants to into and returns them, if the
// list may be reused at now. Their due states are read later, for the few
// merchants a claim serves (statesOf): copying them all cost more than the
// claim's own statements.
func (c *dueCache) snapshot(now time.Time, into []string) (merchants []string, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	age := now.Sub(c.scannedAt)
	if c.scannedAt.IsZero() || age < 0 || age >= dueScanMaxAge || len(c.merchants) == 0 {
		return into, c.gen, false
	}
	for m := range c.merchants {
		into = append(into, m)
	}
	return into, c.gen, true
}

// statesOf returns the due states of those of merchants still listed. Read
// after the snapshot, they may hold more than they did then (more branches
// in dueRows, never fewer rows); a merchant dropped since is missing, and
// dueRows reads all its states.
func (c *dueCache) statesOf(merchants []string) map[string]dueStates {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]dueStates, len(merchants))
	for _, m := range merchants {
		if e, ok := c.merchants[m]; ok {
			out[m] = e.states
		}
	}
	return out
}

// replace stores a fresh scan taken at now: the merchants and the states
// they have due work in.
func (c *dueCache) replace(found map[string]dueStates, now time.Time) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.scannedAt = now
	c.merchants = make(map[string]dueEntry, len(found))
	for m, st := range found {
		c.merchants[m] = dueEntry{gen: c.gen, states: st}
	}
	return c.gen
}

// add records merchants known to have new due work in states.
func (c *dueCache) add(merchants []string, states dueStates) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.merchants == nil {
		return // no list yet: the next claim scans and finds them
	}
	c.gen++
	for _, m := range merchants {
		e := c.merchants[m]
		c.merchants[m] = dueEntry{gen: c.gen, states: e.states | states}
	}
}

// drop removes merchants that had nothing more due when a claim read the
// list at generation gen, unless they were added again since.
func (c *dueCache) drop(merchants []string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range merchants {
		if e, ok := c.merchants[m]; ok && e.gen <= gen {
			delete(c.merchants, m)
		}
	}
}

// NotifyDue tells the dispatcher that these merchants have new due
// withdrawals (the intake of the same process, after it stored a batch),
// and wakes it. Merchants it is not told about are found by its scans.
func (d *Dispatcher) NotifyDue(merchantKeys []string) {
	d.due.add(merchantKeys, dueAccepted)
	d.Notify()
}

// dueList is the claim's view of the due merchants.
type dueList struct {
	merchants []string // least recently served by this instance first
	// states are the claimable states each merchant has due work in; a
	// merchant missing from it may have any (dueRows reads them all). Nil
	// for a reused list until the claim knows which merchants it serves
	// (dueList.resolve).
	states   map[string]dueStates
	resubmit map[string]bool // merchants with a re-submission due
	gen      uint64          // the dueCache generation read
	cached   bool            // reused, not scanned now
}

// dueMerchants lists the merchants with due work, from the cache unless
// scan is set or the cache may not be reused. The list is built in
// d.claimScratch: it is valid until the next claim.
func (d *Dispatcher) dueMerchants(ctx context.Context, now time.Time, scan bool) (dueList, error) {
	var l dueList
	var ok bool
	buf := d.claimScratch.merchants[:0]
	if !scan {
		l.merchants, l.gen, ok = d.due.snapshot(now, buf)
	}
	l.cached = ok
	if !ok {
		found, err := d.scanDueMerchants(ctx, now)
		if err != nil {
			return dueList{}, err
		}
		l.gen = d.due.replace(found, now)
		l.states = found
		l.merchants = buf
		for m := range found {
			l.merchants = append(l.merchants, m)
		}
	}
	resubmit, err := d.dueResubmits(ctx, now)
	if err != nil {
		return dueList{}, err
	}
	l.resubmit = resubmit
	if len(resubmit) > 0 {
		seen := make(map[string]bool, len(l.merchants))
		for _, m := range l.merchants {
			seen[m] = true
		}
		for m := range resubmit {
			if !seen[m] {
				l.merchants = append(l.merchants, m)
			}
		}
	}
	d.claimScratch.merchants = l.merchants
	d.byLastServed(l.merchants)
	return l, nil
}

// resolve sets the due states of the merchants a claim serves (a reused
// list reads them now, see dueCache.statesOf). A merchant known only from
// the re-submission scan gets the empty set: its one branch is the
// re-submission's.
func (l *dueList) resolve(c *dueCache, served []string) {
	if l.states == nil {
		l.states = c.statesOf(served)
	}
	for _, m := range served {
		if _, known := l.states[m]; !known && l.resubmit[m] {
			l.states[m] = 0
		}
	}
}

// scanDueMerchants reads the merchants with ACCEPTED or UNKNOWN rows due at
// now, and in which of the two states (store.DueMerchants: one index dive
// per merchant and state, however long a merchant's queue is).
func (d *Dispatcher) scanDueMerchants(ctx context.Context, now time.Time) (map[string]dueStates, error) {
	groups, err := store.DueMerchants(ctx, d.db, claimable, now)
	if err != nil {
		return nil, err
	}
	found := make(map[string]dueStates, len(groups))
	for _, g := range groups {
		found[g.MerchantKey] |= stateBit(g.State)
	}
	return found, nil
}

// dueResubmits returns the merchants with SUBMITTED withdrawals the provider
// wants re-sent (INIT; the poller set next_attempt_at to when). It scans at
// most every resubmitScanEvery, or less often after a slow scan
// (resubmitScanWait), and otherwise answers from its last scan; dueRows
// checks every row again, so a stale answer costs one empty branch.
func (d *Dispatcher) dueResubmits(ctx context.Context, now time.Time) (map[string]bool, error) {
	d.mu.Lock()
	fresh := !d.resubmitScannedAt.IsZero() && now.Sub(d.resubmitScannedAt) < d.resubmitScanWait && now.After(d.resubmitScannedAt)
	cached := d.resubmitMerchants
	d.mu.Unlock()
	if fresh {
		return cached, nil
	}
	start := time.Now() // the database's time, not the clock of the schedule
	keys, err := store.DueResubmitMerchants(ctx, d.db, now)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	wait := resubmitScanWait(took)
	if wait > resubmitScanEvery {
		d.log.Info("re-submission scan was slow; scanning less often", "took", took, "next_in", wait)
	}
	found := make(map[string]bool, len(keys))
	for _, k := range keys {
		found[k] = true
	}
	d.mu.Lock()
	d.resubmitScannedAt, d.resubmitScanWait, d.resubmitMerchants = now, wait, found
	d.mu.Unlock()
	return found, nil
}

// byLastServed orders merchants least recently served by this instance
// first (never served first of all). Each merchant's time is looked up once:
// a sort comparing through the map did two lookups per comparison, 50 µs
// per submission with 500 merchants.
func (d *Dispatcher) byLastServed(merchants []string) {
	entries := d.claimScratch.served[:0]
	d.mu.Lock()
	for _, m := range merchants {
		entries = append(entries, servedAt{m, d.lastServed[m]})
	}
	d.mu.Unlock()
	d.claimScratch.served = entries
	slices.SortStableFunc(entries, func(a, b servedAt) int { return a.served.Compare(b.served) })
	for i, e := range entries {
		merchants[i] = e.key
	}
}

// servedAt is a merchant and when this instance last claimed for it.
type servedAt struct {
	key    string
	served time.Time
}

// claimScratch is memory the claims reuse: a claim lists and sorts every
// due merchant (hundreds), and allocating the lists afresh each time was
// most of the claim's garbage. Claims run one at a time (claimMu).
type claimScratch struct {
	merchants []string
	served    []servedAt
}
