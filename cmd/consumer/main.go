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
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/app"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/console"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/logging"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
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

	db, err := app.OpenDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if migrateOnly {
		return nil
	}

	if cfg.PIIKeysFile == "" {
		return errors.New("--pii-keys-file / WITHDRAW_PII_KEYS_FILE is required: payee data is never stored in plaintext")
	}
	keys, err := pii.LoadKeyringFile(cfg.PIIKeysFile)
	if err != nil {
		return err
	}

	topics := []kafkautil.TopicSpec{
		{Name: cfg.CommandsTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication},
		{Name: cfg.EventsTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication},
		{Name: cfg.DLQTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication, MaxMessageBytes: cfg.DLQMaxMessageBytes},
	}
	if err := kafkautil.EnsureTopics(ctx, cfg.KafkaBrokers, topics); err != nil {
		return err
	}

	reg := app.NewRegistry()

	providers, err := loadProviders(cfg, log)
	if err != nil {
		return err
	}
	if providers == nil && cfg.DispatchEnabled {
		return errors.New("--config / WITHDRAW_CONFIG (provider accounts) is required to dispatch; run with --dispatch=false for an intake-only instance")
	}
	var relay *outbox.Relay
	if cfg.RelayEnabled {
		var wait func()
		relay, wait = outbox.Start(ctx, db, cfg.KafkaBrokers, cfg.EventsTopic, cfg.InstanceID, log, reg)
		// On every return: stop the relay (it runs until ctx ends), then
		// wait for its last batch.
		defer func() { stop(); wait() }()
	}
	// Wake the relay as soon as events are committed, and the dispatcher as
	// soon as new withdrawals are, instead of letting them wait for a poll.
	notifyRelay := func() {
		if relay != nil {
			relay.Notify()
		}
	}
	var disp *dispatch.Dispatcher
	if cfg.DispatchEnabled {
		if disp, err = newDispatcher(cfg, db, providers, keys, log, reg, notifyRelay); err != nil {
			return err
		}
	}

	reader := kafkautil.NewGroupReader(cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.CommandsTopic)
	defer reader.Close()
	dlq := kafkautil.NewDLQWriter(cfg.KafkaBrokers, cfg.DLQMaxMessageBytes)
	defer dlq.Close()
	failpointHook, err := failpoint(os.Getenv(envFailpoint))
	if err != nil {
		return err
	}
	if failpointHook != nil {
		log.Warn("TEST FAILPOINT armed: this process will kill itself", "failpoint", os.Getenv(envFailpoint))
	}
	afterStore := func(merchantKeys []string) {
		if failpointHook != nil {
			failpointHook()
		}
		if disp != nil {
			disp.NotifyDue(merchantKeys)
		}
		notifyRelay()
	}
	var accountConfigured func(withdrawal.Channel, string) bool
	if providers != nil {
		accountConfigured = providers.Has
	}
	in, err := intake.New(db, reader, dlq, intake.Options{
		BatchSize:     cfg.IntakeBatchSize,
		BatchWait:     cfg.IntakeBatchWait,
		DLQTopic:      cfg.DLQTopic,
		Keys:          keys,
		ShutdownGrace: cfg.ShutdownTimeout,
		Logger:        log,
		Metrics:       intake.NewMetrics(reg),
		AfterStore:    afterStore,

		AccountConfigured:  accountConfigured,
		DLQMaxMessageBytes: cfg.DLQMaxMessageBytes,
	})
	if err != nil {
		return err
	}

	kafkautil.StartLagCollector(ctx, reg, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.CommandsTopic, cfg.ConsumerLagInterval, log)
	srv := httpserver.New(reg)
	srv.AddCheck("mysql", db.Ping)
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafkautil.Ping(ctx, cfg.KafkaBrokers) })
	srv.AddCheck("intake", func(context.Context) error { return in.Ready() })
	if err := admin.Mount(srv.Mux, db.DB, cfg.AdminTokenFile, cfg.PIIKeysFile, log); err != nil {
		return err
	}
	if err := console.Mount(srv.Mux, db.DB, cfg.AdminTokenFile, cfg.PIIKeysFile, console.FromConfig(cfg, reg, log)); err != nil {
		return err
	}
	if relay != nil {
		srv.AddCheck("relay", func(context.Context) error { return relay.Ready() })
	}
	if err := srv.Start(cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	log.Info("consumer started", "http", srv.Addr(), "brokers", cfg.KafkaBrokers, "topic", cfg.CommandsTopic, "group", cfg.ConsumerGroup)

	var wg sync.WaitGroup
	if disp != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := disp.Run(ctx); err != nil {
				log.Error("dispatcher stopped", "err", err)
			}
		}()
	}
	runErr := in.Run(ctx)
	log.Info("consumer stopping", "err", runErr)
	stop() // the intake may have ended on its own: stop the rest too
	wg.Wait()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return runErr
}

// loadProviders reads the provider accounts of WITHDRAW_CONFIG; nil when
// no file is configured.
func loadProviders(cfg *config.Config, log *slog.Logger) (*provider.Registry, error) {
	if cfg.ProvidersFile == "" {
		return nil, nil
	}
	pcfg, err := provider.LoadConfig(cfg.ProvidersFile)
	if err != nil {
		return nil, err
	}
	return clients.New(pcfg, clients.Options{Logger: log})
}

// newDispatcher builds the dispatcher from the settings and the per-account
// overrides of the config file.
func newDispatcher(cfg *config.Config, db *store.DB, providers *provider.Registry, keys *pii.Keyring,
	log *slog.Logger, reg prometheus.Registerer, onChange func()) (*dispatch.Dispatcher, error) {
	fileSettings, err := dispatch.LoadFileSettings(cfg.ProvidersFile)
	if err != nil {
		return nil, err
	}
	rules, err := schedule.ByName(cfg.Schedule)
	if err != nil {
		return nil, err
	}
	return dispatch.New(db, providers, keys, dispatch.Options{
		Instance:             cfg.InstanceID,
		MaxInFlight:          cfg.DispatchMaxInFlight,
		PerMerchant:          cfg.DispatchPerMerchant,
		PerMerchantOverrides: fileSettings.PerMerchant,
		LeaseTTL:             cfg.DispatchLeaseTTL,
		PollInterval:         cfg.DispatchPollInterval,
		Rates:                fileSettings.Rates,
		DefaultRate:          dispatch.Rate{PerSecond: cfg.DispatchRate, Burst: cfg.DispatchBurst},
		Rules:                rules,
		OnChange:             onChange,
		Logger:               log,
		Metrics:              dispatch.NewMetrics(reg),
	}), nil
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
