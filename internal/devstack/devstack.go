// Package devstack runs the whole withdrawal orchestrator in one process on
// embedded defaults, for a newcomer's first command and for local
// development (cmd/devstack):
//
//   - an embedded Kafka-protocol broker (franz-go's kfake) with the three
//     topics, or a real cluster;
//   - SQLite in a data directory (or MySQL);
//   - the provider sandbox (WeChat Pay v3 and Allinpay over HTTP) with an
//     account "default" for each of the four channels, on accelerated
//     timings so that a withdrawal is final within seconds;
//   - intake, dispatcher, outbox relay, poller and WeChat callbacks, with
//     /metrics, /healthz and /readyz on one HTTP address.
//
// Nothing here is for production: the keys are generated into the data
// directory, the provider timing rules are accelerated, and SQLite takes one
// writer at a time.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/paycore/withdraw/internal/app"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/logging"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
)

// Topics and consumer group of the devstack: the production defaults.
const (
	CommandsTopic = config.CommandsTopicDefault
	EventsTopic   = config.EventsTopicDefault
	DLQTopic      = intake.DLQTopicDefault
	ConsumerGroup = config.ConsumerGroupDefault
)

// providerTimeout bounds one call to the sandbox.
const providerTimeout = 5 * time.Second

// Options configure a devstack. Zero values take the defaults of
// cmd/devstack.
type Options struct {
	// DataDir keeps the SQLite database, the generated keys, the providers
	// file, the embedded broker's data and the log across restarts.
	DataDir string
	// Fresh wipes DataDir first (only a directory the devstack created).
	Fresh bool
	// KafkaAddr is where the embedded broker listens, unless KafkaBrokers
	// names a real cluster.
	KafkaAddr    string
	KafkaBrokers []string
	// Partitions of each topic created (default 3).
	Partitions int
	// MySQLDSN, when set, replaces SQLite.
	MySQLDSN string
	// SandboxAddr is where the provider sandbox listens.
	SandboxAddr string
	// HTTPAddr serves /metrics, /healthz, /readyz and the WeChat callbacks.
	HTTPAddr string
	// FinalDelay is how long the sandbox keeps an order processing before
	// its final status (default 3s); RefundDelay how long after SUCCESS a
	// refunded one bounces (default 2s).
	FinalDelay, RefundDelay time.Duration
	// Faults are injected by the sandbox (endpoint → fault).
	Faults map[string]sandbox.Fault
	// AdminToken is the admin API's bearer token; empty means the one in
	// DataDir/admin.token, generated on first start.
	AdminToken string
	// InstanceID names this process in leases and the audit trail.
	InstanceID string
	// LogLevel of the components' JSON logs (default info).
	LogLevel string
	// LogOutput receives the logs; nil means the file devstack.log in
	// DataDir (appended to), so that the terminal stays readable.
	LogOutput io.Writer
}

