package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/mysql/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// migrateLockName serialises migrations across instances starting at once.
const migrateLockName = "withdraw.migrate"

// Migrate brings the schema up to the newest version embedded in the binary.
// It is idempotent, and safe when several instances start together: on MySQL
// they take turns under a named lock (GET_LOCK), so exactly one applies each
// version and the others find nothing left to do.
func (db *DB) Migrate(ctx context.Context) (applied []int64, err error) {
	dir := "migrations/mysql"
	dialect := goose.DialectMySQL
	if db.Dialect == SQLite {
		dir, dialect = "migrations/sqlite", goose.DialectSQLite3
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	sqlDB, err := db.g.DB()
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	provider, err := goose.NewProvider(dialect, sqlDB, fsys)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if db.Dialect == MySQL {
		// GET_LOCK belongs to a session: hold one connection for the lock
		// while goose runs on the others.
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("migrate: lock connection: %w", err)
		}
		defer conn.Close()
		var got int
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLockName, int((2 * time.Minute).Seconds())).Scan(&got); err != nil || got != 1 {
			return nil, fmt.Errorf("migrate: lock %s not obtained (result %d): %v", migrateLockName, got, err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", migrateLockName) //nolint:errcheck // the session end releases it anyway
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// SchemaVersion is the newest migration applied to the database.
func (db *DB) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.g.WithContext(ctx).Raw("SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied").Scan(&v).Error
	return v, err
}
