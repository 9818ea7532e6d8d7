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
	"net/http"
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
	"github.com/paycore/withdraw/internal/health"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/logging"
	"github.com/paycore/withdraw/internal/outbox/relay"
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

	if migrateOnly {
		// A one-off job: it fails at once when the database is down.
		db, err := app.OpenDatabase(ctx, cfg, log)
		if err != nil {
			return err
		}
		return db.Close()
	}

	// Everything that is only configuration is checked before the
	// dependencies: a wrong setting fails the start at once, whether or not
	// MySQL and Kafka answer.
	if cfg.PIIKeysFile == "" {
		return errors.New("--pii-keys-file / WITHDRAW_PII_KEYS_FILE is required: payee data is never stored in plaintext")
	}
	keys, err := pii.LoadKeyringFile(cfg.PIIKeysFile)
	if err != nil {
		return err
	}
	providers, err := loadProviders(cfg, log)
	if err != nil {
		return err
	}
	if providers == nil && cfg.DispatchEnabled {
		return errors.New("--config / WITHDRAW_CONFIG (provider accounts) is required to dispatch; run with --dispatch=false for an intake-only instance")
	}
	if cfg.DispatchEnabled {
		if _, err := dispatch.LoadFileSettings(cfg.ProvidersFile); err != nil {
			return err
		}
		if _, err := schedule.ByName(cfg.Schedule); err != nil {
			return err
		}
	}
	if cfg.AdminTokenFile != "" {
		if _, err := admin.LoadToken(cfg.AdminTokenFile); err != nil {
			return err
		}
	}
	failpointHook, err := failpoint(os.Getenv(envFailpoint))
	if err != nil {
		return err
	}
	if failpointHook != nil {
		log.Warn("TEST FAILPOINT armed: this process will kill itself", "failpoint", os.Getenv(envFailpoint))
	}

	// The HTTP server comes first, so that /healthz answers (the process
	// is alive) and /readyz names what is missing while MySQL or Kafka are
	// still unreachable. Each component is started once what it needs is
	// there: the dispatcher once the database is connected, the intake and
	// the relay once the topics exist too.
	reg := app.NewRegistry()
	deps := health.New(reg, log)
	var (
		db                         atomic.Pointer[store.DB]
		dbErr                      atomic.Pointer[error] // the last connection attempt's, until connected
		topicsErr                  atomic.Pointer[error] // the last topic creation's, until the topics exist
		relayRef                   atomic.Pointer[relay.Relay]
		intakeRef                  atomic.Pointer[intake.Intake]
		startingDB, startingTopics = health.ErrNotTried, health.ErrNotTried
	)
	dbErr.Store(&startingDB)
	topicsErr.Store(&startingTopics)
	deps.Add("mysql", func(ctx context.Context) error {
		if d := db.Load(); d != nil {
			return d.Ping(ctx)
		}
		return fmt.Errorf("not connected yet: %w", *dbErr.Load())
	})
	deps.Add("kafka", func(ctx context.Context) error {
		if err := kafkautil.Ping(ctx, cfg.KafkaBrokers); err != nil {
			return err
		}
		if errp := topicsErr.Load(); errp != nil {
			return fmt.Errorf("topics not created yet: %w", *errp)
		}
		return nil
	})
	srv := httpserver.New(reg)
	srv.AddCheck("mysql", deps.Check("mysql"))
	srv.AddCheck("kafka", deps.Check("kafka"))
	srv.AddCheck("intake", func(context.Context) error {
		if in := intakeRef.Load(); in != nil {
			return in.Ready()
		}
		return errors.New("not started: waiting for MySQL and the Kafka topics")
	})
	if cfg.RelayEnabled {
		srv.AddCheck("relay", func(context.Context) error {
			if r := relayRef.Load(); r != nil {
				return r.Ready()
			}
			return errors.New("not started: waiting for MySQL and the Kafka topics")
		})
	}
	routes := &httpserver.Deferred{Reason: "not connected to MySQL yet"}
	srv.Mux.Handle("/", routes)
	if err := srv.Start(cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("consumer started", "http", srv.Addr(), "brokers", cfg.KafkaBrokers, "topic", cfg.CommandsTopic, "group", cfg.ConsumerGroup)

	var bg sync.WaitGroup
	defer func() { stop(); bg.Wait() }()
	bg.Go(func() { deps.Run(ctx, dependencyProbeInterval) })
	kafkautil.StartLagCollector(ctx, reg, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.CommandsTopic, cfg.ConsumerLagInterval, log)

	// The topics are created in the background, retried until the brokers
	// answer.
	topics := []kafkautil.TopicSpec{
		{Name: cfg.CommandsTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication},
		{Name: cfg.EventsTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication},
		{Name: cfg.DLQTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication, MaxMessageBytes: cfg.DLQMaxMessageBytes},
	}
	topicsReady := make(chan struct{})
	bg.Go(func() {
		err := kafkautil.EnsureTopicsRetrying(ctx, cfg.KafkaBrokers, topics, log.With("component", "topics"), func(err error) {
			if err != nil {
				topicsErr.Store(&err)
				deps.Report("kafka", err)
			}
		})
		if err == nil {
			topicsErr.Store(nil)
			close(topicsReady)
		}
	})

	conn, err := app.ConnectDatabase(ctx, cfg, log, func(err error) {
		if err != nil {
			dbErr.Store(&err)
		}
		deps.Report("mysql", err)
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("consumer stopping before the database was connected")
			return nil
		}
		return err
	}
	defer conn.Close()
	db.Store(conn)

	late := http.NewServeMux()
	if err := admin.Mount(late, conn, cfg.AdminTokenFile, cfg.PIIKeysFile, log); err != nil {
		return err
	}
	if err := console.Mount(late, conn, cfg.AdminTokenFile, cfg.PIIKeysFile, console.FromConfig(cfg, reg, log)); err != nil {
		return err
	}
	routes.Set(late)

	// Wake the relay as soon as events are committed, and the dispatcher as
	// soon as new withdrawals are, instead of letting them wait for a poll.
	notifyRelay := func() {
		if r := relayRef.Load(); r != nil {
			r.Notify()
		}
	}
	var disp *dispatch.Dispatcher
	if cfg.DispatchEnabled {
		if disp, err = newDispatcher(cfg, conn, providers, keys, log, reg, notifyRelay); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	if disp != nil {
		// The dispatcher needs only MySQL and the providers: it runs
		// whatever the state of Kafka.
		wg.Go(func() {
			if err := disp.Run(ctx); err != nil {
				log.Error("dispatcher stopped", "err", err)
			}
		})
	}
	// On every return: stop the rest (the intake may have ended on its
	// own), then wait for the dispatcher's last answers.
	defer func() { stop(); wg.Wait() }()

	select {
	case <-topicsReady:
	case <-ctx.Done():
		log.Info("consumer stopping before the Kafka topics were ready")
		return nil
	}

	if cfg.RelayEnabled {
		relay, wait, err := relay.Start(ctx, conn, cfg.KafkaBrokers, cfg.EventsTopic, cfg.InstanceID, log, reg)
		if err != nil {
			return err
		}
		// Stop the relay (it runs until ctx ends), then wait for its last
		// batch.
		defer func() { stop(); wait() }()
		relayRef.Store(relay)
		relay.Notify() // events written while Kafka was unreachable
	}

	reader := kafkautil.NewGroupReader(cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.CommandsTopic)
	defer reader.Close()
	dlq := kafkautil.NewDLQWriter(cfg.KafkaBrokers, cfg.DLQMaxMessageBytes)
	defer dlq.Close()
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
	in, err := intake.New(conn, reader, dlq, intake.Options{
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
	intakeRef.Store(in)
	log.Info("intake started", "topic", cfg.CommandsTopic, "group", cfg.ConsumerGroup)

	runErr := in.Run(ctx)
	log.Info("consumer stopping", "err", runErr)
	return runErr
}

// dependencyProbeInterval is how often MySQL and Kafka are probed for
// withdraw_dependency_up and the log, besides every /readyz.
const dependencyProbeInterval = 5 * time.Second

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
	})
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
