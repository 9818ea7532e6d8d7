package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

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
	now, err := dbNow(ctx, l.db)
	if err != nil {
		return err
	}
	expires := now.Add(l.ttl)
	localDeadline := start.Add(l.ttl)
	db := l.db.WithContext(ctx)

	if err := db.Exec("UPDATE outbox_lanes SET lease_expires_at = ? WHERE owner = ?", expires, l.owner).Error; err != nil {
		return fmt.Errorf("renew lane leases: %w", err)
	}
	if err := l.heartbeat(ctx, now, expires); err != nil {
		return err
	}
	var relays int
	if err := db.Raw("SELECT COUNT(*) FROM outbox_relays WHERE expires_at > ?", now).Scan(&relays).Error; err != nil {
		return fmt.Errorf("count relays: %w", err)
	}
	relays = max(relays, 1)
	type laneRow struct {
		Lane           int
		Owner          string
		LeaseExpiresAt *time.Time
	}
	var rows []laneRow
	if err := db.Raw("SELECT lane, owner, lease_expires_at FROM outbox_lanes").Scan(&rows).Error; err != nil {
		return fmt.Errorf("read lane leases: %w", err)
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
			if err := db.Exec("UPDATE outbox_lanes SET owner = '', lease_expires_at = NULL WHERE owner = ? AND lane IN ("+joinInts(idle)+")", l.owner).Error; err != nil {
				return fmt.Errorf("release lanes: %w", err)
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
		if err := l.claim(ctx, free, want, now, expires); err != nil {
			return err
		}
	}

	// What the database says is ours now, all with the expiry just written.
	var owned []int
	if err := db.Raw("SELECT lane FROM outbox_lanes WHERE owner = ?", l.owner).Scan(&owned).Error; err != nil {
		return fmt.Errorf("read lane leases: %w", err)
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

// claim takes up to want of the candidate lanes that are still free or
// expired. On MySQL the candidates are locked with SKIP LOCKED, so relays
// claiming at the same moment split the free lanes instead of queueing on
// each other's row locks; the UPDATE re-checks the condition either way.
func (l *leases) claim(ctx context.Context, candidates []int, want int, now, expires time.Time) error {
	if l.db.Dialect != store.MySQL {
		// One process, one connection: a conditional UPDATE is enough.
		pick := candidates[:min(want, len(candidates))]
		return l.db.WithContext(ctx).Exec("UPDATE outbox_lanes SET owner = ?, lease_expires_at = ? WHERE lane IN ("+joinInts(pick)+
			") AND (owner = '' OR lease_expires_at IS NULL OR lease_expires_at <= ?)", l.owner, expires, now).Error
	}
	err := l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var got []int
		q := "SELECT lane FROM outbox_lanes WHERE lane IN (" + joinInts(candidates) + ")" +
			" AND (owner = '' OR lease_expires_at IS NULL OR lease_expires_at <= ?)" +
			" ORDER BY FIELD(lane, " + joinInts(candidates) + ") LIMIT ? FOR UPDATE SKIP LOCKED"
		if err := tx.Raw(q, now, want).Scan(&got).Error; err != nil {
			return err
		}
		if len(got) == 0 {
			return nil
		}
		return tx.Exec("UPDATE outbox_lanes SET owner = ?, lease_expires_at = ? WHERE lane IN ("+joinInts(got)+")", l.owner, expires).Error
	})
	if err != nil {
		return fmt.Errorf("claim lanes: %w", err)
	}
	return nil
}

// ensureLanes inserts the lane rows once, should the migration's rows be
// missing (a hand-made table, a truncation).
func (l *leases) ensureLanes(ctx context.Context) error {
	var n int64
	if err := l.db.WithContext(ctx).Raw("SELECT COUNT(*) FROM outbox_lanes").Scan(&n).Error; err != nil {
		return fmt.Errorf("count lanes: %w", err)
	}
	if n >= outbox.Lanes {
		return nil
	}
	values := make([]string, outbox.Lanes)
	for i := range values {
		values[i] = fmt.Sprintf("(%d)", i)
	}
	verb := "INSERT IGNORE INTO"
	if l.db.Dialect != store.MySQL {
		verb = "INSERT OR IGNORE INTO"
	}
	if err := l.db.WithContext(ctx).Exec(verb + " outbox_lanes (lane) VALUES " + strings.Join(values, ",")).Error; err != nil {
		return fmt.Errorf("insert lanes: %w", err)
	}
	return nil
}

// heartbeat records this relay as live until expires, and drops the
// records of relays that died long ago.
func (l *leases) heartbeat(ctx context.Context, now, expires time.Time) error {
	q := "INSERT INTO outbox_relays (owner, expires_at) VALUES (?, ?) ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)"
	if l.db.Dialect != store.MySQL {
		q = "INSERT INTO outbox_relays (owner, expires_at) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at"
	}
	db := l.db.WithContext(ctx)
	if err := db.Exec(q, l.owner, expires).Error; err != nil {
		return fmt.Errorf("relay heartbeat: %w", err)
	}
	if err := db.Exec("DELETE FROM outbox_relays WHERE expires_at < ?", now.Add(-time.Hour)).Error; err != nil {
		return fmt.Errorf("relay heartbeat: %w", err)
	}
	return nil
}

// releaseAll hands every lane back, at shutdown, so that another instance
// takes them over at once instead of after the TTL.
func (l *leases) releaseAll(ctx context.Context) error {
	err := l.db.WithContext(ctx).Exec("UPDATE outbox_lanes SET owner = '', lease_expires_at = NULL WHERE owner = ?", l.owner).Error
	if err == nil {
		err = l.db.WithContext(ctx).Exec("DELETE FROM outbox_relays WHERE owner = ?", l.owner).Error
	}
	l.mu.Lock()
	l.deadline = map[int]time.Time{}
	l.releasing = map[int]bool{}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("release lanes: %w", err)
	}
	return nil
}
