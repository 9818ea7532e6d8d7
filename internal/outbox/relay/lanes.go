package relay

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/store"
)

// leases keeps this relay's leases on outbox lanes (table outbox_lanes).
//
// Every tick it renews the lanes it owns, counts the other live owners,
// releases lanes above its fair share (ceil(outbox.Lanes / live owners)) and claims
// free or expired lanes up to it. Lease times are the database's clock; the
// local deadline of a lease is the local time just before the database read
// its clock, plus the TTL, so it never outlives the lease the database
// records. Workers use a lane only while its deadline is comfortably ahead.
type leases struct {
	db    *store.DB
	owner string
	ttl   time.Duration

	mu        sync.Mutex
	deadline  map[int]time.Time // held lane -> local deadline (monotonic)
	releasing map[int]bool      // held lanes to hand back once idle
	busy      map[int]bool      // lanes a worker is publishing right now
}

func newLeases(db *store.DB, owner string, ttl time.Duration) *leases {
	return &leases{db: db, owner: owner, ttl: ttl,
		deadline: map[int]time.Time{}, releasing: map[int]bool{}, busy: map[int]bool{}}
}

// acquire returns the lanes among want that this relay holds with more than
// minLeft of lease left and is not handing back, marks them busy, and
// returns the earliest of their deadlines. Call release when done.
func (l *leases) acquire(want []int, minLeft time.Duration) (lanes []int, deadline time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, lane := range want {
		d, ok := l.deadline[lane]
		if !ok || l.releasing[lane] || l.busy[lane] || d.Sub(now) <= minLeft {
			continue
		}
		l.busy[lane] = true
		lanes = append(lanes, lane)
		if deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	return lanes, deadline
}

func (l *leases) release(lanes []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lane := range lanes {
		delete(l.busy, lane)
	}
}

// held is the number of lanes currently leased.
func (l *leases) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.deadline)
}

// tick renews, rebalances and claims; see the type's comment.
func (l *leases) tick(ctx context.Context) error {
	start := time.Now()
	now, err := store.DatabaseNow(ctx, l.db)
	if err != nil {
		return err
	}
	expires := now.Add(l.ttl)
	localDeadline := start.Add(l.ttl)

	if err := store.RenewOutboxLanes(ctx, l.db, l.owner, expires); err != nil {
		return err
	}
	// Records of relays that died long ago are dropped.
	if err := store.HeartbeatOutboxRelay(ctx, l.db, l.owner, expires, now.Add(-time.Hour)); err != nil {
		return err
	}
	relays, err := store.CountLiveOutboxRelays(ctx, l.db, now)
	if err != nil {
		return err
	}
	relays = max(relays, 1)
	rows, err := store.OutboxLanes(ctx, l.db)
	if err != nil {
		return err
	}
	var mine, free []int
	for _, r := range rows {
		if r.Lane < 0 || r.Lane >= outbox.Lanes {
			continue
		}
		live := r.Owner != "" && r.LeaseExpiresAt != nil && r.LeaseExpiresAt.After(now)
		switch {
		case r.Owner == l.owner:
			mine = append(mine, r.Lane)
		case !live:
			free = append(free, r.Lane)
		}
	}
	share := (outbox.Lanes + relays - 1) / relays

	// Hand back lanes above the fair share (the highest first), once no
	// worker is publishing them: a newcomer then finds them free.
	sort.Ints(mine)
	if excess := len(mine) - share; excess > 0 {
		l.mu.Lock()
		var idle []int
		for _, lane := range mine[len(mine)-excess:] {
			l.releasing[lane] = true
			if !l.busy[lane] {
				idle = append(idle, lane)
			}
		}
		l.mu.Unlock()
		if len(idle) > 0 {
			if err := store.ReleaseOutboxLanes(ctx, l.db, l.owner, idle); err != nil {
				return err
			}
			l.mu.Lock()
			for _, lane := range idle {
				delete(l.deadline, lane)
				delete(l.releasing, lane)
			}
			l.mu.Unlock()
			mine = slices.DeleteFunc(mine, func(lane int) bool { return slices.Contains(idle, lane) })
		}
	} else if want := share - len(mine); want > 0 && len(free) > 0 {
		// Start at a random free lane so that instances starting together
		// do not all contend for the same ones.
		off := rand.IntN(len(free))
		free = append(free[off:], free[:off]...)
		claim := store.LaneClaim{Owner: l.owner, Candidates: free, Want: want, Now: now, Expires: expires}
		err := l.db.InTx(ctx, func(tx *store.Tx) error {
			_, err := store.ClaimOutboxLanes(ctx, tx, claim)
			return err
		})
		if err != nil {
			return err
		}
	}

	// What the database says is ours now, all with the expiry just written.
	owned, err := store.OwnedOutboxLanes(ctx, l.db, l.owner)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	next := make(map[int]time.Time, len(owned))
	for _, lane := range owned {
		next[lane] = localDeadline
	}
	l.deadline = next
	for lane := range l.releasing {
		if _, ok := next[lane]; !ok {
			delete(l.releasing, lane)
		}
	}
	return nil
}

// ensureLanes inserts the lane rows once, should the migration's rows be
// missing (a hand-made table, a truncation).
func (l *leases) ensureLanes(ctx context.Context) error {
	return store.EnsureOutboxLanes(ctx, l.db, outbox.Lanes)
}

// releaseAll hands every lane back, at shutdown, so that another instance
// takes them over at once instead of after the TTL.
func (l *leases) releaseAll(ctx context.Context) error {
	err := store.RetireOutboxRelay(ctx, l.db, l.owner)
	l.mu.Lock()
	l.deadline = map[int]time.Time{}
	l.releasing = map[int]bool{}
	l.mu.Unlock()
	return err
}
