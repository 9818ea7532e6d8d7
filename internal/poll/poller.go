// Package poll follows submitted withdrawals at their providers until the
// outcome is known, and keeps following succeeded WeChat withdrawals for a
// while in case the bank returns the money (退票).
//
// A Poller runs two cron jobs (robfig/cron, Asia/Shanghai, overlapping runs
// skipped): a frequent sweep and a daily report. The sweep claims due rows
// (SUBMITTED without a pending re-submission, and SUCCEEDED) with SELECT …
// FOR UPDATE SKIP LOCKED in a short transaction that pushes their
// next_attempt_at forward by a lease, so other instances skip them; it then
// queries the providers outside any transaction and applies each answer in
// its own transaction through transition.Lock + Apply, only if the row is
// still the one it claimed (same version, state and lease mark). Any number
// of pollers may run.
//
// The mapping of a provider status to a change (decide) is shared with the
// provider callbacks (package callback) through Observe, so a query result
// and a callback carrying the same status write the same thing, once.
//
// UNKNOWN withdrawals are not the poller's: settling them may need a
// byte-identical re-send under the per-merchant cap, which is the
// dispatcher's job. When the provider wants a re-send (WeChat INIT) the
// poller sets resubmit_requested and the dispatcher sends.
package poll

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"golang.org/x/time/rate"

	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// ConfigErrorDelay is how long a withdrawal waits when its provider account
// is not configured in this instance.
const ConfigErrorDelay = 5 * time.Minute

// Poller is one poller instance. Create it with New.
type Poller struct {
	db        *store.DB
	providers *provider.Registry
	opts      Options
	decider   decide.Decider
	log       *slog.Logger

	// owner names this process in poller_instances: the instance name
	// and a per-process token, so two processes never count as one.
	owner string
	// interval is the sweep's period, from SweepSpec.
	interval time.Duration

	// jobs are further cron jobs run beside the sweep (AddJob).
	jobs []job

	mu        sync.Mutex
	limiters  map[string]*rate.Limiter
	instances int // pollers sharing the query rate, as last counted
}

// New builds a poller over a migrated database and the provider accounts.
// It fails on an invalid cron spec.
func New(db *store.DB, providers *provider.Registry, opts Options) (*Poller, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	for _, spec := range []string{opts.SweepSpec, opts.DailySpec} {
		if _, err := cron.ParseStandard(spec); err != nil {
			return nil, fmt.Errorf("poll: cron spec %q: %w", spec, err)
		}
	}
	interval, err := sweepInterval(opts.SweepSpec)
	if err != nil {
		return nil, err
	}
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	return &Poller{db: db, providers: providers, opts: opts, decider: decide.Decider{Rules: opts.Rules},
		owner: opts.Instance + ":" + hex.EncodeToString(token), interval: interval, instances: 1,
		log: opts.Logger.With("component", "poller"), limiters: map[string]*rate.Limiter{}}, nil
}

// sweepInterval is the period of a sweep's cron spec: the time between
// its next two runs.
func sweepInterval(spec string) (time.Duration, error) {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return 0, fmt.Errorf("poll: cron spec %q: %w", spec, err)
	}
	next := sched.Next(time.Now())
	return sched.Next(next).Sub(next), nil
}

// job is a cron job added with AddJob.
type job struct {
	name, spec string
	run        func(ctx context.Context) error
}

// AddJob adds a cron job (spec in Beijing time) that Run runs beside the
// sweep and the daily job, overlapping runs skipped: the daily
// reconciliation. It must be called before Run.
func (p *Poller) AddJob(name, spec string, run func(ctx context.Context) error) error {
	if _, err := cron.ParseStandard(spec); err != nil {
		return fmt.Errorf("poll: %s: cron spec %q: %w", name, spec, err)
	}
	p.jobs = append(p.jobs, job{name: name, spec: spec, run: run})
	return nil
}

// Metrics returns the poller's metrics (the callback handler counts there).
func (p *Poller) Metrics() *Metrics { return p.opts.Metrics }

