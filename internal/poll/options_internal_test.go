package poll

import (
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/provider"
)

// TestOptions: zero fields take the documented defaults, impossible
// values are refused by New with an error naming the option.
func TestOptions(t *testing.T) {
	p, err := New(nil, provider.NewRegistry(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := p.opts
	if o.Instance != InstanceDefault || o.SweepSpec != "@every 10s" || p.interval != SweepIntervalDefault ||
		o.DailySpec != DailySpecDefault || o.BatchSize != BatchSizeDefault || o.Concurrency != ConcurrencyDefault ||
		o.FollowUpShare != FollowUpShareDefault || o.QueryRate != QueryRateDefault || o.QueryBurst != QueryBurstDefault ||
		o.Lease != LeaseDefault || o.UnknownStuckAfter != UnknownStuckAfterDefault ||
		o.AcceptedStuckAfter != AcceptedStuckAfterDefault || o.StuckLogLimit != StuckLogLimitDefault ||
		o.AttemptsRetention != AttemptsRetentionDefault {
		t.Errorf("defaults not applied: %+v", o)
	}
	if _, err := New(nil, provider.NewRegistry(), Options{AttemptsRetention: -1}); err != nil {
		t.Errorf("a negative AttemptsRetention keeps the audit forever: %v", err)
	}
	for name, bad := range map[string]Options{
		"BatchSize":          {BatchSize: -1},
		"Concurrency":        {Concurrency: -1},
		"QueryRate":          {QueryRate: -0.5},
		"QueryBurst":         {QueryBurst: -1},
		"Lease":              {Lease: -time.Second},
		"UnknownStuckAfter":  {UnknownStuckAfter: -time.Hour},
		"AcceptedStuckAfter": {AcceptedStuckAfter: -time.Hour},
		"StuckLogLimit":      {StuckLogLimit: -1},
		"FollowUpShare":      {FollowUpShare: 1.5},
		"cron spec":          {SweepSpec: "every ten seconds"},
	} {
		if _, err := New(nil, provider.NewRegistry(), bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: New = %v, want an error naming it", name, err)
		}
	}
	if _, err := New(nil, provider.NewRegistry(), Options{FollowUpShare: -0.1}); err == nil || !strings.Contains(err.Error(), "FollowUpShare") {
		t.Errorf("negative FollowUpShare: %v", err)
	}
}
