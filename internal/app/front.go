package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/health"
	"github.com/paycore/withdraw/internal/httpserver"
	"github.com/paycore/withdraw/internal/kafkautil"
)

// front is what a binary serves from its start, before its components
// run: the dependency probes, /metrics, /healthz, /readyz, and the routes
// mounted once the database is connected (503 until then).
type front struct {
	srv       *httpserver.Server
	deps      *health.Dependencies
	routes    *httpserver.Deferred
	db        *lateDB
	relay     lateRelay
	closeOnce sync.Once
}

// check is one /readyz check besides the dependencies.
type check struct {
	name string
	fn   func(context.Context) error
}

// startFront probes MySQL and Kafka (Kafka: the brokers answer, and then
// kafkaReady, when not nil), starts the HTTP server on cfg.HTTPAddr with
// their checks, the given ones and the relay's, and leaves every other
// route deferred until the database is connected.
func (p *parts) startFront(f *front, kafkaReady func() error, checks ...check) error {
	p.reg = NewRegistry()
	f.deps = health.New(p.reg, p.log)
	f.deps.Add("mysql", f.db.check)
	f.deps.Add("kafka", func(ctx context.Context) error {
		if err := kafkautil.Ping(ctx, p.cfg.KafkaBrokers); err != nil {
			return err
		}
		if kafkaReady != nil {
			return kafkaReady()
		}
		return nil
	})
	f.srv = httpserver.New(p.reg)
	f.srv.AddCheck("mysql", f.deps.Check("mysql"))
	f.srv.AddCheck("kafka", f.deps.Check("kafka"))
	for _, c := range checks {
		f.srv.AddCheck(c.name, c.fn)
	}
	if p.cfg.RelayEnabled {
		f.srv.AddCheck("relay", f.relay.Ready)
	}
	f.routes = &httpserver.Deferred{Reason: "not connected to MySQL yet"}
	f.srv.Mux.Handle("/", f.routes)
	if err := f.srv.Start(p.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// Addr is the address the HTTP server listens on.
func (f *front) Addr() string { return f.srv.Addr() }

// close stops the HTTP server, waiting at most wait for the requests in
// flight; only the first call does.
func (f *front) close(wait time.Duration) error {
	var err error
	f.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		err = f.srv.Shutdown(ctx)
	})
	return err
}
