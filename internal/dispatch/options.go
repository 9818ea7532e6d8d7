package dispatch

import (
	"log/slog"
	"time"

	"github.com/paycore/withdraw/internal/optdefault"
	"github.com/paycore/withdraw/internal/schedule"
)

// Options configure a Dispatcher. Zero values take the documented defaults.
type Options struct {
	// Instance names this dispatcher in leases and the audit trail.
	Instance string
	// MaxInFlight caps this instance's concurrent provider calls (default 64).
	MaxInFlight int
	// PerMerchant caps in-flight submissions per merchant across ALL
	// instances (default 1): the cancel-withdraw document asks merchants to
	// control concurrency to avoid paying wrongly.
	PerMerchant int
	// PerMerchantOverrides sets the cap per provider account, keyed
	// "provider:account" (e.g. "wechatpay:default").
	PerMerchantOverrides map[string]int
	// ClaimBatch is the most withdrawals claimed in one transaction
	// (default 256).
	ClaimBatch int
	// LeaseTTL is how long a claim is held before another instance may
	// declare it "maybe sent" (UNKNOWN). It must exceed the provider timeout
	// plus the longest rate-limit wait (default 60s).
	LeaseTTL time.Duration
	// PollInterval is how often to look for due work when nothing wakes the
	// dispatcher earlier (default 250ms).
	PollInterval time.Duration
	// Rates is the provider-call rate limit per provider account, keyed
	// "channel/account"; DefaultRate applies to accounts not listed
	// (default 200/s, burst 50).
	Rates       map[string]Rate
	DefaultRate Rate
	// Rules are the providers' timing rules (default schedule.Production()).
	Rules schedule.Rules
	// ConfigErrorDelay is how long a withdrawal waits when its request
	// cannot be built or its provider account is missing (default 5m).
	ConfigErrorDelay time.Duration
	// OnChange, when set, is called after a transaction that wrote outbox
	// events commits (the relay's Notify, to publish without waiting).
	OnChange func()
	Logger   *slog.Logger
	Metrics  *Metrics
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Rate is a token-bucket rate limit.
type Rate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

func (o *Options) defaults() {
	optdefault.Zero(&o.Instance, "dispatcher")
	optdefault.NonPositive(&o.MaxInFlight, 64)
	optdefault.NonPositive(&o.PerMerchant, 1)
	optdefault.NonPositive(&o.ClaimBatch, 256)
	optdefault.NonPositive(&o.LeaseTTL, 60*time.Second)
	optdefault.NonPositive(&o.PollInterval, 250*time.Millisecond)
	if o.DefaultRate.PerSecond <= 0 {
		o.DefaultRate = Rate{PerSecond: 200, Burst: 50}
	}
	optdefault.Zero(&o.Rules, schedule.Production())
	optdefault.NonPositive(&o.ConfigErrorDelay, 5*time.Minute)
	optdefault.Zero(&o.Logger, slog.Default())
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
}
