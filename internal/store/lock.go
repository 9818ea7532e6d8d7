package store

import (
	"context"
	"database/sql"
	"fmt"
)

// TryAdvisoryLock takes the named lock without waiting and reports whether
// it got it. While ok, the lock is held until release is called (release
// is never nil; calling it when ok is false does nothing). It serialises a
// job across the instances sharing the database: on MySQL it is GET_LOCK,
// which belongs to a session, so the lock holds a connection of its own
// from the pool until release (the job's statements run on the others).
// SQLite serves one process (the devstack), with no other instance to
// exclude: the lock is always granted.
func TryAdvisoryLock(ctx context.Context, db *DB, name string) (release func(), ok bool, err error) {
	noop := func() {}
	if db.Dialect != MySQL {
		return noop, true, nil
	}
	sqlDB, err := db.g.DB()
	if err != nil {
		return noop, false, fmt.Errorf("lock %s: %w", name, err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return noop, false, fmt.Errorf("lock %s: connection: %w", name, err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil {
		conn.Close()
		return noop, false, fmt.Errorf("lock %s: %w", name, err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return noop, false, nil
	}
	return func() {
		// The session's end would release it too; say so explicitly, so
		// that the connection goes back to the pool without it.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", name)
		conn.Close()
	}, true, nil
}
