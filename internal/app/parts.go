package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/callback"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/console"
	"github.com/paycore/withdraw/internal/deadletter"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/health"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/recon"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// parts is what the components are built from besides the database: the
// settings and what the files they name hold. The loaders (consumer.go,
// poller.go, pipeline.go) fill it, each checking what its process needs;
// the methods below are the only place the components are constructed.
type parts struct {
	cfg   *config.Config
	log   *slog.Logger
	reg   *prometheus.Registry
	rules schedule.Rules
	// keys is the keyring of PIIKeysFile; nil without one.
	keys *pii.Keyring
	// accounts are the provider accounts of ProvidersFile, providers their
	// clients, wechat the WeChat ones by account (callbacks, bills); all
	// nil without a file, wechat nil in a process without callbacks.
	accounts  *provider.Config
	providers *provider.Registry
	wechat    map[string]*wechatpay.Client
	// overrides are the dispatcher's per-account settings of ProvidersFile.
	overrides dispatch.FileSettings
}

// loadKeys reads PIIKeysFile, which a process that stores or dispatches
// withdrawals cannot run without.
func (p *parts) loadKeys() error {
	if p.cfg.PIIKeysFile == "" {
		return errors.New("--pii-keys-file / WITHDRAW_PII_KEYS_FILE is required: payee data is never stored in plaintext")
	}
	keys, err := pii.LoadKeyringFile(p.cfg.PIIKeysFile)
	if err != nil {
		return err
	}
	p.keys = keys
	return nil
}

// loadProviders reads the provider accounts of ProvidersFile and builds
// their clients, and the WeChat ones apart when withWeChat; nothing when
// no file is configured.
func (p *parts) loadProviders(withWeChat bool) error {
	if p.cfg.ProvidersFile == "" {
		return nil
	}
	accounts, err := provider.LoadConfig(p.cfg.ProvidersFile)
	if err != nil {
		return err
	}
	opts := clients.Options{Logger: p.log}
	if p.providers, err = clients.New(accounts, opts); err != nil {
		return err
	}
	p.accounts = accounts
	if !withWeChat {
		return nil
	}
	if p.wechat, err = clients.WeChatClients(accounts, opts); err != nil {
		return err
	}
	for name, c := range p.wechat {
		if c.APIv3Key() == nil {
			p.log.Warn("WeChat account has no apiv3_key_file: its callbacks will be refused", "account", name)
		}
	}
	return nil
}

// loadRules reads the providers' timing rules Schedule names.
func (p *parts) loadRules() error {
	rules, err := schedule.ByName(p.cfg.Schedule)
	if err != nil {
		return err
	}
	p.rules = rules
	return nil
}

// loadDispatchSettings reads the dispatcher's per-account overrides of
// ProvidersFile.
func (p *parts) loadDispatchSettings() error {
	overrides, err := dispatch.LoadFileSettings(p.cfg.ProvidersFile)
	if err != nil {
		return err
	}
	p.overrides = overrides
	return nil
}

// checkAdminToken fails at start, rather than once the database is
// connected, when the admin API's token file is configured but unusable.
func (p *parts) checkAdminToken() error {
	if p.cfg.AdminTokenFile == "" {
		return nil
	}
	_, err := admin.LoadToken(p.cfg.AdminTokenFile)
	return err
}

// Topics are the topics a process creates at start when they are missing:
// commands, events and dead letters, the dead-letter one with
// DLQMaxMessageBytes as its max.message.bytes.
func Topics(cfg *config.Config) []kafkautil.TopicSpec {
	return []kafkautil.TopicSpec{
		{Name: cfg.CommandsTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication},
		{Name: cfg.EventsTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication},
		{Name: cfg.DLQTopic, Partitions: cfg.TopicPartitions, ReplicationFactor: cfg.TopicReplication, MaxMessageBytes: cfg.DLQMaxMessageBytes},
	}
}

// newDispatcher builds the dispatcher from the settings and the
// per-account overrides of the config file; onChange is called after
// each transaction that wrote outbox events.
func (p *parts) newDispatcher(db *store.DB, onChange func()) (*dispatch.Dispatcher, error) {
	c := p.cfg
	return dispatch.New(db, p.providers, p.keys, dispatch.Options{
		Instance:             c.InstanceID,
		MaxInFlight:          c.DispatchMaxInFlight,
		PerMerchant:          c.DispatchPerMerchant,
		PerMerchantOverrides: p.overrides.PerMerchant,
		LeaseTTL:             c.DispatchLeaseTTL,
		PollInterval:         c.DispatchPollInterval,
		Rates:                p.overrides.Rates,
		DefaultRate:          dispatch.Rate{PerSecond: c.DispatchRate, Burst: c.DispatchBurst},
		Rules:                p.rules,
		OnChange:             onChange,
		Logger:               p.log,
		Metrics:              dispatch.NewMetrics(p.reg),
	})
}

// startRelay starts the outbox relay publishing to EventsTopic until ctx
// ends; the function returned waits for its last batch.
func (p *parts) startRelay(ctx context.Context, db *store.DB) (*relay.Relay, func(), error) {
	return relay.Start(ctx, db, p.cfg.KafkaBrokers, p.cfg.EventsTopic, p.cfg.InstanceID, p.log, p.reg)
}

