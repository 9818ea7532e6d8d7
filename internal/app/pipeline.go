package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/store"
)

// Pipeline is every component of the orchestrator in one process over a
// database that is already open: intake, dispatcher, outbox relay, poller
// (with the reconciliation), WeChat Pay callbacks, admin API and console.
// The devstack runs it. Build it with NewPipeline, then Run it; Close
// releases what NewPipeline built when Run is never called.
type Pipeline struct {
	parts
	db           *store.DB
	disp         *dispatch.Dispatcher
	poller       *poll.Poller
	intake       *intake.Intake
	closeClients func()
	relay        lateRelay
	closeOnce    sync.Once
}

// NewPipeline builds the components on cfg's settings over db (migrated,
// MySQL or SQLite), with their metrics on reg, and serves their routes and
// readiness checks (database, kafka, intake, relay) on srv. cfg's topics
// must exist; the relay and the dispatcher always run (RelayEnabled and
// DispatchEnabled must be set).
func NewPipeline(cfg *config.Config, db *store.DB, srv *httpserver.Server, reg *prometheus.Registry, log *slog.Logger) (*Pipeline, error) {
	if !cfg.RelayEnabled || !cfg.DispatchEnabled {
		return nil, errors.New("app: a pipeline runs every component: RelayEnabled and DispatchEnabled must be set")
	}
	p := &Pipeline{parts: parts{cfg: cfg, log: log, reg: reg}, db: db}
	p.relay.waitingFor = "the pipeline to run"
	if err := p.loadKeys(); err != nil {
		return nil, err
	}
	if err := p.loadProviders(true); err != nil {
		return nil, err
	}
	if p.providers == nil {
		return nil, errors.New("app: a pipeline needs the provider accounts of ProvidersFile")
	}
	if err := p.loadDispatchSettings(); err != nil {
		return nil, err
	}
	if err := p.loadRules(); err != nil {
		return nil, err
	}

	var err error
	if p.disp, err = p.newDispatcher(db, p.relay.Notify); err != nil {
		return nil, err
	}
	if p.poller, err = p.newPoller(db, p.retention(&p.relay)); err != nil {
		return nil, err
	}
	p.intake, p.closeClients, err = p.newIntake(db, func(merchantKeys []string) {
		p.disp.NotifyDue(merchantKeys)
		p.relay.Notify()
	})
	if err != nil {
		return nil, err
	}
	if err := p.mount(srv.Mux, db, p.poller); err != nil {
		p.closeClients()
		return nil, err
	}
	brokers := cfg.KafkaBrokers
	srv.AddCheck("database", db.Ping)
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafkautil.Ping(ctx, brokers) })
	srv.AddCheck("intake", func(context.Context) error { return p.intake.Ready() })
	srv.AddCheck("relay", p.relay.Ready)
	return p, nil
}

// Run starts the relay, then runs the intake, the dispatcher and the
// poller until ctx ends or one of them fails, which stops the others. It
// returns once all have stopped (the relay after its last batch), with the
// failure that stopped them, if any.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, waitRelay, err := p.startRelay(ctx, p.db)
	if err != nil {
		return err
	}
	p.relay.Store(r)

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for name, run := range map[string]func(context.Context) error{"intake": p.intake.Run, "dispatcher": p.disp.Run, "poller": p.poller.Run} {
		wg.Go(func() {
			err := run(ctx)
			if err != nil && ctx.Err() == nil {
				p.log.Error(name+" stopped", "err", err)
				errs <- fmt.Errorf("%s: %w", name, err)
			}
			cancel() // one part down: stop the rest
		})
	}
	wg.Wait()
	waitRelay()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// Close closes the intake's Kafka clients. Run calls it on return.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(p.closeClients)
	return nil
}