// Run runs the sweep and the daily job on their cron schedules, in Beijing
// time, until ctx is cancelled; then it waits for a running job to finish.
// A sweep in flight stops querying at once; claims it could not record are
// queried again when their lease runs out.
func (p *Poller) Run(ctx context.Context) error {
	logger := cronLogger{p.log}
	c := cron.New(cron.WithLocation(withdrawal.Beijing), cron.WithLogger(logger),
		cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)))
	if _, err := c.AddFunc(p.opts.SweepSpec, func() {
		if _, err := p.Sweep(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("sweep failed", "err", err)
		}
	}); err != nil {
		return fmt.Errorf("poll: sweep spec: %w", err)
	}
	if _, err := c.AddFunc(p.opts.DailySpec, func() {
		if err := p.Daily(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("daily job failed", "err", err)
		}
	}); err != nil {
		return fmt.Errorf("poll: daily spec: %w", err)
	}
	for _, j := range p.jobs {
		if _, err := c.AddFunc(j.spec, func() {
			if err := j.run(ctx); err != nil && ctx.Err() == nil {
				p.log.Error(j.name+" failed", "err", err)
			}
		}); err != nil {
			return fmt.Errorf("poll: %s spec: %w", j.name, err)
		}
	}
	c.Start()
	p.log.Info("poller started", "sweep", p.opts.SweepSpec, "daily", p.opts.DailySpec+" Asia/Shanghai", "batch", p.opts.BatchSize)
	<-ctx.Done()
	<-c.Stop().Done()
	return nil
}

// SweepStats describe one sweep.
type SweepStats struct {
	Claimed int // rows claimed
	Queried int // provider queries made
	Changed int // state changes applied
	Dropped int // results dropped: the row changed after the claim
}

// claim is one row this instance claimed.
type claim struct {
	row store.Withdrawal
	// until is the lease mark written into next_attempt_at; the result is
	// applied only while it is still there (and the version unchanged).
	until time.Time
}

// Sweep claims the due withdrawals, queries them and records the answers.
// Run calls it on the sweep schedule; tests and tools may call it
// directly. As long as a claim comes back full it claims again, as soon as
// all but the last Concurrency rows of the previous claim have started:
// a backlog (the 08:00 burst) is then drained at the query rate, not at
// BatchSize per sweep interval, and the queries never wait for a claim.
func (p *Poller) Sweep(ctx context.Context) (SweepStats, error) {
	start := time.Now()
	defer func() { p.opts.Metrics.sweepDuration.Observe(time.Since(start).Seconds()) }()
	var (
		mu    sync.Mutex
		stats SweepStats
		wg    sync.WaitGroup
		sem   = make(chan struct{}, p.opts.Concurrency)
	)
	var err error
	for {
		// The heartbeat on every claim: a sweep working through a backlog
		// keeps counting among the pollers that share the rate.
		p.share(ctx)
		var claims []claim
		claims, err = p.claim(ctx)
		if err != nil {
			p.opts.Metrics.sweepFailures.Inc()
			break
		}
		mu.Lock()
		stats.Claimed += len(claims)
		mu.Unlock()
		for _, c := range claims {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				queried, res := p.process(ctx, c)
				mu.Lock()
				stats.Queried += queried
				if res.Changed {
					stats.Changed++
				}
				if res.Dropped {
					stats.Dropped++
				}
				mu.Unlock()
			}()
		}
		if len(claims) < p.opts.BatchSize || ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	p.opts.Metrics.claimedPerSwp.Observe(float64(stats.Claimed))
	if err != nil {
		return stats, err
	}
	if stats.Claimed > 0 {
		p.log.Debug("sweep done", "claimed", stats.Claimed, "queried", stats.Queried, "changed", stats.Changed,
			"dropped", stats.Dropped, "took", time.Since(start))
	}
	return stats, nil
}

