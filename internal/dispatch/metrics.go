package dispatch

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dispatcher's Prometheus metrics.
type Metrics struct {
	inFlight        prometheus.Gauge
	requestDuration *prometheus.HistogramVec
	requests        *prometheus.CounterVec
	claims          prometheus.Counter
	recordBatch     prometheus.Histogram
	leaseExpiries   prometheus.Counter
	rateLimitWait   *prometheus.HistogramVec
	throttled       *prometheus.GaugeVec
	// series caches the two series of each label combination of provider
	// calls: a handful of combinations, and the vectors' lookup (hashing
	// four labels under a lock) showed in the per-call profile.
	series sync.Map // callLabels → callSeries
}

// callLabels are the labels of one provider call's series.
type callLabels struct{ channel, op, kind, code string }

// callSeries are the series a provider call feeds.
type callSeries struct {
	duration prometheus.Observer
	count    prometheus.Counter
}

// call returns the series of a call's labels.
func (m *Metrics) call(l callLabels) callSeries {
	if s, ok := m.series.Load(l); ok {
		return s.(callSeries)
	}
	s := callSeries{duration: m.requestDuration.WithLabelValues(l.channel, l.op, l.kind),
		count: m.requests.WithLabelValues(l.channel, l.op, l.kind, l.code)}
	m.series.Store(l, s)
	return s
}

// NewMetrics registers the dispatcher's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_dispatch_in_flight",
			Help: "Provider calls in flight in this instance.",
		}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "withdraw_provider_request_duration_seconds",
			Help:    "Duration of provider calls by channel, operation and outcome kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"channel", "operation", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_provider_requests_total",
			Help: "Provider calls by channel, operation, outcome kind and provider code.",
		}, []string{"channel", "operation", "outcome", "code"}),
		recordBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_dispatch_record_batch_size",
			Help:    "Provider answers written per transaction when several finished together.",
			Buckets: []float64{2, 4, 8, 16, 32, 64},
		}),
		claims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_dispatch_claims_total",
			Help: "Withdrawals claimed for a provider call.",
		}),
		leaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_dispatch_lease_expiries_total",
			Help: "Claims whose lease expired (a crashed or stuck instance); each became UNKNOWN.",
		}),
		rateLimitWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "withdraw_dispatch_rate_limit_wait_seconds",
			Help:    "Time spent waiting for the provider account's rate limit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"account"}),
		throttled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "withdraw_dispatch_rate_limit_per_second",
			Help: "Current rate limit per provider account (lowered after 429, recovering gradually).",
		}, []string{"account"}),
	}
	if reg != nil {
		reg.MustRegister(m.inFlight, m.requestDuration, m.requests, m.claims, m.recordBatch, m.leaseExpiries, m.rateLimitWait, m.throttled)
	}
	return m
}
