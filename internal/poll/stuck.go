package poll

import (
	"context"
	"fmt"
	"time"

	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Reasons of the stuck report (label "reason" of withdraw_stuck_withdrawals).
const (
	// StuckUnknown: UNKNOWN (maybe sent) for longer than UnknownStuckAfter.
	StuckUnknown = "unknown_too_long"
	// StuckInit: WeChat INIT for longer than Rules.InitAlertAfter (the
	// provider says an order may stay INIT up to 7 days).
	StuckInit = "init_too_long"
	// StuckQueryWindow: SUBMITTED and older than Rules.QueryWindow: the
	// provider no longer answers queries about it.
	StuckQueryWindow = "past_query_window"
	// StuckNotDispatched: ACCEPTED and never sent for longer than
	// AcceptedStuckAfter.
	StuckNotDispatched = "not_dispatched"
)

// StuckClass is one kind of stuck withdrawal.
type StuckClass struct {
	State  withdrawal.State
	Reason string
}

// StuckWithdrawal is one stuck withdrawal as logged.
type StuckWithdrawal = store.StuckWithdrawal

// StuckReport counts stuck withdrawals per class.
type StuckReport map[StuckClass]int64

// stuckQuery is one class and how store selects its withdrawals at a
// given time.
type stuckQuery struct {
	class StuckClass
	at    func(now time.Time) store.StuckClass
}

// StuckLimits are the limits of the stuck report: the poller's options, so
// that other readers (the operator console) apply the same rules.
type StuckLimits struct {
	Rules                                 schedule.Rules
	UnknownStuckAfter, AcceptedStuckAfter time.Duration
}

// DefaultStuckLimits are the limits a poller with rules and default
// options reports by.
func DefaultStuckLimits(rules schedule.Rules) StuckLimits {
	o := Options{Rules: rules}
	o.defaults()
	return StuckLimits{Rules: o.Rules, UnknownStuckAfter: o.UnknownStuckAfter, AcceptedStuckAfter: o.AcceptedStuckAfter}
}

func (p *Poller) stuckQueries() []stuckQuery {
	return StuckLimits{Rules: p.opts.Rules, UnknownStuckAfter: p.opts.UnknownStuckAfter, AcceptedStuckAfter: p.opts.AcceptedStuckAfter}.queries()
}

func (l StuckLimits) queries() []stuckQuery {
	r := l.Rules
	return []stuckQuery{
		{StuckClass{withdrawal.StateUnknown, StuckUnknown}, func(now time.Time) store.StuckClass {
			return store.StuckClass{State: string(withdrawal.StateUnknown), Age: store.SinceFirstSent,
				Before: now.Add(-l.UnknownStuckAfter)}
		}},
		// Past the query window the next class has it.
		{StuckClass{withdrawal.StateSubmitted, StuckInit}, func(now time.Time) store.StuckClass {
			return store.StuckClass{State: string(withdrawal.StateSubmitted), ProviderStatus: "INIT", Age: store.SinceFirstSent,
				Before: now.Add(-r.InitAlertAfter), NotBefore: now.Add(-r.QueryWindow)}
		}},
		{StuckClass{withdrawal.StateSubmitted, StuckQueryWindow}, func(now time.Time) store.StuckClass {
			return store.StuckClass{State: string(withdrawal.StateSubmitted), Age: store.SinceFirstSent,
				Before: now.Add(-r.QueryWindow)}
		}},
		{StuckClass{withdrawal.StateAccepted, StuckNotDispatched}, func(now time.Time) store.StuckClass {
			return store.StuckClass{State: string(withdrawal.StateAccepted), Age: store.SinceCreated,
				Before: now.Add(-l.AcceptedStuckAfter)}
		}},
	}
}

// Stuck lists up to limit withdrawals of each stuck class at now, oldest
// first, with each class's count: the daily report's rules, without its
// logging or gauge.
func (l StuckLimits) Stuck(ctx context.Context, db *store.DB, now time.Time, limit int) (StuckReport, map[StuckClass][]StuckWithdrawal, error) {
	report := StuckReport{}
	lists := map[StuckClass][]StuckWithdrawal{}
	for _, q := range l.queries() {
		c := q.at(now)
		n, err := store.CountStuck(ctx, db, c)
		if err != nil {
			return report, lists, fmt.Errorf("stuck %s: %w", q.class.Reason, err)
		}
		report[q.class] = n
		if n == 0 || limit <= 0 {
			continue
		}
		rows, err := store.ListStuck(ctx, db, c, limit)
		if err != nil {
			return report, lists, fmt.Errorf("stuck %s: %w", q.class.Reason, err)
		}
		lists[q.class] = rows
	}
	return report, lists, nil
}

// StuckClasses lists the classes in the report's order.
func StuckClasses() []StuckClass {
	var out []StuckClass
	for _, q := range (StuckLimits{}).queries() {
		out = append(out, q.class)
	}
	return out
}

// ReportStuck counts the withdrawals stuck beyond their limits, sets the
// withdraw_stuck_withdrawals gauge, and, when logLines is set, logs one line
// per stuck withdrawal (id, out_request_no; at most StuckLogLimit per
// class) at error level with alert=true.
func (p *Poller) ReportStuck(ctx context.Context, logLines bool) (StuckReport, error) {
	now := p.opts.Now()
	report := StuckReport{}
	for _, q := range p.stuckQueries() {
		c := q.at(now)
		n, err := store.CountStuck(ctx, p.db, c)
		if err != nil {
			return report, fmt.Errorf("stuck report %s: %w", q.class.Reason, err)
		}
		report[q.class] = n
		p.opts.Metrics.stuck.WithLabelValues(string(q.class.State), q.class.Reason).Set(float64(n))
		if !logLines || n == 0 {
			continue
		}
		rows, err := store.ListStuck(ctx, p.db, c, p.opts.StuckLogLimit)
		if err != nil {
			return report, fmt.Errorf("stuck report %s: %w", q.class.Reason, err)
		}
		for _, w := range rows {
			p.log.Error("stuck withdrawal", "reason", q.class.Reason, "withdrawal_id", w.ID, "out_request_no", w.OutRequestNo,
				"channel", w.Channel, "account", w.Account, "state", w.State, "since", w.Since, "alert", true)
		}
		if n > int64(len(rows)) {
			p.log.Error("more stuck withdrawals not logged", "reason", q.class.Reason, "count", n-int64(len(rows)), "alert", true)
		}
	}
	return report, nil
}

// dailyLock names the MySQL lock that lets one instance at a time log the
// stuck withdrawals and run retention; every instance still sets the gauge.
const dailyLock = "withdraw_poll_daily"

// Daily is the daily job: the stuck report, then the retention hook. With
// several pollers, the one holding a MySQL named lock logs and runs
// retention; the others only refresh their gauge.
func (p *Poller) Daily(ctx context.Context) error {
	release, leader, err := p.tryLock(ctx)
	if err != nil {
		p.log.Warn("daily job: lock unavailable, running as leader", "err", err)
		leader, release = true, func() {}
	}
	defer release()
	_, err = p.ReportStuck(ctx, leader)
	if err != nil {
		p.opts.Metrics.dailyFailures.Inc()
		return err
	}
	if leader && p.opts.Retention != nil {
		n, err := p.opts.Retention(ctx)
		p.opts.Metrics.retentionRows.Add(float64(n))
		if err != nil {
			p.opts.Metrics.dailyFailures.Inc()
			return fmt.Errorf("retention: %w", err)
		}
		p.log.Info("retention done", "deleted", n)
	}
	if leader && p.opts.AttemptsRetention > 0 {
		n, err := p.purgeAttempts(ctx, p.opts.Now().Add(-p.opts.AttemptsRetention))
		p.opts.Metrics.retentionRows.Add(float64(n))
		if err != nil {
			p.opts.Metrics.dailyFailures.Inc()
			return fmt.Errorf("audit retention: %w", err)
		}
		p.log.Info("audit retention done", "deleted", n, "older_than", p.opts.AttemptsRetention)
	}
	p.opts.Metrics.dailyLastRun.Set(float64(time.Now().Unix()))
	return nil
}

// attemptsPurgeBatch and attemptsPurgePause bound the audit retention's
// statements: each deletes at most a batch by primary key, and the pause
// lets the intake's and the dispatcher's inserts through.
const (
	attemptsPurgeBatch = 1000
	attemptsPurgePause = 50 * time.Millisecond
)

// purgeAttempts deletes the audit rows that started before cutoff, in
// batches, and returns how many it deleted.
func (p *Poller) purgeAttempts(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		n, err := store.PurgeAttempts(ctx, p.db, cutoff, attemptsPurgeBatch)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(attemptsPurgePause):
		}
	}
}

// tryLock takes the daily job's named lock without waiting (on SQLite,
// whose database belongs to one process, every instance leads).
func (p *Poller) tryLock(ctx context.Context) (release func(), ok bool, err error) {
	return store.TryAdvisoryLock(ctx, p.db, dailyLock)
}
