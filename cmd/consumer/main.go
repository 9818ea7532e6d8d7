// Command consumer is the intake of the withdrawal orchestrator: it consumes
// withdrawal commands from Kafka and stores each one, exactly once, with its
// outbox event in MySQL.
//
// Usage:
//
//	consumer [flags]           run
//	consumer migrate [flags]   apply database migrations and exit
//
// Every flag is also a WITHDRAW_* environment variable; see --help.
//
// Test failpoint (never set it in production): WITHDRAW_FAILPOINT=
// intake-after-store[:N] makes the process SIGKILL itself right after the
// N-th batch (default 1) has been committed to the database and before its
// Kafka offsets are committed: the crash window in which Kafka redelivers
// stored commands. The system tests use it to prove that redelivery is a
// no-op.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/paycore/withdraw/internal/app"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/logging"
)

const summary = "consume withdrawal commands from Kafka into MySQL (with a transactional outbox), execute them at the providers, relay events to Kafka.\n`consumer migrate [flags]` applies the database migrations and exits"

func main() { app.Main("consumer", run) }

func run(args []string) error {
	migrateOnly := len(args) > 0 && args[0] == "migrate"
	if migrateOnly {
		args = args[1:]
	}
	cfg, err := config.Parse("consumer", summary, args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log, err := logging.Setup(os.Stderr, cfg.LogLevel, "consumer")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Once shutting down, a second signal kills at once.
	context.AfterFunc(ctx, stop)

	if migrateOnly {
		// A one-off job: it fails at once when the database is down.
		db, err := app.OpenDatabase(ctx, cfg, log)
		if err != nil {
			return err
		}
		return db.Close()
	}

	failpointHook, err := failpoint(os.Getenv(envFailpoint))
	if err != nil {
		return err
	}
	consumer, err := app.NewConsumer(cfg, log, app.ConsumerOptions{AfterStore: failpointHook})
	if err != nil {
		return err
	}
	defer consumer.Close()
	if failpointHook != nil {
		log.Warn("TEST FAILPOINT armed: this process will kill itself", "failpoint", os.Getenv(envFailpoint))
	}
	return consumer.Run(ctx)
}

// envFailpoint names the test failpoint variable; see the package comment.
const envFailpoint = "WITHDRAW_FAILPOINT"

// failpoint parses WITHDRAW_FAILPOINT into an intake.Options.AfterStore
// hook, or nil when it is empty. TEST ONLY: the hook SIGKILLs the process
// (no deferred cleanup, no offset commit, no group leave), exactly like a
// crash or an OOM kill would.
func failpoint(spec string) (func(), error) {
	if spec == "" {
		return nil, nil
	}
	name, nth, hasN := strings.Cut(spec, ":")
	if name != "intake-after-store" {
		return nil, fmt.Errorf("%s=%q: the only failpoint is intake-after-store[:N]", envFailpoint, spec)
	}
	n := int64(1)
	if hasN {
		v, err := strconv.ParseInt(nth, 10, 64)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%s=%q: N must be a positive integer", envFailpoint, spec)
		}
		n = v
	}
	var batches atomic.Int64
	return func() {
		if batches.Add(1) == n {
			fmt.Fprintf(os.Stderr, "consumer: failpoint intake-after-store reached at batch %d: SIGKILL\n", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}, nil
}
