package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The outbox relay's lane leases (table outbox_lanes, migration 00002) and
// heartbeats (outbox_relays). One relay at a time holds a lane: owner is
// '' and lease_expires_at NULL when the lane is free, and an expired lease
// is free too. Lease times are the database's clock (DatabaseNow), so
// relays on different hosts never compare their own clocks.

// OutboxLane is a row of outbox_lanes: who leases the lane, until when.
type OutboxLane struct {
	Lane           int
	Owner          string     // '' when free
	LeaseExpiresAt *time.Time // nil when free
}

// DatabaseNow is the database's UTC clock on MySQL, so that every relay
// instance judges leases by the same clock; SQLite runs in this process and
// uses ours.
func DatabaseNow(ctx context.Context, ex Executor) (time.Time, error) {
	if ex.engine() != MySQL {
		return time.Now().UTC(), nil
	}
	var now time.Time
	if err := ex.handle().WithContext(ctx).Raw("SELECT UTC_TIMESTAMP(6)").Row().Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return now.UTC(), nil
}

// EnsureOutboxLanes inserts the rows of lanes 0..lanes-1 that are missing
// (a hand-made table, a truncation); the migration inserts them, so
// usually it only counts them.
func EnsureOutboxLanes(ctx context.Context, ex Executor, lanes int) error {
	db := ex.handle()
	var n int64
	if err := db.WithContext(ctx).Raw("SELECT COUNT(*) FROM outbox_lanes").Scan(&n).Error; err != nil {
		return fmt.Errorf("count lanes: %w", err)
	}
	if n >= int64(lanes) {
		return nil
	}
	values := make([]string, lanes)
	for i := range values {
		values[i] = fmt.Sprintf("(%d)", i)
	}
	verb := "INSERT IGNORE INTO"
	if ex.engine() != MySQL {
		verb = "INSERT OR IGNORE INTO"
	}
	if err := db.WithContext(ctx).Exec(verb + " outbox_lanes (lane) VALUES " + strings.Join(values, ",")).Error; err != nil {
		return fmt.Errorf("insert lanes: %w", err)
	}
	return nil
}

// OutboxLanes reads every lane's lease.
func OutboxLanes(ctx context.Context, ex Executor) ([]OutboxLane, error) {
	var rows []OutboxLane
	if err := ex.handle().WithContext(ctx).Raw("SELECT lane, owner, lease_expires_at FROM outbox_lanes").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read lane leases: %w", err)
	}
	return rows, nil
}

// OwnedOutboxLanes lists the lanes owner leases, expired or not.
func OwnedOutboxLanes(ctx context.Context, ex Executor, owner string) ([]int, error) {
	var lanes []int
	if err := ex.handle().WithContext(ctx).Raw("SELECT lane FROM outbox_lanes WHERE owner = ?", owner).Scan(&lanes).Error; err != nil {
		return nil, fmt.Errorf("read lane leases: %w", err)
	}
	return lanes, nil
}

// RenewOutboxLanes extends every lease of owner to expires. A lease that
// expired meanwhile but that nobody took is renewed too: the lane is still
// owner's.
func RenewOutboxLanes(ctx context.Context, ex Executor, owner string, expires time.Time) error {
	if err := ex.handle().WithContext(ctx).Exec("UPDATE outbox_lanes SET lease_expires_at = ? WHERE owner = ?", expires, owner).Error; err != nil {
		return fmt.Errorf("renew lane leases: %w", err)
	}
	return nil
}

// LaneClaim asks ClaimOutboxLanes for up to Want of Candidates, in that
// order of preference, for Owner until Expires.
type LaneClaim struct {
	Owner      string
	Candidates []int
	Want       int
	// Now is the database's clock (DatabaseNow): a lease that expired at
	// or before it is free.
	Now     time.Time
	Expires time.Time
}

