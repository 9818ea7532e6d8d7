package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the relay's Prometheus metrics. Pending rows and the age of
// the oldest one describe the whole outbox (every instance reports the same
// figure); the others count this instance's work.
type Metrics struct {
	pending      prometheus.Gauge
	oldestAge    prometheus.Gauge
	lanesHeld    prometheus.Gauge
	published    prometheus.Counter
	latency      prometheus.Histogram
	errors       *prometheus.CounterVec
	purged       prometheus.Counter
	batchSize    prometheus.Histogram
	publishCalls prometheus.Counter
}

// Operations, the "op" label of withdraw_outbox_errors_total.
const (
	OpClaim   = "claim"   // reading pending rows
	OpPublish = "publish" // a message the broker did not acknowledge
	OpMark    = "mark"    // marking acknowledged rows published
	OpLease   = "lease"   // claiming or renewing lane leases
	OpStats   = "stats"   // refreshing the pending gauges
	OpPurge   = "purge"   // deleting old published rows
)

// NewMetrics registers the relay's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_outbox_pending_rows",
			Help: "Outbox rows not yet published (whole table, refreshed periodically).",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_outbox_oldest_pending_age_seconds",
			Help: "Age of the oldest unpublished outbox row, 0 when none (refreshed periodically).",
		}),
		lanesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_outbox_lanes_held",
			Help: "Outbox lanes this relay instance currently leases.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_outbox_published_total",
			Help: "Outbox events acknowledged by the broker (a re-publication after a crash counts again).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_outbox_publish_latency_seconds",
			Help:    "Time from an outbox row's created_at (its transaction) to the broker's acknowledgement.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_outbox_errors_total",
			Help: "Relay errors by operation (claim, publish, mark, lease, stats, purge).",
		}, []string{"op"}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_outbox_purged_total",
			Help: "Published outbox rows deleted after the retention period.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_outbox_claim_rows",
			Help:    "Rows read per claim (0 excluded).",
			Buckets: []float64{1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000},
		}),
		publishCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_outbox_publish_calls_total",
			Help: "Produce calls (one per round of distinct keys) made by the relay.",
		}),
	}
	for _, op := range []string{OpClaim, OpPublish, OpMark, OpLease, OpStats, OpPurge} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.pending, m.oldestAge, m.lanesHeld, m.published, m.latency, m.errors,
			m.purged, m.batchSize, m.publishCalls)
	}
	return m
}
