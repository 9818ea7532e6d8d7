package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/health"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
)

// ConsumerOptions are what a consumer takes besides its settings.
type ConsumerOptions struct {
	// AfterStore, when set, is called after each batch's transaction has
	// committed and before its offsets are. TEST ONLY: cmd/consumer arms
	// its failpoint (WITHDRAW_FAILPOINT) with it.
	AfterStore func()
}

// Consumer is cmd/consumer's process: the intake, the dispatcher and the
// outbox relay over MySQL and Kafka, with the HTTP server (health,
// metrics, admin API, console). Build it with NewConsumer, then Run it
// and Close it.
type Consumer struct {
	parts
	front
	afterStore func()

	topicsErr atomic.Pointer[error] // the last topic creation's, until the topics exist
	intake    atomic.Pointer[intake.Intake]
}

// NewConsumer checks everything in cfg that is only configuration — a
// wrong setting fails the start at once, whether or not MySQL and Kafka
// answer — then starts the HTTP server: /healthz answers from now on, and
// /readyz names what is missing while MySQL or Kafka are unreachable.
func NewConsumer(cfg *config.Config, log *slog.Logger, opts ConsumerOptions) (*Consumer, error) {
	c := &Consumer{parts: parts{cfg: cfg, log: log}, front: front{db: newLateDB()}, afterStore: opts.AfterStore}
	c.relay.waitingFor = "MySQL and the Kafka topics"
	if err := c.loadKeys(); err != nil {
		return nil, err
	}
	if err := c.loadProviders(false); err != nil {
		return nil, err
	}
	if c.providers == nil && cfg.DispatchEnabled {
		return nil, errors.New("--config / WITHDRAW_CONFIG (provider accounts) is required to dispatch; run with --dispatch=false for an intake-only instance")
	}
	if cfg.DispatchEnabled {
		if err := c.loadDispatchSettings(); err != nil {
			return nil, err
		}
	}
	if err := c.loadRules(); err != nil {
		return nil, err
	}
	if err := c.checkAdminToken(); err != nil {
		return nil, err
	}

	notTried := health.ErrNotTried
	c.topicsErr.Store(&notTried)
	err := c.startFront(&c.front, func() error {
		if errp := c.topicsErr.Load(); errp != nil {
			return fmt.Errorf("topics not created yet: %w", *errp)
		}
		return nil
	}, check{"intake", func(context.Context) error {
		if in := c.intake.Load(); in != nil {
			return in.Ready()
		}
		return errors.New("not started: waiting for MySQL and the Kafka topics")
	}})
	if err != nil {
		return nil, err
	}
	log.Info("consumer started", "http", c.srv.Addr(), "brokers", cfg.KafkaBrokers, "topic", cfg.CommandsTopic, "group", cfg.ConsumerGroup)
	return c, nil
}

// Run runs the consumer until ctx ends or the intake fails. Each component
// starts once what it needs is there: the dispatcher once the database is
// connected (it runs whatever the state of Kafka), the intake and the
// relay once the topics exist too; the topics are created in the
// background, retried until the brokers answer. On return every component
// has stopped and the database is closed; the HTTP server serves until
// Close.
func (c *Consumer) Run(ctx context.Context) error {
	cfg, log := c.cfg, c.log
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	var bg sync.WaitGroup
	defer func() { stop(); bg.Wait() }()
	bg.Go(func() { c.deps.Run(ctx, dependencyProbeInterval) })
	kafkautil.StartLagCollector(ctx, c.reg, cfg.KafkaBrokers, cfg.ConsumerGroup, cfg.CommandsTopic, cfg.ConsumerLagInterval, log)

	topicsReady := make(chan struct{})
	bg.Go(func() {
		err := kafkautil.EnsureTopicsRetrying(ctx, cfg.KafkaBrokers, Topics(cfg), log.With("component", "topics"), func(err error) {
			if err != nil {
				c.topicsErr.Store(&err)
				c.deps.Report("kafka", err)
			}
		})
		if err == nil {
			c.topicsErr.Store(nil)
			close(topicsReady)
		}
	})

	conn, err := c.db.connect(ctx, cfg, log, c.deps)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("consumer stopping before the database was connected")
			return nil
		}
		return err
	}
	defer conn.Close()

	late := http.NewServeMux()
	if err := c.mount(late, conn, nil); err != nil {
		return err
	}
	c.routes.Set(late)

	// Wake the relay as soon as events are committed, and the dispatcher as
	// soon as new withdrawals are, instead of letting them wait for a poll.
	var disp *dispatch.Dispatcher
	if cfg.DispatchEnabled {
		if disp, err = c.newDispatcher(conn, c.relay.Notify); err != nil {
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
		r, wait, err := c.startRelay(ctx, conn)
		if err != nil {
			return err
		}
		// Stop the relay (it runs until ctx ends), then wait for its last
		// batch.
		defer func() { stop(); wait() }()
		c.relay.Store(r)
		r.Notify() // events written while Kafka was unreachable
	}

	in, closeClients, err := c.newIntake(conn, func(merchantKeys []string) {
		if c.afterStore != nil {
			c.afterStore()
		}
		if disp != nil {
			disp.NotifyDue(merchantKeys)
		}
		c.relay.Notify()
	})
	if err != nil {
		return err
	}
	defer closeClients()
	c.intake.Store(in)
	log.Info("intake started", "topic", cfg.CommandsTopic, "group", cfg.ConsumerGroup)

	runErr := in.Run(ctx)
	log.Info("consumer stopping", "err", runErr)
	return runErr
}

// consumerShutdownWait bounds the wait for HTTP requests in flight at
// Close.
const consumerShutdownWait = 5 * time.Second

// Close stops the HTTP server, waiting at most 5s for the requests in
// flight. Call it once Run has returned.
func (c *Consumer) Close() error { return c.close(consumerShutdownWait) }
