package poll

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/paycore/withdraw/internal/schedule"
)

// Options configure a Poller. Zero values take the documented defaults.
type Options struct {
	// Instance names this poller in the audit trail (withdrawal_attempts;
	// InstanceDefault).
	Instance string
	// Rules are the providers' timing rules (default schedule.Production()).
	Rules schedule.Rules
	// SweepSpec is the cron spec of the sweep (default
	// EverySpec(SweepIntervalDefault): "@every 10s").
	SweepSpec string
	// DailySpec is the cron spec of the daily job, in Beijing time
	// (DailySpecDefault: 03:00 Asia/Shanghai).
	DailySpec string
	// BatchSize is the most withdrawals one sweep claims (BatchSizeDefault).
	BatchSize int
	// FollowUpShare is the share of each sweep's batch, and so of the
	// queries it makes under QueryRate, kept for the refund follow-ups of
	// SUCCEEDED withdrawals, in (0, 1] (FollowUpShareDefault; what one
	// class leaves unused goes to the other).
	FollowUpShare float64
	// Concurrency is the most provider queries one instance has in flight
	// (ConcurrencyDefault).
	Concurrency int
	// QueryRate caps the queries per second per provider account of all
	// poller instances together (QueryRateDefault/s, burst
	// QueryBurstDefault): each instance
	// takes an equal share, counting the instances alive in
	// poller_instances on every sweep. The dispatcher's submissions share
	// the provider's limits too.
	QueryRate  float64
	QueryBurst int
	// Lease bounds how far a claim pushes next_attempt_at ahead, so that
	// other instances skip the row while this one queries it
	// (LeaseDefault).
	// A claim's lease is proportional to its rows (see leaseFor), at most
	// this; a late result is dropped, not applied twice.
	Lease time.Duration

	// Limits of the daily stuck report (StuckReport).
	// UnknownStuckAfter: UNKNOWN for longer than this since the first send
	// (UnknownStuckAfterDefault).
	UnknownStuckAfter time.Duration
	// AcceptedStuckAfter: ACCEPTED and never sent for longer than this
	// (AcceptedStuckAfterDefault).
	AcceptedStuckAfter time.Duration
	// StuckLogLimit bounds the log lines per reason of one report
	// (StuckLogLimitDefault); the gauge always counts all.
	StuckLogLimit int

	// Retention, when set, is called by the daily job (the outbox relay's
	// purge of published rows). It returns the number of rows deleted.
	Retention func(ctx context.Context) (int64, error)
	// AttemptsRetention is how long the audit of provider calls
	// (withdrawal_attempts) is kept; the daily job deletes older rows
	// (AttemptsRetentionDefault; negative keeps them forever).
	AttemptsRetention time.Duration

	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Defaults of Options: what a zero field means. internal/config documents
// the same numbers as the defaults of its settings.
const (
	InstanceDefault = "poller"
	// SweepIntervalDefault is the period of the default SweepSpec.
	SweepIntervalDefault = 10 * time.Second
	DailySpecDefault     = "0 3 * * *"
	BatchSizeDefault     = 200
	ConcurrencyDefault   = 16
	FollowUpShareDefault = 0.25
	QueryRateDefault     = 20
	QueryBurstDefault    = 10
	LeaseDefault         = 5 * time.Minute
	// UnknownStuckAfterDefault, AcceptedStuckAfterDefault and
	// StuckLogLimitDefault are the limits of the daily stuck report.
	UnknownStuckAfterDefault  = 24 * time.Hour
	AcceptedStuckAfterDefault = time.Hour
	StuckLogLimitDefault      = 1000
	// AttemptsRetentionDefault is twice the providers' 90-day query window.
	AttemptsRetentionDefault = 180 * 24 * time.Hour
)

// EverySpec is the cron spec of a sweep every d, in whole seconds.
func EverySpec(d time.Duration) string {
	return fmt.Sprintf("@every %s", d.Truncate(time.Second))
}

func (o *Options) defaults() {
	o.Instance = cmp.Or(o.Instance, InstanceDefault)
	if len(o.Instance) > 64 {
		o.Instance = o.Instance[:64]
	}
	o.Rules = cmp.Or(o.Rules, schedule.Production())
	o.SweepSpec = cmp.Or(o.SweepSpec, EverySpec(SweepIntervalDefault))
	o.DailySpec = cmp.Or(o.DailySpec, DailySpecDefault)
	o.BatchSize = cmp.Or(o.BatchSize, BatchSizeDefault)
	o.Concurrency = cmp.Or(o.Concurrency, ConcurrencyDefault)
	o.FollowUpShare = cmp.Or(o.FollowUpShare, FollowUpShareDefault)
	o.QueryRate = cmp.Or(o.QueryRate, QueryRateDefault)
	o.QueryBurst = cmp.Or(o.QueryBurst, QueryBurstDefault)
	o.Lease = cmp.Or(o.Lease, LeaseDefault)
	o.UnknownStuckAfter = cmp.Or(o.UnknownStuckAfter, UnknownStuckAfterDefault)
	o.AcceptedStuckAfter = cmp.Or(o.AcceptedStuckAfter, AcceptedStuckAfterDefault)
	o.StuckLogLimit = cmp.Or(o.StuckLogLimit, StuckLogLimitDefault)
	o.AttemptsRetention = cmp.Or(o.AttemptsRetention, AttemptsRetentionDefault)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
}

// validate rejects settings no poller can run with; it runs after
// defaults, so a zero is already the default and only a negative or an
// out-of-range value is left to refuse.
func (o *Options) validate() error {
	var errs []error
	for _, c := range []struct {
		name     string
		negative bool
		v        any
	}{
		{"BatchSize", o.BatchSize < 0, o.BatchSize},
		{"Concurrency", o.Concurrency < 0, o.Concurrency},
		{"QueryRate", o.QueryRate < 0, o.QueryRate},
		{"QueryBurst", o.QueryBurst < 0, o.QueryBurst},
		{"Lease", o.Lease < 0, o.Lease},
		{"UnknownStuckAfter", o.UnknownStuckAfter < 0, o.UnknownStuckAfter},
		{"AcceptedStuckAfter", o.AcceptedStuckAfter < 0, o.AcceptedStuckAfter},
		{"StuckLogLimit", o.StuckLogLimit < 0, o.StuckLogLimit},
	} {
		if c.negative {
			errs = append(errs, fmt.Errorf("poll: Options.%s must not be negative, got %v", c.name, c.v))
		}
	}
	if o.FollowUpShare < 0 || o.FollowUpShare > 1 {
		errs = append(errs, fmt.Errorf("poll: Options.FollowUpShare must be in (0, 1], got %v", o.FollowUpShare))
	}
	return errors.Join(errs...)
}