// ClaimOutboxLanes leases to c.Owner up to c.Want of c.Candidates that are
// still free or expired, and returns how many it leased. On MySQL the
// candidates are locked with SKIP LOCKED (in candidate order), so relays
// claiming at the same moment split the free lanes instead of queueing on
// each other's row locks, and the UPDATE then names the lanes locked. On
// SQLite (one process, one connection) a conditional UPDATE is enough.
func ClaimOutboxLanes(ctx context.Context, tx *Tx, c LaneClaim) (int, error) {
	if len(c.Candidates) == 0 || c.Want <= 0 {
		return 0, nil
	}
	db := tx.g.WithContext(ctx)
	if tx.dialect != MySQL {
		pick := c.Candidates[:min(c.Want, len(c.Candidates))]
		res := db.Exec("UPDATE outbox_lanes SET owner = ?, lease_expires_at = ? WHERE lane IN ("+joinInts(pick)+
			") AND (owner = '' OR lease_expires_at IS NULL OR lease_expires_at <= ?)", c.Owner, c.Expires, c.Now)
		if res.Error != nil {
			return 0, fmt.Errorf("claim lanes: %w", res.Error)
		}
		return int(res.RowsAffected), nil
	}
	var got []int
	q := "SELECT lane FROM outbox_lanes WHERE lane IN (" + joinInts(c.Candidates) + ")" +
		" AND (owner = '' OR lease_expires_at IS NULL OR lease_expires_at <= ?)" +
		" ORDER BY FIELD(lane, " + joinInts(c.Candidates) + ") LIMIT ? FOR UPDATE SKIP LOCKED"
	if err := db.Raw(q, c.Now, c.Want).Scan(&got).Error; err != nil {
		return 0, fmt.Errorf("claim lanes: %w", err)
	}
	if len(got) == 0 {
		return 0, nil
	}
	if err := db.Exec("UPDATE outbox_lanes SET owner = ?, lease_expires_at = ? WHERE lane IN ("+joinInts(got)+")", c.Owner, c.Expires).Error; err != nil {
		return 0, fmt.Errorf("claim lanes: %w", err)
	}
	return len(got), nil
}

// ReleaseOutboxLanes hands back those of lanes that owner leases: they are
// free at once for another relay.
func ReleaseOutboxLanes(ctx context.Context, ex Executor, owner string, lanes []int) error {
	if len(lanes) == 0 {
		return nil
	}
	if err := ex.handle().WithContext(ctx).Exec("UPDATE outbox_lanes SET owner = '', lease_expires_at = NULL WHERE owner = ? AND lane IN ("+joinInts(lanes)+")", owner).Error; err != nil {
		return fmt.Errorf("release lanes: %w", err)
	}
	return nil
}

// HeartbeatOutboxRelay records relay owner as live until expires and
// forgets the relays whose heartbeat expired before forgetBefore (they died
// long ago).
func HeartbeatOutboxRelay(ctx context.Context, ex Executor, owner string, expires, forgetBefore time.Time) error {
	q := "INSERT INTO outbox_relays (owner, expires_at) VALUES (?, ?) ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)"
	if ex.engine() != MySQL {
		q = "INSERT INTO outbox_relays (owner, expires_at) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at"
	}
	db := ex.handle().WithContext(ctx)
	if err := db.Exec(q, owner, expires).Error; err != nil {
		return fmt.Errorf("relay heartbeat: %w", err)
	}
	if err := db.Exec("DELETE FROM outbox_relays WHERE expires_at < ?", forgetBefore).Error; err != nil {
		return fmt.Errorf("relay heartbeat: %w", err)
	}
	return nil
}

// CountLiveOutboxRelays is the number of relays whose heartbeat expires
// after now (the database's clock).
func CountLiveOutboxRelays(ctx context.Context, ex Executor, now time.Time) (int, error) {
	var n int
	if err := ex.handle().WithContext(ctx).Raw("SELECT COUNT(*) FROM outbox_relays WHERE expires_at > ?", now).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count relays: %w", err)
	}
	return n, nil
}

// RetireOutboxRelay hands back every lane of owner and drops its heartbeat,
// at shutdown, so that other relays take the lanes over at once instead of
// after the lease's TTL.
func RetireOutboxRelay(ctx context.Context, ex Executor, owner string) error {
	db := ex.handle().WithContext(ctx)
	err := db.Exec("UPDATE outbox_lanes SET owner = '', lease_expires_at = NULL WHERE owner = ?", owner).Error
	if err == nil {
		err = db.Exec("DELETE FROM outbox_relays WHERE owner = ?", owner).Error
	}
	if err != nil {
		return fmt.Errorf("release lanes: %w", err)
	}
	return nil
}
