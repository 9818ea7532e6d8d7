// Package store keeps withdrawals, their outbox events and the audit of
// provider calls in MySQL (production) or SQLite (the single-process
// devstack), through GORM, with versioned migrations embedded in the binary.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database engine behind a DB.
type Dialect string

// The supported engines.
const (
	MySQL  Dialect = "mysql"
	SQLite Dialect = "sqlite"
)

// DB is an open database with its engine, migrated or not.
type DB struct {
	g       *gorm.DB
	Dialect Dialect
}

// MaxOpenDefault is PoolOptions.MaxOpen's default (and --db-max-open's).
const MaxOpenDefault = 32

// PoolOptions size the connection pool.
type PoolOptions struct {
	MaxOpen     int           // default MaxOpenDefault
	MaxIdle     int           // default MaxOpen
	MaxLifetime time.Duration // default 30m
}

// gormConfig is shared by both engines. Transactions are explicit in this
// code base, so GORM's implicit per-write transaction would only cost a
// round trip; its logger is off because a slow-query log line would print
// parameters.
func gormConfig() *gorm.Config {
	return &gorm.Config{
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
}

// OpenMySQL connects to MySQL or MariaDB with a go-sql-driver DSN. parseTime
// and loc=UTC are added when the DSN does not set them (every time in the
// schema is UTC), and so is interpolateParams=true: without it every
// statement with arguments costs a prepare round trip, which doubled the
// database time of the intake and the dispatcher. Interpolation is safe with
// the utf8mb4 connection charset set here.
func OpenMySQL(ctx context.Context, dsn string, pool PoolOptions) (*DB, error) {
	if dsn == "" {
		return nil, errors.New("open mysql: empty DSN")
	}
	dsn = withDefaultParams(dsn, map[string]string{"parseTime": "true", "loc": "UTC", "charset": "utf8mb4", "interpolateParams": "true"})
	dsn = withParam(dsn, "timeTruncate", "1us") // TimePrecision
	g, err := gorm.Open(mysql.New(mysql.Config{DSN: dsn, DefaultStringSize: 191}), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	db := &DB{g: g, Dialect: MySQL}
	if err := db.configure(ctx, pool); err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	return db, nil
}

// OpenSQLite opens (creating if needed) a SQLite database file. SQLite takes
// one writer at a time, so the pool is a single connection and the journal is
// WAL with a busy timeout: the devstack's goroutines queue instead of failing.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	g, err := gorm.Open(sqlite.Open(dsn), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := &DB{g: g, Dialect: SQLite}
	if err := db.configure(ctx, PoolOptions{MaxOpen: 1}); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

func (db *DB) configure(ctx context.Context, pool PoolOptions) error {
	if pool.MaxOpen <= 0 {
		pool.MaxOpen = MaxOpenDefault
	}
	if pool.MaxIdle <= 0 {
		pool.MaxIdle = pool.MaxOpen
	}
	if pool.MaxLifetime <= 0 {
		pool.MaxLifetime = 30 * time.Minute
	}
	sqlDB, err := db.g.DB()
	if err != nil {
		return err
	}
	sqlDB.SetMaxOpenConns(pool.MaxOpen)
	sqlDB.SetMaxIdleConns(pool.MaxIdle)
	sqlDB.SetConnMaxLifetime(pool.MaxLifetime)
	return db.Ping(ctx)
}

// Ping checks that the database answers; /readyz uses it.
func (db *DB) Ping(ctx context.Context) error {
	sqlDB, err := db.g.DB()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return sqlDB.PingContext(ctx)
}

// Close closes the pool.
func (db *DB) Close() error {
	sqlDB, err := db.g.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// withDefaultParams appends query parameters the DSN does not already set.
// TimePrecision is the precision of every DATETIME(6) column. Every time the
// product sends is cut to it, whatever the DSN says: an interpolated
// literal with nanoseconds ('… 13:09:37.004400170') does not match the
// column's type, and MariaDB then uses only the state part of
// (state, next_attempt_at), so an idle poller walked every SUCCEEDED row on
// each sweep.
const TimePrecision = time.Microsecond

// withParam sets a DSN parameter, replacing any value the DSN gives it.
func withParam(dsn, key, value string) string {
	base, query, _ := strings.Cut(dsn, "?")
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); kv != "" && k != key {
			kept = append(kept, kv)
		}
	}
	return base + "?" + strings.Join(append(kept, key+"="+value), "&")
}

func withDefaultParams(dsn string, params map[string]string) string {
	base, query, _ := strings.Cut(dsn, "?")
	present := map[string]bool{}
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); k != "" {
			present[k] = true
		}
	}
	var add []string
	for _, k := range []string{"parseTime", "loc", "charset", "interpolateParams"} {
		if v, ok := params[k]; ok && !present[k] {
			add = append(add, k+"="+v)
		}
	}
	if len(add) == 0 {
		return dsn
	}
	if query == "" {
		return base + "?" + strings.Join(add, "&")
	}
	return base + "?" + query + "&" + strings.Join(add, "&")
}
