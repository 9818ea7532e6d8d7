// Command poller follows submitted withdrawals at their providers until
// their outcome is known, receives WeChat Pay's withdraw callbacks, and runs
// the daily stuck report and retention.
//
// Usage:
//
//	poller [flags]
//
// Every flag is also a WITHDRAW_* environment variable; see --help. It
// serves on WITHDRAW_HTTP_ADDR: GET /metrics, GET /healthz, GET /readyz and
// POST /notify/wechatpay/{account} (the notify_url of each WeChat account
// in WITHDRAW_CONFIG must point there). Any number of instances may run.
// See docs/poller.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/app"
	"github.com/paycore/withdraw/internal/callback"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/console"
	"github.com/paycore/withdraw/internal/health"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/logging"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/recon"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
)

const summary = "query providers for withdrawal outcomes, receive WeChat Pay withdraw callbacks, report stuck withdrawals"

func main() { app.Main("poller", run) }

func run(args []string) error {
	cfg, err := config.Parse("poller", summary, args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log, err := logging.Setup(os.Stderr, cfg.LogLevel, "poller")
	if err != nil {
		return err
	}
	rules, err := schedule.ByName(cfg.Schedule)
	if err != nil {
		return err
	}
	if cfg.Schedule == "accelerated" {
		log.Warn("ACCELERATED provider timing rules: for the sandbox only, never against real providers")
	}
	if cfg.ProvidersFile == "" {
		return errors.New("--config / WITHDRAW_CONFIG is required: the provider accounts to query")
	}
	pcfg, err := provider.LoadConfig(cfg.ProvidersFile)
	if err != nil {
		return err
	}
	copts := clients.Options{Logger: log}
	registry, err := clients.New(pcfg, copts)
	if err != nil {
		return err
	}
	wechat, err := clients.WeChatClients(pcfg, copts)
	if err != nil {
		return err
	}
	for name, c := range wechat {
		if c.APIv3Key() == nil {
			log.Warn("WeChat account has no apiv3_key_file: its callbacks will be refused", "account", name)
		}
	}

	if cfg.AdminTokenFile != "" {
		if _, err := admin.LoadToken(cfg.AdminTokenFile); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The HTTP server comes first, so that /healthz answers and /readyz
	// names what is missing while MySQL is still unreachable; the sweep,
	// the callbacks and the admin API start once the database is connected.
	reg := app.NewRegistry()
	deps := health.New(reg, log)
	var (
		db         atomic.Pointer[store.DB]
		dbErr      atomic.Pointer[error] // the last connection attempt's, until connected
		relayRef   atomic.Pointer[relay.Relay]
		startingDB = health.ErrNotTried
	)
	dbErr.Store(&startingDB)
	deps.Add("mysql", func(ctx context.Context) error {
		if d := db.Load(); d != nil {
			return d.Ping(ctx)
		}
		return fmt.Errorf("not connected yet: %w", *dbErr.Load())
	})
	deps.Add("kafka", func(ctx context.Context) error { return kafkautil.Ping(ctx, cfg.KafkaBrokers) })
	srv := httpserver.New(reg)
	srv.AddCheck("mysql", deps.Check("mysql"))
	srv.AddCheck("kafka", deps.Check("kafka"))
	if cfg.RelayEnabled {
		srv.AddCheck("relay", func(context.Context) error {
			if r := relayRef.Load(); r != nil {
				return r.Ready()
			}
			return errors.New("not started: waiting for MySQL")
		})
	}
	routes := &httpserver.Deferred{Reason: "not connected to MySQL yet"}
	srv.Mux.Handle("/", routes)
	if err := srv.Start(cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer func() {
		// Callbacks in flight finish (WeChat would retry them anyway).
		shutdown, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("poller started", "http", srv.Addr(), "accounts", len(pcfg.Accounts), "schedule", cfg.Schedule,
		"interval", cfg.PollInterval, "daily", cfg.PollDailySpec)
	var bg sync.WaitGroup
	defer func() { stop(); bg.Wait() }()
	bg.Go(func() { deps.Run(ctx, dependencyProbeInterval) })

	conn, err := app.ConnectDatabase(ctx, cfg, log, func(err error) {
		if err != nil {
			dbErr.Store(&err)
		}
		deps.Report("mysql", err)
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("poller stopping before the database was connected")
			return nil
		}
		return err
	}
	defer conn.Close()
	db.Store(conn)

	// The relay publishes the events the poller and the callbacks write
	// (and any other instance's: lanes are shared by every relay). While
	// Kafka is unreachable it keeps them and retries.
	var retention func(ctx context.Context) (int64, error)
	if cfg.RelayEnabled {
		relay, wait, err := relay.Start(ctx, conn, cfg.KafkaBrokers, cfg.EventsTopic, cfg.InstanceID, log, reg)
		if err != nil {
			return err
		}
		// On every return: stop the relay (it runs until ctx ends), then
		// wait for its last batch.
		defer func() { stop(); wait() }()
		relayRef.Store(relay)
		retention = func(ctx context.Context) (int64, error) { return relay.Purge(ctx, cfg.OutboxRetention) }
	}

	poller, err := poll.New(conn, registry, poll.Options{
		Instance:          cfg.InstanceID,
		Rules:             rules,
		SweepSpec:         fmt.Sprintf("@every %s", cfg.PollInterval.Truncate(time.Second)),
		DailySpec:         cfg.PollDailySpec,
		BatchSize:         cfg.PollBatchSize,
		Concurrency:       cfg.PollConcurrency,
		QueryRate:         cfg.PollQueryRate,
		FollowUpShare:     cfg.PollFollowUpShare,
		AttemptsRetention: cfg.AttemptsRetention,
		Retention:         retention,
		Logger:            log,
		Metrics:           poll.NewMetrics(reg),
	})
	if err != nil {
		return err
	}

	if err := recon.Register(poller, conn, pcfg, wechat, cfg.ReconSpec, log, reg); err != nil {
		return err
	}

	late := http.NewServeMux()
	callback.NewWeChat(conn, wechat, poller, log).Register(late)
	if err := admin.Mount(late, conn, cfg.AdminTokenFile, cfg.PIIKeysFile, log); err != nil {
		return err
	}
	if err := console.Mount(late, conn, cfg.AdminTokenFile, cfg.PIIKeysFile, console.FromConfig(cfg, reg, log)); err != nil {
		return err
	}
	routes.Set(late)

	runErr := poller.Run(ctx)
	log.Info("poller stopping", "err", runErr)
	return runErr
}

// dependencyProbeInterval is how often MySQL and Kafka are probed for
// withdraw_dependency_up and the log, besides every /readyz.
const dependencyProbeInterval = 5 * time.Second
