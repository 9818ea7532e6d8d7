package relay

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/paycore/withdraw/internal/outbox"
)

// Defaults of Options (and of Purge's retention): what a zero means.
// internal/config documents the same numbers as the defaults of its
// settings.
const (
	// InstanceDefault names a relay whose host has no name.
	InstanceDefault = "relay"
	// SourceDefault is the CloudEvents source of the events.
	SourceDefault       = "urn:paycore:withdraw"
	BatchSizeDefault    = 2000
	WorkersDefault      = 4
	PollIntervalDefault = 100 * time.Millisecond
	LeaseTTLDefault     = 20 * time.Second
	MaxBackoffDefault   = 5 * time.Second
	// StatsIntervalDefault applies to a zero StatsInterval; a negative one
	// disables the pending-rows gauges.
	StatsIntervalDefault = 10 * time.Second
	ShutdownGraceDefault = 5 * time.Second
	PurgeBatchDefault    = 1000
	PurgePauseDefault    = 10 * time.Millisecond
	// RetentionDefault is how long published rows are kept before Purge
	// deletes them.
	RetentionDefault = 7 * 24 * time.Hour
)

// Options configure a Relay. Zero values take the documented defaults.
type Options struct {
	// Instance names this process in lane leases and logs (default: the
	// host name, or InstanceDefault). A random suffix is added, so two
	// processes with the same name never share leases.
	Instance string
	// Source is the ce_source header (SourceDefault).
	Source string
	// BatchSize is the most rows one worker reads per claim
	// (BatchSizeDefault), split evenly over the lanes it reads.
	BatchSize int
	// Workers is the number of goroutines publishing in parallel, each for
	// its own subset of lanes (WorkersDefault; at most outbox.Lanes).
	Workers int
	// PollInterval is the pause of a worker that found nothing to publish,
	// unless Notify wakes it earlier (PollIntervalDefault).
	PollInterval time.Duration
	// LeaseTTL is the lifetime of a lane lease (LeaseTTLDefault). Leases
	// are renewed every LeaseTTL/4; a worker publishes a lane only while
	// more than LeaseTTL/2 of its lease is left. A crashed relay's lanes
	// are taken over after at most LeaseTTL.
	LeaseTTL time.Duration
	// MaxBackoff caps the pause between retries after an error
	// (MaxBackoffDefault).
	MaxBackoff time.Duration
	// StatsInterval is how often the pending-rows gauges are refreshed
	// (StatsIntervalDefault; negative disables).
	StatsInterval time.Duration
	// ShutdownGrace bounds how long a batch being published when Run's
	// context ends may take to finish (ShutdownGraceDefault).
	ShutdownGrace time.Duration
	// PurgeBatch is the number of rows per DELETE of Purge
	// (PurgeBatchDefault), PurgePause the pause between two of them
	// (PurgePauseDefault).
	PurgeBatch int
	PurgePause time.Duration
	Logger     *slog.Logger
	Metrics    *Metrics
}

func (o *Options) defaults() {
	if o.Instance == "" {
		host, _ := os.Hostname()
		o.Instance = cmp.Or(host, InstanceDefault)
	}
	o.Source = cmp.Or(o.Source, SourceDefault)
	o.BatchSize = cmp.Or(o.BatchSize, BatchSizeDefault)
	o.Workers = min(cmp.Or(o.Workers, WorkersDefault), outbox.Lanes)
	o.PollInterval = cmp.Or(o.PollInterval, PollIntervalDefault)
	o.LeaseTTL = cmp.Or(o.LeaseTTL, LeaseTTLDefault)
	o.MaxBackoff = cmp.Or(o.MaxBackoff, MaxBackoffDefault)
	o.StatsInterval = cmp.Or(o.StatsInterval, StatsIntervalDefault)
	o.ShutdownGrace = cmp.Or(o.ShutdownGrace, ShutdownGraceDefault)
	o.PurgeBatch = cmp.Or(o.PurgeBatch, PurgeBatchDefault)
	o.PurgePause = cmp.Or(o.PurgePause, PurgePauseDefault)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// validate rejects settings no relay can run with; it runs after defaults,
// so a zero is already the default and only a negative value is left to
// refuse (StatsInterval may be negative: no gauges).
func (o *Options) validate() error {
	var errs []error
	for _, c := range []struct {
		name     string
		negative bool
		v        any
	}{
		{"BatchSize", o.BatchSize < 0, o.BatchSize},
		{"Workers", o.Workers < 0, o.Workers},
		{"PollInterval", o.PollInterval < 0, o.PollInterval},
		{"LeaseTTL", o.LeaseTTL < 0, o.LeaseTTL},
		{"MaxBackoff", o.MaxBackoff < 0, o.MaxBackoff},
		{"ShutdownGrace", o.ShutdownGrace < 0, o.ShutdownGrace},
		{"PurgeBatch", o.PurgeBatch < 0, o.PurgeBatch},
		{"PurgePause", o.PurgePause < 0, o.PurgePause},
	} {
		if c.negative {
			errs = append(errs, fmt.Errorf("relay: Options.%s must not be negative, got %v", c.name, c.v))
		}
	}
	return errors.Join(errs...)
}
