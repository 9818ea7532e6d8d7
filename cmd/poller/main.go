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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/app"
	"github.com/paycore/withdraw/internal/callback"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/console"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/logging"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/schedule"
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

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	db, err := app.OpenDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()

	reg := app.NewRegistry()

	// The relay publishes the events the poller and the callbacks write
	// (and any other instance's: lanes are shared by every relay).
	var retention func(ctx context.Context) (int64, error)
	var relay *outbox.Relay
	if cfg.RelayEnabled {
		var wait func()
		relay, wait = outbox.Start(ctx, db, cfg.KafkaBrokers, cfg.EventsTopic, cfg.InstanceID, log, reg)
		// On every return: stop the relay (it runs until ctx ends), then
		// wait for its last batch.
		defer func() { stop(); wait() }()
		retention = func(ctx context.Context) (int64, error) { return relay.Purge(ctx, cfg.OutboxRetention) }
	}

	poller, err := poll.New(db, registry, poll.Options{
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

	srv := httpserver.New(reg)
	srv.AddCheck("mysql", db.Ping)
	if relay != nil {
		srv.AddCheck("relay", func(context.Context) error { return relay.Ready() })
	}
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafkautil.Ping(ctx, cfg.KafkaBrokers) })
	callback.NewWeChat(db, wechat, poller, log).Register(srv.Mux)
	if err := admin.Mount(srv.Mux, db.DB, cfg.AdminTokenFile, cfg.PIIKeysFile, log); err != nil {
		return err
	}
	if err := console.Mount(srv.Mux, db.DB, cfg.AdminTokenFile, cfg.PIIKeysFile, console.FromConfig(cfg, reg, log)); err != nil {
		return err
	}
	if err := srv.Start(cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	log.Info("poller started", "http", srv.Addr(), "accounts", len(pcfg.Accounts), "schedule", cfg.Schedule,
		"interval", cfg.PollInterval, "daily", cfg.PollDailySpec)

	runErr := poller.Run(ctx)
	log.Info("poller stopping", "err", runErr)
	// Callbacks in flight finish (WeChat would retry them anyway).
	shutdown, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return runErr
}
