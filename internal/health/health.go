// Package health tracks whether the services a process depends on (MySQL,
// Kafka) are reachable: every observation, from /readyz, from a background
// probe or from a component that just failed or succeeded to reach one,
// sets the gauge
//
//	withdraw_dependency_up{dependency="mysql|kafka"}   1 reachable, 0 not
//
// and a change is logged once: a warning when a dependency becomes
// unreachable (repeated every RemindEvery while it stays so), an info line
// when it is reachable again, with how long it was not.
package health

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RemindEvery is how often a dependency that stays unreachable is logged
// again.
const RemindEvery = time.Minute

// Check reports whether a dependency is reachable; nil means it is.
type Check = func(ctx context.Context) error

// ErrNotTried is what a check returns, wrapped, while the process has not
// tried to reach the dependency yet: /readyz shows it, but it is no
// observation, so neither the gauge nor the log hear of it.
var ErrNotTried = errors.New("not tried yet")

// Dependencies is the set of a process's dependencies. Create it with New.
type Dependencies struct {
	log *slog.Logger
	up  *prometheus.GaugeVec
	now func() time.Time

	mu   sync.Mutex
	deps map[string]*dependency
}

type dependency struct {
	check    Check
	known    bool // observed at least once
	err      error
	since    time.Time // of the current state
	reminded time.Time // last log line about it being down
}

// New builds an empty set whose gauge is registered with reg (nil: not
// registered).
func New(reg prometheus.Registerer, log *slog.Logger) *Dependencies {
	if log == nil {
		log = slog.Default()
	}
	d := &Dependencies{
		log: log.With("component", "health"),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "withdraw_dependency_up",
			Help: "Whether a dependency (mysql, kafka) answered the last check: 1 reachable, 0 not.",
		}, []string{"dependency"}),
		now:  time.Now,
		deps: map[string]*dependency{},
	}
	if reg != nil {
		reg.MustRegister(d.up)
	}
	return d
}

// Add registers a dependency with the check that probes it. Until it is
// first observed, its gauge reads 0.
func (d *Dependencies) Add(name string, check Check) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deps[name] = &dependency{check: check}
	d.up.WithLabelValues(name).Set(0)
}

// Report records an observation of a dependency made elsewhere: err nil
// means it answered. Unknown names are ignored.
func (d *Dependencies) Report(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dep, ok := d.deps[name]
	if !ok {
		return
	}
	now := d.now()
	switch {
	case !dep.known || (dep.err == nil) != (err == nil):
		if err != nil {
			d.log.Warn("dependency unreachable", "dependency", name, "err", err)
			dep.reminded = now
		} else if dep.known {
			d.log.Info("dependency reachable again", "dependency", name, "down_for", now.Sub(dep.since).Round(time.Millisecond).String())
		} else {
			d.log.Info("dependency reachable", "dependency", name)
		}
		dep.since = now
	case err != nil && now.Sub(dep.reminded) >= RemindEvery:
		d.log.Warn("dependency still unreachable", "dependency", name, "down_for", now.Sub(dep.since).Round(time.Second).String(), "err", err)
		dep.reminded = now
	}
	dep.known, dep.err = true, err
	v := 0.0
	if err == nil {
		v = 1
	}
	d.up.WithLabelValues(name).Set(v)
}

// Check returns a check that probes the dependency and records the result;
// /readyz serves it.
func (d *Dependencies) Check(name string) Check {
	return func(ctx context.Context) error {
		d.mu.Lock()
		dep, ok := d.deps[name]
		d.mu.Unlock()
		if !ok {
			return nil
		}
		err := dep.check(ctx)
		// A probe cancelled (shutdown, the client went away) says nothing;
		// one that timed out says the dependency does not answer.
		if !errors.Is(ctx.Err(), context.Canceled) && !errors.Is(err, ErrNotTried) {
			d.Report(name, err)
		}
		return err
	}
}

// ProbeAll probes every dependency once, in parallel.
func (d *Dependencies) ProbeAll(ctx context.Context) {
	d.mu.Lock()
	names := make([]string, 0, len(d.deps))
	for n := range d.deps {
		names = append(names, n)
	}
	d.mu.Unlock()
	sort.Strings(names)
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = d.Check(n)(pctx)
		})
	}
	wg.Wait()
}

// Run probes every dependency every interval until ctx ends, so that the
// gauge and the log follow an outage even when nobody asks /readyz.
func (d *Dependencies) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d.ProbeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
