// Package app is the one place where the orchestrator's components are
// built and wired together from a config.Config: the intake, the
// dispatcher, the outbox relay, the poller (with the reconciliation), the
// WeChat Pay callbacks, the admin API, the console, and the HTTP server
// that serves them with /metrics, /healthz and /readyz. cmd/consumer runs a
// Consumer, cmd/poller a Poller, the devstack a Pipeline (all of them in
// one process). It also holds the start-up the binaries share: how a main
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
	"time"

	"github.com/cenkalti/backoff/v5"
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

// ConnectDatabase is OpenDatabase retried until it succeeds or ctx ends,
// for services that must start (and serve /healthz) while MySQL is down.
// Each failure is passed to report and logged as a warning; the pause
// between attempts grows from 500ms to 10s. It returns ctx's error when ctx
// ends first.
func ConnectDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger, report func(error)) (*store.DB, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	for attempt := 1; ; attempt++ {
		db, err := openInBackground(ctx, cfg, log)
		if err == nil {
			report(nil)
			if attempt > 1 {
				log.Info("database connected", "attempts", attempt)
			}
			return db, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		report(err)
		wait := b.NextBackOff()
		log.Warn("database not reachable; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// openInBackground runs OpenDatabase, but returns as soon as ctx ends: the
// driver's first connection does not follow ctx, and a host that drops
// packets would hold a shutdown for the operating system's connect timeout.
// A connection that succeeds after ctx ended is closed.
func openInBackground(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.DB, error) {
	type result struct {
		db  *store.DB
		err error
	}
	done := make(chan result, 1)
	go func() {
		db, err := OpenDatabase(ctx, cfg, log)
		done <- result{db, err}
	}()
	select {
	case r := <-done:
		return r.db, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.db != nil {
				r.db.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