func (o *Options) defaults() {
	if o.DataDir == "" {
		o.DataDir = ".devstack"
	}
	if o.KafkaAddr == "" {
		o.KafkaAddr = "127.0.0.1:9092"
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.SandboxAddr == "" {
		o.SandboxAddr = "127.0.0.1:8090"
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	if o.FinalDelay <= 0 {
		o.FinalDelay = 3 * time.Second
	}
	if o.RefundDelay <= 0 {
		o.RefundDelay = 2 * time.Second
	}
	if o.InstanceID == "" {
		o.InstanceID = "devstack"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
}

// Stack is a running devstack.
type Stack struct {
	// Brokers are the Kafka bootstrap addresses (embedded or given).
	Brokers []string
	// Embedded reports whether the broker is the embedded one.
	Embedded bool
	// HTTPAddr and SandboxAddr are the addresses actually listened on.
	HTTPAddr, SandboxAddr string
	// Database describes the database ("sqlite <file>" or "mysql").
	Database string
	// DataDir is the absolute data directory.
	DataDir string
	// LogFile is where the logs go ("" when Options.LogOutput was given).
	LogFile string
	// ProvidersFile and PIIKeysFile are usable as WITHDRAW_CONFIG and
	// WITHDRAW_PII_KEYS_FILE by cmd/consumer and cmd/poller meanwhile.
	ProvidersFile, PIIKeysFile string
	// AdminToken is the admin API's bearer token, also in AdminTokenFile
	// (for withdrawctl --admin-token-file).
	AdminToken, AdminTokenFile string
	// Inherited counts withdrawals a previous run left at the provider
	// (SUBMITTING, SUBMITTED, UNKNOWN): the sandbox does not keep its
	// orders across restarts, so these cannot be followed to the end.
	Inherited int64
	// Mux is the HTTP server's mux, for more routes.
	Mux *http.ServeMux
	// DB is the database, for the admin API and the demo.
	DB *store.DB
	// Sandbox is the provider sandbox.
	Sandbox *sandbox.Server

	cancel  context.CancelFunc
	done    chan struct{}
	runErr  error
	closers []func() // in reverse order of start
	mu      sync.Mutex
}

// Start starts everything and returns once the stack serves; it runs until
// ctx ends or Close is called. Wait returns when it has stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts.defaults()
	s := &Stack{done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()

	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(dir, opts.Fresh); err != nil {
		return nil, err
	}
	s.DataDir = dir
	out := opts.LogOutput
	if out == nil {
		s.LogFile = filepath.Join(dir, logFile)
		f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { _ = f.Close() })
		out = f
	}
	log, err := logging.Setup(out, opts.LogLevel, "devstack")
	if err != nil {
		return nil, err
	}
	keys, err := loadOrCreateKeys(dir)
	if err != nil {
		return nil, err
	}
	s.PIIKeysFile = keys.piiKeysFile
	cfg := opts.config()
	cfg.PIIKeysFile = s.PIIKeysFile

	// Kafka.
	if len(opts.KafkaBrokers) > 0 {
		s.Brokers = opts.KafkaBrokers
	} else {
		if s.Brokers, err = s.startKafka(opts.KafkaAddr, filepath.Join(dir, kafkaDir), opts.Partitions, log); err != nil {
			return nil, err
		}
		s.Embedded = true
	}
	cfg.KafkaBrokers = s.Brokers
	ensureCtx, cancelEnsure := context.WithTimeout(ctx, 30*time.Second)
	err = kafkautil.EnsureTopics(ensureCtx, s.Brokers, app.Topics(cfg))
	cancelEnsure()
	if err != nil {
		return nil, fmt.Errorf("kafka %v: %w", s.Brokers, err)
	}

	// Database.
	if opts.MySQLDSN != "" {
		s.DB, err = store.OpenMySQL(ctx, opts.MySQLDSN, store.PoolOptions{MaxOpen: cfg.DBMaxOpen})
		s.Database = "mysql (--mysql-dsn)"
	} else {
		file := filepath.Join(dir, sqliteFile)
		s.DB, err = store.OpenSQLite(ctx, file)
		s.Database = "sqlite " + file
	}
	if err != nil {
		return nil, err
	}
	db := s.DB
	s.closers = append(s.closers, func() { _ = db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	byState, err := store.CountByState(ctx, db)
	if err != nil {
		return nil, err
	}
	s.Inherited = byState["SUBMITTING"] + byState["SUBMITTED"] + byState["UNKNOWN"]

	// HTTP first: the WeChat notify_url must name its real address.
	reg := app.NewRegistry()
	srv, err := app.Listen(opts.HTTPAddr, reg)
	if err != nil {
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	s.closers = append(s.closers, func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(c)
	})
	s.HTTPAddr = srv.Addr()
	cfg.HTTPAddr = s.HTTPAddr
	s.Mux = srv.Mux

	// The sandbox.
	if err := s.startSandbox(opts, keys, log); err != nil {
		return nil, err
	}
	s.ProvidersFile = filepath.Join(dir, providersFile)
	if _, err := writeProviders(s.ProvidersFile,
		keys.providerAccounts("http://"+s.SandboxAddr, "http://"+s.HTTPAddr+"/notify/wechatpay/"+"default")); err != nil {
		return nil, err
	}
	cfg.ProvidersFile = s.ProvidersFile
	s.AdminTokenFile = filepath.Join(dir, adminTokenFile)
	if s.AdminToken, err = adminToken(s.AdminTokenFile, opts.AdminToken); err != nil {
		return nil, err
	}
	cfg.AdminTokenFile = s.AdminTokenFile

	// The pipeline, on a context of its own so that Close stops it.
	pipeline, err := app.NewPipeline(cfg, db, srv, reg, log)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() {
		s.runErr = pipeline.Run(runCtx)
		s.closeAll()
		close(s.done)
	}()
	log.Info("devstack started", "http", s.HTTPAddr, "sandbox", s.SandboxAddr, "brokers", s.Brokers, "database", s.Database)
	return s, nil
}

// config are the orchestrator's settings in the devstack: the production
// defaults but for the accelerated provider timing rules, a sweep every
// second, smaller batches and shorter leases and waits. Start fills in the
// brokers, the addresses and the files once it knows them.
func (o *Options) config() *config.Config {
	cfg := config.Defaults()
	cfg.MySQLDSN = o.MySQLDSN
	cfg.CommandsTopic, cfg.EventsTopic, cfg.DLQTopic, cfg.ConsumerGroup = CommandsTopic, EventsTopic, DLQTopic, ConsumerGroup
	cfg.TopicPartitions, cfg.TopicReplication = o.Partitions, 1
	cfg.InstanceID = o.InstanceID
	cfg.LogLevel = o.LogLevel
	cfg.Schedule = "accelerated"
	cfg.DBMaxOpen = 16
	cfg.IntakeBatchSize = 500
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.DispatchLeaseTTL = 30 * time.Second
	cfg.PollInterval = time.Second
	return cfg
}

// startKafka starts the embedded broker on addr, keeping its data in dir.
func (s *Stack) startKafka(addr, dir string, partitions int, log *slog.Logger) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--kafka-addr %q: %w", addr, err)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return nil, fmt.Errorf("--kafka-addr %q: bad port", addr)
	}
	// kfake listens on 127.0.0.1; listen on the requested host instead. The
	// broker advertises the address it listens on, so the host must be one
	// clients can reach (not 0.0.0.0).
	listen := func(network, address string) (net.Listener, error) {
		_, port, _ := net.SplitHostPort(address)
		return net.Listen(network, net.JoinHostPort(host, port))
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(p),
		kfake.ListenFn(listen),
		kfake.ClusterID("withdraw-devstack"),
		kfake.DataDir(dir),
		kfake.SeedTopics(int32(partitions), CommandsTopic, EventsTopic, DLQTopic),
		kfake.WithLogger(kfakeLogger{log}),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on %s: %w (is another Kafka listening there? use --kafka-addr, or --fresh if its data is damaged)", addr, err)
	}
	s.closers = append(s.closers, c.Close)
	return c.ListenAddrs(), nil
}

// kfakeLogger forwards the embedded broker's warnings and errors.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error("kafka: " + fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		l.log.Warn("kafka: " + fmt.Sprintf(msg, args...))
	}
}