// newIntake builds the intake reading CommandsTopic in ConsumerGroup, with
// its own reader and dead-letter writer (closed by the function returned,
// once the intake has stopped). afterStore is called after each stored
// batch with its merchant keys.
func (p *parts) newIntake(db *store.DB, afterStore func(merchantKeys []string)) (*intake.Intake, func(), error) {
	c := p.cfg
	reader := kafkautil.NewGroupReader(c.KafkaBrokers, c.ConsumerGroup, c.CommandsTopic)
	dlq := kafkautil.NewDLQWriter(c.KafkaBrokers, c.DLQMaxMessageBytes)
	closeClients := func() {
		_ = reader.Close()
		_ = dlq.Close()
	}
	var accountConfigured func(withdrawal.Channel, string) bool
	if p.providers != nil {
		accountConfigured = p.providers.Has
	}
	in, err := intake.New(db, reader, dlq, intake.Options{
		BatchSize:          c.IntakeBatchSize,
		BatchWait:          c.IntakeBatchWait,
		DLQTopic:           c.DLQTopic,
		DLQMaxMessageBytes: c.DLQMaxMessageBytes,
		Keys:               p.keys,
		AccountConfigured:  accountConfigured,
		ShutdownGrace:      c.ShutdownTimeout,
		Logger:             p.log,
		Metrics:            intake.NewMetrics(p.reg),
		AfterStore:         afterStore,
	})
	if err != nil {
		closeClients()
		return nil, nil, err
	}
	return in, closeClients, nil
}

// newPoller builds the poller (sweep every PollInterval, daily job with
// retention when retention is set) and adds to it the reconciliation of
// the WeChat accounts with a recon block.
func (p *parts) newPoller(db *store.DB, retention func(ctx context.Context) (int64, error)) (*poll.Poller, error) {
	c := p.cfg
	poller, err := poll.New(db, p.providers, poll.Options{
		Instance:          c.InstanceID,
		Rules:             p.rules,
		SweepSpec:         poll.EverySpec(c.PollInterval),
		DailySpec:         c.PollDailySpec,
		BatchSize:         c.PollBatchSize,
		Concurrency:       c.PollConcurrency,
		QueryRate:         c.PollQueryRate,
		FollowUpShare:     c.PollFollowUpShare,
		AttemptsRetention: c.AttemptsRetention,
		Retention:         retention,
		Logger:            p.log,
		Metrics:           poll.NewMetrics(p.reg),
	})
	if err != nil {
		return nil, err
	}
	if err := recon.Register(poller, db, p.accounts, p.wechat, c.ReconSpec, p.log, p.reg); err != nil {
		return nil, err
	}
	return poller, nil
}

// retention is the poller's daily purge of published outbox rows, by the
// relay once it runs.
func (p *parts) retention(r *lateRelay) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		started := r.Load()
		if started == nil {
			return 0, errors.New("outbox relay not started")
		}
		return started.Purge(ctx, p.cfg.OutboxRetention)
	}
}

// mount serves on mux what needs the database: the WeChat Pay callbacks
// (when the process runs a poller, which hears of them), the admin API and
// the operator console (when AdminTokenFile is set).
func (p *parts) mount(mux *http.ServeMux, db *store.DB, poller *poll.Poller) error {
	if poller != nil {
		callback.NewWeChat(db, p.wechat, poller, p.log).Register(mux)
	}
	c := p.cfg
	if err := admin.Mount(mux, db, c.AdminTokenFile, c.PIIKeysFile, p.log); err != nil {
		return err
	}
	return console.Mount(mux, db, c.AdminTokenFile, c.PIIKeysFile, console.Options{
		Rules:       p.rules,
		DeadLetters: deadletter.Topics{Brokers: c.KafkaBrokers, DLQ: c.DLQTopic, Commands: c.CommandsTopic},
		Gatherer:    p.reg,
		Logger:      p.log,
	})
}

// Listen starts the HTTP server every process has, on addr: /metrics of
// reg, /healthz and /readyz; the process adds its checks and routes.
func Listen(addr string, reg *prometheus.Registry) (*httpserver.Server, error) {
	srv := httpserver.New(reg)
	if err := srv.Start(addr); err != nil {
		return nil, err
	}
	return srv, nil
}

// lateRelay is the outbox relay of a process that starts it once its
// dependencies are there: what is built before notifies it through this.
type lateRelay struct {
	atomic.Pointer[relay.Relay]
	// waitingFor names what the relay waits for, in /readyz.
	waitingFor string
}

// Notify wakes the relay when it runs.
func (r *lateRelay) Notify() {
	if started := r.Load(); started != nil {
		started.Notify()
	}
}

// Ready is the relay's readiness check.
func (r *lateRelay) Ready(context.Context) error {
	if started := r.Load(); started != nil {
		return started.Ready()
	}
	return errors.New("not started: waiting for " + r.waitingFor)
}

// lateDB is the database of a process that connects in the background,
// retrying, while it already serves /healthz and /readyz.
type lateDB struct {
	db  atomic.Pointer[store.DB]
	err atomic.Pointer[error] // the last connection attempt's, until connected
}

func newLateDB() *lateDB {
	l := &lateDB{}
	notTried := health.ErrNotTried
	l.err.Store(&notTried)
	return l
}

// check is the "mysql" dependency's check.
func (l *lateDB) check(ctx context.Context) error {
	if d := l.db.Load(); d != nil {
		return d.Ping(ctx)
	}
	return fmt.Errorf("not connected yet: %w", *l.err.Load())
}

// connect connects and migrates, retrying until it succeeds or ctx ends
// (ConnectDatabase), reporting every attempt to deps.
func (l *lateDB) connect(ctx context.Context, cfg *config.Config, log *slog.Logger, deps *health.Dependencies) (*store.DB, error) {
	conn, err := ConnectDatabase(ctx, cfg, log, func(err error) {
		if err != nil {
			l.err.Store(&err)
		}
		deps.Report("mysql", err)
	})
	if err != nil {
		return nil, err
	}
	l.db.Store(conn)
	return conn, nil
}

// dependencyProbeInterval is how often MySQL and Kafka are probed for
// withdraw_dependency_up and the log, besides every /readyz.
const dependencyProbeInterval = 5 * time.Second
