package dispatch

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/paycore/withdraw/internal/schedule"
)

// Defaults of Options: what a zero field means. internal/config documents
// the same numbers as the defaults of its settings.
const (
	InstanceDefault     = "dispatcher"
	MaxInFlightDefault  = 64
	PerMerchantDefault  = 1
	ClaimBatchDefault   = 256
	LeaseTTLDefault     = 60 * time.Second
	PollIntervalDefault = 250 * time.Millisecond
	// RatePerSecondDefault and RateBurstDefault make DefaultRate's
	// default.
	RatePerSecondDefault    = 200
	RateBurstDefault        = 50
	ConfigErrorDelayDefault = 5 * time.Minute
)

// Options configure a Dispatcher. Zero values take the documented defaults.
type Options struct {
	// Instance names this dispatcher in leases and the audit trail
	// (InstanceDefault).
	Instance string
	// MaxInFlight caps this instance's concurrent provider calls
	// (MaxInFlightDefault).
	MaxInFlight int
	// PerMerchant caps in-flight submissions per merchant across ALL
	// instances (PerMerchantDefault, 1): the cancel-withdraw document asks
	// merchants to control concurrency to avoid paying wrongly.
	PerMerchant int
	// PerMerchantOverrides sets the cap per provider account, keyed
	// "provider:account" (e.g. "wechatpay:default").
	PerMerchantOverrides map[string]int
	// ClaimBatch is the most withdrawals claimed in one transaction
	// (ClaimBatchDefault).
	ClaimBatch int
	// LeaseTTL is how long a claim is held before another instance may
	// declare it "maybe sent" (UNKNOWN). It must exceed the provider timeout
	// plus the longest rate-limit wait (LeaseTTLDefault, 60s).
	LeaseTTL time.Duration
	// PollInterval is how often to look for due work when nothing wakes the
	// dispatcher earlier (PollIntervalDefault).
	PollInterval time.Duration
	// Rates is the provider-call rate limit per provider account, keyed
	// "channel/account"; DefaultRate applies to accounts not listed
	// (RatePerSecondDefault/s, burst RateBurstDefault).
	Rates       map[string]Rate
	DefaultRate Rate
	// Rules are the providers' timing rules (default schedule.Production()).
	Rules schedule.Rules
	// ConfigErrorDelay is how long a withdrawal waits when its request
	// cannot be built or its provider account is missing
	// (ConfigErrorDelayDefault).
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
	o.Instance = cmp.Or(o.Instance, InstanceDefault)
	o.MaxInFlight = cmp.Or(o.MaxInFlight, MaxInFlightDefault)
	o.PerMerchant = cmp.Or(o.PerMerchant, PerMerchantDefault)
	o.ClaimBatch = cmp.Or(o.ClaimBatch, ClaimBatchDefault)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, LeaseTTLDefault)
	o.PollInterval = cmp.Or(o.PollInterval, PollIntervalDefault)
	o.DefaultRate = cmp.Or(o.DefaultRate, Rate{PerSecond: RatePerSecondDefault, Burst: RateBurstDefault})
	o.Rules = cmp.Or(o.Rules, schedule.Production())
	o.ConfigErrorDelay = cmp.Or(o.ConfigErrorDelay, ConfigErrorDelayDefault)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
}

// validate rejects settings no dispatcher can run with; it runs after
// defaults, so a zero is already the default and only a negative or an
// out-of-range value is left to refuse.
func (o *Options) validate() error {
	var errs []error
	for _, c := range []struct {
		name     string
		negative bool
		v        any
	}{
		{"MaxInFlight", o.MaxInFlight < 0, o.MaxInFlight},
		{"PerMerchant", o.PerMerchant < 0, o.PerMerchant},
		{"ClaimBatch", o.ClaimBatch < 0, o.ClaimBatch},
		{"LeaseTTL", o.LeaseTTL < 0, o.LeaseTTL},
		{"PollInterval", o.PollInterval < 0, o.PollInterval},
		{"ConfigErrorDelay", o.ConfigErrorDelay < 0, o.ConfigErrorDelay},
	} {
		if c.negative {
			errs = append(errs, fmt.Errorf("dispatch: Options.%s must not be negative, got %v", c.name, c.v))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.PerMerchantOverrides)) {
		if n := o.PerMerchantOverrides[k]; n < 1 {
			errs = append(errs, fmt.Errorf("dispatch: Options.PerMerchantOverrides[%q] must be at least 1, got %d", k, n))
		}
	}
	if err := o.DefaultRate.validate("Options.DefaultRate"); err != nil {
		errs = append(errs, err)
	}
	for _, k := range slices.Sorted(maps.Keys(o.Rates)) {
		if err := o.Rates[k].validate(fmt.Sprintf("Options.Rates[%q]", k)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// validate rejects a rate that lets no call through or makes no sense.
func (r Rate) validate(name string) error {
	if r.PerSecond <= 0 {
		return fmt.Errorf("dispatch: %s.PerSecond must be positive, got %v", name, r.PerSecond)
	}
	if r.Burst < 0 {
		return fmt.Errorf("dispatch: %s.Burst must not be negative, got %d", name, r.Burst)
	}
	return nil
}
