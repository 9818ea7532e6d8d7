package dispatch

import (
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
)

// mustNew is New for tests whose options are valid.
func mustNew(t testing.TB, db *store.DB, providers *provider.Registry, keys *pii.Keyring, opts Options) *Dispatcher {
	t.Helper()
	d, err := New(db, providers, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOptions: zero fields take the documented defaults, impossible
// values are refused by New with an error naming the option.
func TestOptions(t *testing.T) {
	o := mustNew(t, nil, nil, nil, Options{}).opts
	if o.Instance != InstanceDefault || o.MaxInFlight != MaxInFlightDefault || o.PerMerchant != PerMerchantDefault ||
		o.ClaimBatch != ClaimBatchDefault || o.LeaseTTL != LeaseTTLDefault || o.PollInterval != PollIntervalDefault ||
		o.DefaultRate != (Rate{PerSecond: RatePerSecondDefault, Burst: RateBurstDefault}) ||
		o.ConfigErrorDelay != ConfigErrorDelayDefault {
		t.Errorf("defaults not applied: %+v", o)
	}
	for name, bad := range map[string]Options{
		"MaxInFlight":                   {MaxInFlight: -1},
		"PerMerchant":                   {PerMerchant: -1},
		"ClaimBatch":                    {ClaimBatch: -5},
		"LeaseTTL":                      {LeaseTTL: -time.Second},
		"PollInterval":                  {PollInterval: -time.Millisecond},
		"ConfigErrorDelay":              {ConfigErrorDelay: -time.Minute},
		`PerMerchantOverrides["w:a"]`:   {PerMerchantOverrides: map[string]int{"w:a": 0}},
		"DefaultRate.PerSecond":         {DefaultRate: Rate{Burst: 5}},
		"DefaultRate.Burst":             {DefaultRate: Rate{PerSecond: 5, Burst: -1}},
		`Rates["wechatpay_platform/a"]`: {Rates: map[string]Rate{"wechatpay_platform/a": {PerSecond: -1}}},
	} {
		if _, err := New(nil, nil, nil, bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: New = %v, want an error naming it", name, err)
		}
	}
}
