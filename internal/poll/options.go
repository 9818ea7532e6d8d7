package poll

import (
	"context"
	"log/slog"
	"time"

	"github.com/paycore/withdraw/internal/optdefault"
	"github.com/paycore/withdraw/internal/schedule"
)

// Options configure a Poller. Zero values take the documented defaults.
type Options struct {
	// Instance names this poller in the audit trail (withdrawal_attempts).
	Instance string
	// Rules are the providers' timing rules (default schedule.Production()).
	Rules schedule.Rules
	// SweepSpec is the cron spec of the sweep (default "@every 10s").
	SweepSpec string
	// DailySpec is the cron spec of the daily job, in Beijing time (default
	// "0 3 * * *": 03:00 Asia/Shanghai).
	DailySpec string
	// BatchSize is the most withdrawals one sweep claims (default 200).
	BatchSize int
	// FollowUpShare is the share of each sweep's batch, and so of the
	// queries it makes under QueryRate, kept for the refund follow-ups of
	// SUCCEEDED withdrawals (default 0.25; what one class leaves unused
	// goes to the other).
	FollowUpShare float64
	// Concurrency is the most provider queries one instance has in flight
	// (default 16).
	Concurrency int
	// QueryRate caps the queries per second per provider account of all
	// poller instances together (default 20/s, burst 10): each instance
	// takes an equal share, counting the instances alive in
	// poller_instances on every sweep. The dispatcher's submissions share
	// the provider's limits too.
	QueryRate  float64
	QueryBurst int
	// Lease bounds how far a claim pushes next_attempt_at ahead, so that
	// other instances skip the row while this one queries it (default 5m).
	// A claim's lease is proportional to its rows (see leaseFor), at most
	// this; a late result is dropped, not applied twice.
	Lease time.Duration

	// Limits of the daily stuck report (StuckReport).
	// UnknownStuckAfter: UNKNOWN for longer than this since the first send
	// (default 24h).
	UnknownStuckAfter time.Duration
	// AcceptedStuckAfter: ACCEPTED and never sent for longer than this
	// (default 1h).
	AcceptedStuckAfter time.Duration
	// StuckLogLimit bounds the log lines per reason of one report (default
	// 1000); the gauge always counts all.
	StuckLogLimit int

	// Retention, when set, is called by the daily job (the outbox relay's
	// purge of published rows). It returns the number of rows deleted.
	Retention func(ctx context.Context) (int64, error)
	// AttemptsRetention is how long the audit of provider calls
	// (withdrawal_attempts) is kept; the daily job deletes older rows
	// (default 180 days: twice the providers' query window; negative
	// keeps them forever).
	AttemptsRetention time.Duration

	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultSweepSpec = "@every 10s"
	DefaultDailySpec = "0 3 * * *"
	// DefaultAttemptsRetention is AttemptsRetention's default.
	DefaultAttemptsRetention = 180 * 24 * time.Hour
	// DefaultFollowUpShare is FollowUpShare's default.
	DefaultFollowUpShare = 0.25
)

func (o *Options) defaults() {
	optdefault.Zero(&o.Instance, "poller")
	if len(o.Instance) > 64 {
		o.Instance = o.Instance[:64]
	}
	optdefault.Zero(&o.Rules, schedule.Production())
	optdefault.Zero(&o.SweepSpec, DefaultSweepSpec)
	optdefault.Zero(&o.DailySpec, DefaultDailySpec)
	optdefault.NonPositive(&o.BatchSize, 200)
	optdefault.NonPositive(&o.Concurrency, 16)
	optdefault.NonPositive(&o.FollowUpShare, DefaultFollowUpShare)
	o.FollowUpShare = min(o.FollowUpShare, 1)
	optdefault.NonPositive(&o.QueryRate, 20)
	optdefault.NonPositive(&o.QueryBurst, 10)
	optdefault.NonPositive(&o.Lease, 5*time.Minute)
	optdefault.NonPositive(&o.UnknownStuckAfter, 24*time.Hour)
	optdefault.NonPositive(&o.AcceptedStuckAfter, time.Hour)
	optdefault.NonPositive(&o.StuckLogLimit, 1000)
	if o.AttemptsRetention == 0 {
		o.AttemptsRetention = DefaultAttemptsRetention
	}
	optdefault.Zero(&o.Logger, slog.Default())
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
}
