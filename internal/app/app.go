// Package app is the start-up both service binaries share: how a main
// reports errors, how the database is opened and migrated, and the metrics
// registry every process serves.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/store"
)

// Main runs a binary's run function with the process arguments: it exits 0
// on success or after --help, and 1 with the error on stderr otherwise.
func Main(program string, run func(args []string) error) {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		os.Exit(1)
	}
}

// OpenDatabase connects to the configured MySQL and brings its schema up to
// date (safe when several instances start at once, see store.DB.Migrate).
func OpenDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.DB, error) {
	db, err := store.OpenMySQL(ctx, cfg.MySQLDSN, store.PoolOptions{MaxOpen: cfg.DBMaxOpen})
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	log.Info("database migrated", "applied", applied)
	return db, nil
}

// NewRegistry returns the registry a process serves on /metrics, with the
// Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