// claim takes up to BatchSize due rows in one short transaction and moves
// their next_attempt_at to the lease mark.
func (p *Poller) claim(ctx context.Context) ([]claim, error) {
	// Follow-ups of SUCCEEDED rows (refunds, 退票) have their own share of
	// the batch (store.PollLease.FollowUps).
	lease := store.PollLease{Now: p.opts.Now(), Limit: p.opts.BatchSize,
		FollowUps: int(math.Ceil(float64(p.opts.BatchSize) * p.opts.FollowUpShare)), Lease: p.leaseFor}
	var out []claim
	// Two pollers claiming at once can deadlock on the rows' index entries
	// (InnoDB rolls one back); the loser's claim took nothing, so it simply
	// claims again.
	err := store.RetryCollided(func() error {
		return p.db.InTx(ctx, func(tx *store.Tx) error {
			rows, until, err := store.LeaseForPoll(ctx, tx, lease)
			if err != nil {
				return err
			}
			out = make([]claim, len(rows))
			for i := range rows {
				out[i] = claim{row: rows[i], until: until}
			}
			return nil
		})
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MinLease is the shortest claim lease: time for the slowest single query
// (a provider timeout) and its recording.
const MinLease = 30 * time.Second

// leaseFor is the lease of a claim of n rows: proportional to the work,
// twice the time the queries take at this instance's share of the
// account's rate plus MinLease,
// at most Options.Lease. A sweep cut short (a crash, a database outage)
// then holds its rows for about as long as it would have run, not for the
// whole Options.Lease.
func (p *Poller) leaseFor(n int) time.Duration {
	p.mu.Lock()
	perInstance := p.opts.QueryRate / float64(max(p.instances, 1))
	p.mu.Unlock()
	work := time.Duration(2 * float64(n) / perInstance * float64(time.Second))
	return min(MinLease+work, p.opts.Lease)
}

// result is what recording an observation did.
type result struct {
	Changed bool
	Dropped bool
	From    withdrawal.State
	To      withdrawal.State
}

// process queries one claimed withdrawal and records the answer. It
// returns the number of queries made.
func (p *Poller) process(ctx context.Context, c claim) (int, result) {
	w := c.row
	now := p.opts.Now()
	if d, ok := p.decider.PreQuery(&w, now); ok {
		res, err := p.recordClaimed(context.WithoutCancel(ctx), c, nil, func(*store.Tx, *store.Withdrawal, time.Time) decide.Decision { return d })
		if err != nil {
			p.log.Error("recording failed", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo, "err", err)
		}
		return 0, res
	}
	ch := withdrawal.Channel(w.Channel)
	prov, err := p.providers.Get(ch, w.Account)
	if err != nil {
		p.log.Error("withdrawal cannot be queried: provider account not configured here", "withdrawal_id", w.ID,
			"out_request_no", w.OutRequestNo, "channel", w.Channel, "account", w.Account, "alert", true, "err", err)
		res, err := p.recordClaimed(context.WithoutCancel(ctx), c, nil, func(_ *store.Tx, w *store.Withdrawal, now time.Time) decide.Decision {
			return decide.Decision{Write: true, Change: transition.Change{To: transition.Resting(w), NextAttemptAt: now.Add(ConfigErrorDelay)}}
		})
		if err != nil {
			p.log.Error("recording failed", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo, "err", err)
		}
		return 0, res
	}

	var cmd withdrawal.Command
	if err := json.Unmarshal(w.Params, &cmd); err != nil {
		cmd = withdrawal.Command{OutRequestNo: w.OutRequestNo}
	}
	key := provider.QueryKeyOf(&cmd, w.ProviderRef)
	var attempts []store.Attempt
	ask := func(byRef bool) provider.QueryResult {
		if err := p.limiter(w.Channel + "/" + w.Account).Wait(ctx); err != nil {
			return provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindRetryLater, Err: err}}
		}
		start := time.Now()
		var q provider.QueryResult
		if byRef {
			q = prov.QueryByProviderRef(ctx, key)
		} else {
			q = prov.QueryByOutRequestNo(ctx, key)
		}
		took := time.Since(start)
		p.opts.Metrics.queries.WithLabelValues(w.Channel, string(q.Kind)).Inc()
		a := store.Attempt{Operation: OpQuery, StartedAt: start.UTC(), LatencyUS: took.Microseconds(), HTTPStatus: q.HTTPStatus,
			ProviderCode: q.Code, Outcome: string(q.Kind), Instance: p.opts.Instance}
		if q.Err != nil {
			a.Error = q.Err.Error()
		}
		attempts = append(attempts, a)
		return q
	}
	q := ask(w.ProviderRef != "")
	if q.Kind == provider.KindNotFound && w.ProviderRef != "" && ctx.Err() == nil {
		// Not found by the provider's id: make sure by our own number
		// before concluding anything.
		q = ask(false)
	}
	if ctx.Err() != nil {
		// Shutting down: the answer may be a cancellation, not the
		// provider's. The lease expires and another sweep asks again.
		return len(attempts), result{}
	}
	if q.Alert {
		p.log.Error("status query needs an operator", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
			"channel", w.Channel, "outcome", q.Outcome, "alert", true)
	}
	res, err := p.recordClaimed(context.WithoutCancel(ctx), c, attempts, func(tx *store.Tx, w *store.Withdrawal, now time.Time) decide.Decision {
		return p.decider.Observed(w, decide.SourceQuery, q, now, p.lastSentFunc(context.WithoutCancel(ctx), tx, w))
	})
	if err != nil {
		p.log.Error("recording a query result failed; the row is queried again after its lease", "withdrawal_id", w.ID,
			"out_request_no", w.OutRequestNo, "err", err)
	}
	return len(attempts), res
}

// recordClaimed applies a decision to a claimed row if the row is still as
// claimed; otherwise only the audit rows are kept.
func (p *Poller) recordClaimed(ctx context.Context, c claim, attempts []store.Attempt, decideFn func(*store.Tx, *store.Withdrawal, time.Time) decide.Decision) (result, error) {
	var res result
	err := p.db.InTx(ctx, func(tx *store.Tx) error {
		res = result{}
		w, err := transition.Lock(ctx, tx, c.row.ID)
		if err != nil {
			return err
		}
		if w.Version != c.row.Version || w.State != c.row.State || !w.NextAttemptAt.Equal(c.until) {
			// Another instance (after our lease ran out) or a callback got
			// there first; what we learnt is accounted for or asked again.
			res.Dropped = true
			p.opts.Metrics.dropped.Inc()
			p.log.Debug("row changed since it was claimed; result dropped", "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
				"claimed_version", c.row.Version, "version", w.Version, "state", w.State)
			return insertAttempts(ctx, tx, w.ID, attempts)
		}
		now := p.opts.Now()
		d := decideFn(tx, w, now)
		d.Change.Attempts = attempts
		res, err = p.apply(ctx, tx, w, decide.SourceQuery, d, now)
		return err
	})
	return res, err
}

// Observe applies a provider status learnt outside a sweep (a callback) to
// the withdrawal with this id, through the same mapping as query results.
// It is idempotent: a status that tells nothing new writes nothing. audit,
// when set, is recorded with a change.
func (p *Poller) Observe(ctx context.Context, id string, src decide.Source, q provider.QueryResult, audit *store.Attempt) (changed bool, err error) {
	err = p.db.InTx(ctx, func(tx *store.Tx) error {
		changed = false
		w, err := transition.Lock(ctx, tx, id)
		if err != nil {
			return err
		}
		now := p.opts.Now()
		d := p.decider.Observed(w, src, q, now, p.lastSentFunc(ctx, tx, w))
		if !d.Write {
			if d.Info != "" {
				p.log.Info(d.Info, "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo, "source", src, "state", w.State,
					"provider_status", q.ProviderStatus)
			}
			if d.Alert != "" {
				p.log.Error(d.Alert, "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo, "source", src,
					"state", w.State, "provider_status", q.ProviderStatus, "alert", true)
			}
			return nil
		}
		if audit != nil && d.Change.To != transition.Resting(w) {
			a := *audit
			a.Instance = p.opts.Instance
			d.Change.Attempts = []store.Attempt{a}
		}
		res, err := p.apply(ctx, tx, w, src, d, now)
		changed = res.Changed
		return err
	})
	return changed, err
}

// apply writes a decision to a row locked in tx and accounts for it.
func (p *Poller) apply(ctx context.Context, tx *store.Tx, w *store.Withdrawal, src decide.Source, d decide.Decision, now time.Time) (result, error) {
	from := transition.Resting(w)
	res := result{From: from, To: d.Change.To}
	if !d.Write {
		return res, insertAttempts(ctx, tx, w.ID, d.Change.Attempts)
	}
	id, no, status := w.ID, w.OutRequestNo, d.Change.ProviderStatus
	changed, err := transition.Apply(ctx, tx, w, d.Change, now)
	if err != nil {
		if errors.Is(err, transition.ErrStale) {
			res.Dropped = true
			return res, nil
		}
		return res, err
	}
	res.Changed = changed
	if d.Alert != "" {
		p.log.Error(d.Alert, "withdrawal_id", id, "out_request_no", no, "source", src, "state", w.State,
			"provider_status", w.ProviderStatus, "alert", true)
	}
	if d.Change.Resubmit != nil && *d.Change.Resubmit {
		p.opts.Metrics.resubmits.WithLabelValues(w.Channel).Inc()
		p.log.Info("re-submission of the identical request requested (INIT)", "withdrawal_id", id, "out_request_no", no)
	}
	if changed {
		p.opts.Metrics.changes.WithLabelValues(string(from), string(d.Change.To), string(src)).Inc()
		p.log.Info("withdrawal status changed", "withdrawal_id", id, "out_request_no", no, "channel", w.Channel,
			"from", from, "to", d.Change.To, "provider_status", status, "version", w.Version, "source", src)
	}
	return res, nil
}

// sentOperations are the audit operations of a request leaving for the
// provider (the dispatcher's).
var sentOperations = []string{"submit", "resubmit"}

// lastSentFunc returns when the request of w last left for the provider
// (the latest submit or resubmit in the audit), for the INIT rule. It reads
// through tx, the transaction holding w: SQLite's single connection is
// busy with it, so a read through the pool would wait forever.
func (p *Poller) lastSentFunc(ctx context.Context, tx *store.Tx, w *store.Withdrawal) func() time.Time {
	return func() time.Time {
		last, err := store.LatestAttemptStart(ctx, tx, w.ID, sentOperations)
		if err != nil || last.IsZero() {
			return decide.FirstSent(w, w.CreatedAt)
		}
		if fs := decide.FirstSent(w, w.CreatedAt); fs.After(last) {
			return fs
		}
		return last
	}
}

func (p *Poller) limiter(account string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.limiters[account]
	if !ok {
		l = rate.NewLimiter(p.rate())
		p.limiters[account] = l
	}
	return l
}

// rate is this instance's share of an account's query rate and burst.
// Callers hold p.mu.
func (p *Poller) rate() (rate.Limit, int) {
	n := max(p.instances, 1)
	return rate.Limit(p.opts.QueryRate / float64(n)), max(p.opts.QueryBurst/n, 1)
}

// share records this instance's heartbeat and divides each account's query
// rate by the pollers alive, so that together they stay within
// Options.QueryRate (the provider's limit) however many run. An instance
// counts as alive for three sweep intervals. On a database error the share
// stays as it was.
func (p *Poller) share(ctx context.Context) {
	now := p.opts.Now()
	alive := now.Add(-3 * p.interval)
	n, err := store.PollerHeartbeat(ctx, p.db, p.owner, now, alive, now.Add(-24*time.Hour))
	if err != nil {
		p.log.Warn("poller heartbeat failed; keeping the current share of the query rate", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == p.instances {
		return
	}
	p.instances = n
	limit, burst := p.rate()
	for _, l := range p.limiters {
		l.SetLimit(limit)
		l.SetBurst(burst)
	}
	p.opts.Metrics.instances.Set(float64(n))
	p.log.Info("pollers sharing the query rate", "instances", n, "rate_per_account", float64(limit))
}

// insertAttempts records audit rows of withdrawal id that come with no
// change, the way transition records those that come with one.
func insertAttempts(ctx context.Context, tx *store.Tx, id string, attempts []store.Attempt) error {
	var rows transition.Writes
	rows.AddAttempts(id, attempts)
	return rows.Flush(ctx, tx)
}

// cronLogger adapts slog to cron.Logger; the "skip" of an overlapping run
// is logged at debug level.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