// startSandbox starts the provider sandbox with the devstack's merchants.
func (s *Stack) startSandbox(opts Options, keys *keyring, log *slog.Logger) error {
	sb, err := sandbox.New(sandbox.Options{
		Seed: 1,
		Keys: keys.sandbox,
		WeChatMerchants: []sandbox.WeChatMerchant{{
			MchID: MchID, Serial: keys.merchantSerial, PublicKey: &keys.merchant.PublicKey, APIv3Key: keys.apiv3Key}},
		AllinpayApps: []sandbox.AllinpayApp{{AppID: AllinpayAppID, PublicKey: &keys.allinpay.PublicKey}},
		Lifecycle: sandbox.Lifecycle{
			FinalDelay:   opts.FinalDelay,
			RefundDelay:  opts.RefundDelay,
			VisibleAfter: 300 * time.Millisecond,
			Plan:         magicPlan,
		},
		Faults:         opts.Faults,
		CallbackDelays: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second},
		Logger:         log.With("component", "sandbox"),
	})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, sb.Close)
	s.Sandbox = sb
	if err := keys.writePublic(sb.PublicKeys()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.SandboxAddr)
	if err != nil {
		return fmt.Errorf("--sandbox-addr: %w", err)
	}
	hs := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox stopped", "err", err)
		}
	}()
	s.closers = append(s.closers, func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(c)
	})
	s.SandboxAddr = ln.Addr().String()
	return nil
}

// closeTimeout bounds the wait for the components to stop.
const closeTimeout = 20 * time.Second

// Close stops the stack and waits for it (at most 20s).
func (s *Stack) Close() error {
	s.cancel()
	select {
	case <-s.done:
		return s.runErr
	case <-time.After(closeTimeout):
		return fmt.Errorf("devstack did not stop within %s; exiting anyway", closeTimeout)
	}
}

// Done is closed once the stack has stopped (after Close, the end of the
// context given to Start, or a component's failure).
func (s *Stack) Done() <-chan struct{} { return s.done }

// Err is why the stack stopped on its own, after Done.
func (s *Stack) Err() error { return s.runErr }

// closeAll runs the closers in reverse order, once.
func (s *Stack) closeAll() {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}
