package poll_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var ctx = context.Background()

// Event types, as the tests compare them.
const (
	evAccepted  = "withdrawal.accepted"
	evSubmitted = "withdrawal.submitted"
	evSucceeded = "withdrawal.succeeded"
	evFailed    = "withdrawal.failed"
	evReversed  = "withdrawal.reversed"
	evUnknown   = "withdrawal.unknown"
)

// testRules are accelerated rules: first query 300ms after sending, polls
// every 100-300ms, INIT re-sent after 300ms, succeeded rows followed 30s.
func testRules() schedule.Rules {
	r := schedule.Accelerated()
	r.Fixed = 300 * time.Millisecond
	r.PollMin, r.PollMax, r.CancelPollMin = 100*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	r.InitResubmitAfter, r.InitAlertAfter = 300*time.Millisecond, time.Minute
	r.FollowSucceeded = 30 * time.Second
	return r
}

// rig is one subtest's world: a fresh database, a provider sandbox of its
// own over HTTP, and the keyring of the withdrawals it seeds. Its methods
// run dispatchers and pollers against them until the subtest ends, so
// subtests with a rig each can run in parallel.
type rig struct {
	t    *testing.T
	db   *store.DB
	keys *pii.Keyring
	env  *providertest.Env
}

func newRig(t *testing.T, opts sandbox.Options, set ...providertest.Settings) *rig {
	t.Helper()
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 40})
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = 5 * time.Millisecond
	}
	return &rig{t: t, db: db, keys: keys, env: providertest.Start(t, opts, set...)}
}

// seed stores commands as ACCEPTED withdrawals with their first event, as
// the intake would, and returns their ids by out_request_no.
func (r *rig) seed(cmds ...*withdrawal.Command) map[string]string {
	r.t.Helper()
	return storetest.Seed(r.t, r.db, r.keys, cmds...)
}

// runDispatcher runs a dispatcher until the test ends.
func (r *rig) runDispatcher(name string, rules schedule.Rules) {
	r.t.Cleanup(r.startDispatcherWith(name, rules))
}

// startDispatcher runs a dispatcher with the test rules until stop.
func (r *rig) startDispatcher(name string) (stop func()) {
	stop = r.startDispatcherWith(name, testRules())
	r.t.Cleanup(stop)
	return stop
}

func (r *rig) startDispatcherWith(name string, rules schedule.Rules) (stop func()) {
	d, err := dispatch.New(r.db, r.env.Registry(), r.keys, dispatch.Options{Instance: name, Rules: rules,
		PollInterval: 20 * time.Millisecond, Logger: quiet()})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// poller builds a poller with test rules and its own metrics registry.
func (r *rig) poller(name string, opts poll.Options) (*poll.Poller, *prometheus.Registry) {
	r.t.Helper()
	opts.Instance = name
	if opts.Rules == (schedule.Rules{}) {
		opts.Rules = testRules()
	}
	reg := prometheus.NewRegistry()
	if opts.Metrics == nil {
		opts.Metrics = poll.NewMetrics(reg)
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	p, err := poll.New(r.db, r.env.Registry(), opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return p, reg
}

// sweepLoop sweeps every interval until the test ends.
func (r *rig) sweepLoop(p *poll.Poller, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := p.Sweep(ctx); err != nil && ctx.Err() == nil {
				r.t.Errorf("sweep: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(every):
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	r.t.Cleanup(stop)
	return stop
}

// row loads a withdrawal.
func (r *rig) row(id string) *store.Withdrawal {
	r.t.Helper()
	w, err := store.GetWithdrawal(context.Background(), r.db, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

// waitState waits until every listed withdrawal is in its wanted state.
func (r *rig) waitState(timeout time.Duration, want map[string]withdrawal.State) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		for id, st := range want {
			if w := r.row(id); w.State != string(st) {
				bad = append(bad, w.OutRequestNo+"="+w.State+"/"+w.ProviderStatus+" want "+string(st))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("not reached after %s: %v", timeout, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events returns the event payloads of a withdrawal, oldest first, after
// checking that their versions are 1..n, each once, and that the last
// matches the row. It is stricter than storetest.AssertVersionsGapFree,
// which the chaos suite shares and which lets republished copies of a
// version pass: a stored event is never a copy, and the version inside its
// payload must be the row's column too.
func (r *rig) events(id string) []withdrawal.Event {
	r.t.Helper()
	rows, err := store.EventsOf(context.Background(), r.db, id)
	if err != nil {
		r.t.Fatal(err)
	}
	w := r.row(id)
	var out []withdrawal.Event
	for i, e := range rows {
		var ev withdrawal.Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			r.t.Fatal(err)
		}
		if e.Version != i+1 || ev.Version != i+1 {
			r.t.Errorf("%s: event %d has version %d (payload %d)", w.OutRequestNo, i, e.Version, ev.Version)
		}
		out = append(out, ev)
	}
	if len(out) != w.Version {
		r.t.Errorf("%s: %d events for version %d", w.OutRequestNo, len(out), w.Version)
	}
	if len(out) > 0 && string(out[len(out)-1].State) != w.State {
		r.t.Errorf("%s: last event says %s, row says %s", w.OutRequestNo, out[len(out)-1].State, w.State)
	}
	return out
}

func types(evs []withdrawal.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Type))
	}
	return out
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer is a concurrency-safe log sink.
type logBuffer = storetest.LogBuffer

// submitAll seeds the commands and runs a dispatcher until every one is
// SUBMITTED; the dispatcher is stopped afterwards.
func (r *rig) submitAll(cmds ...*withdrawal.Command) map[string]string {
	r.t.Helper()
	ids := r.seed(cmds...)
	want := map[string]withdrawal.State{}
	for _, id := range ids {
		want[id] = withdrawal.StateSubmitted
	}
	stop := r.startDispatcher("d-submit")
	r.waitState(20*time.Second, want)
	stop()
	return ids
}

// trail is a withdrawal's audit as "operation:code" steps, oldest first.
func (r *rig) trail(id string) []string {
	r.t.Helper()
	atts, err := store.AttemptsOf(context.Background(), r.db, id)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, a := range atts {
		out = append(out, a.Operation+":"+a.ProviderCode)
	}
	return out
}

// waitAttempt waits until a withdrawal has at least one audit row.
func (r *rig) waitAttempt(id string) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(r.trail(id)) == 0 {
		if time.Now().After(deadline) {
			r.t.Fatal("no provider call recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// created is how many orders the sandbox created under a number.
func (r *rig) created(ch withdrawal.Channel, no string) int {
	o, _ := r.env.Ledger().Find(string(ch), no)
	return o.Created
}

// holdDailyLock takes the daily job's named lock on its own connection.
func (r *rig) holdDailyLock() (release func()) {
	r.t.Helper()
	release, ok, err := store.TryAdvisoryLock(ctx, r.db, "withdraw_poll_daily")
	if err != nil || !ok {
		r.t.Fatalf("lock: %v %v", err, ok)
	}
	return release
}

// metric sums the samples of a metric family, optionally only those whose
// labels include every name=value of match.
func metric(t *testing.T, reg *prometheus.Registry, name string, match ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for _, kv := range match {
				k, v, _ := strings.Cut(kv, "=")
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
