package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/paycore/withdraw/internal/config"
)

// Poller is cmd/poller's process: the poller (sweep, daily job,
// reconciliation), the WeChat Pay callbacks and the outbox relay over
// MySQL, with the HTTP server (health, metrics, callbacks, admin API,
// console). Build it with NewPoller, then Run it and Close it.
type Poller struct {
	parts
	front
}

// NewPoller checks everything in cfg that is only configuration and loads
// the provider accounts, then starts the HTTP server: /healthz answers
// from now on, /readyz names what is missing while MySQL is unreachable,
// and the callbacks answer 503 until the database is connected.
func NewPoller(cfg *config.Config, log *slog.Logger) (*Poller, error) {
	p := &Poller{parts: parts{cfg: cfg, log: log}, front: front{db: newLateDB()}}
	p.relay.waitingFor = "MySQL"
	if err := p.loadRules(); err != nil {
		return nil, err
	}
	if cfg.Schedule == "accelerated" {
		log.Warn("ACCELERATED provider timing rules: for the sandbox only, never against real providers")
	}
	if cfg.ProvidersFile == "" {
		return nil, errors.New("--config / WITHDRAW_CONFIG is required: the provider accounts to query")
	}
	if err := p.loadProviders(true); err != nil {
		return nil, err
	}
	if err := p.checkAdminToken(); err != nil {
		return nil, err
	}

	if err := p.startFront(&p.front, nil); err != nil {
		return nil, err
	}
	log.Info("poller started", "http", p.srv.Addr(), "accounts", len(p.accounts.Accounts), "schedule", cfg.Schedule,
		"interval", cfg.PollInterval, "daily", cfg.PollDailySpec)
	return p, nil
}

// Run connects to the database (retrying until it answers), then runs the
// relay and the poller, and serves the callbacks, the admin API and the
// console, until ctx ends. On return every component has stopped and the
// database is closed; the HTTP server serves until Close.
func (p *Poller) Run(ctx context.Context) error {
	cfg, log := p.cfg, p.log
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	var bg sync.WaitGroup
	defer func() { stop(); bg.Wait() }()
	bg.Go(func() { p.deps.Run(ctx, dependencyProbeInterval) })

	conn, err := p.db.connect(ctx, cfg, log, p.deps)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("poller stopping before the database was connected")
			return nil
		}
		return err
	}
	defer conn.Close()

	// The relay publishes the events the poller and the callbacks write
	// (and any other instance's: lanes are shared by every relay). While
	// Kafka is unreachable it keeps them and retries.
	var retention func(ctx context.Context) (int64, error)
	if cfg.RelayEnabled {
		r, wait, err := p.startRelay(ctx, conn)
		if err != nil {
			return err
		}
		// On every return: stop the relay (it runs until ctx ends), then
		// wait for its last batch.
		defer func() { stop(); wait() }()
		p.relay.Store(r)
		retention = p.retention(&p.relay)
	}

	poller, err := p.newPoller(conn, retention)
	if err != nil {
		return err
	}
	late := http.NewServeMux()
	if err := p.mount(late, conn, poller); err != nil {
		return err
	}
	p.routes.Set(late)

	runErr := poller.Run(ctx)
	log.Info("poller stopping", "err", runErr)
	return runErr
}

// Close stops the HTTP server, letting callbacks in flight finish (WeChat
// would retry them anyway) for at most ShutdownTimeout. Call it once Run
// has returned.
func (p *Poller) Close() error { return p.close(p.cfg.ShutdownTimeout) }
