package poll

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the poller's Prometheus metrics (callbacks included).
type Metrics struct {
	queries       *prometheus.CounterVec
	changes       *prometheus.CounterVec
	sweepDuration prometheus.Histogram
	claimedPerSwp prometheus.Histogram
	dropped       prometheus.Counter
	resubmits     *prometheus.CounterVec
	callbacks     *prometheus.CounterVec
	stuck         *prometheus.GaugeVec
	dailyLastRun  prometheus.Gauge
	instances     prometheus.Gauge
	retentionRows prometheus.Counter
	dailyFailures prometheus.Counter
	sweepFailures prometheus.Counter
}

// NewMetrics registers the poller's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_poll_queries_total",
			Help: "Status queries by channel and outcome kind (ACCEPTED = found, NOT_FOUND, AMBIGUOUS, RETRY_LATER).",
		}, []string{"channel", "outcome"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_poll_status_changes_total",
			Help: "State changes applied by the poller, by previous and new state and source (query or callback).",
		}, []string{"from", "to", "source"}),
		sweepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_poll_sweep_duration_seconds",
			Help:    "Duration of one sweep: claim, queries and their records.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		claimedPerSwp: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_poll_claimed_per_sweep",
			Help:    "Withdrawals claimed by one sweep.",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_poll_results_dropped_total",
			Help: "Query results dropped because the withdrawal changed after it was claimed (another instance or a callback was first).",
		}),
		resubmits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_poll_resubmits_requested_total",
			Help: "Byte-identical re-submissions requested from the dispatcher (WeChat INIT), by channel.",
		}, []string{"channel"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_poll_callbacks_total",
			Help: "Provider callbacks by result (applied, unchanged, bad_signature, unknown_order, mismatch, ignored, error).",
		}, []string{"result"}),
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "withdraw_stuck_withdrawals",
			Help: "Withdrawals stuck beyond their limits at the last daily report, by state and reason.",
		}, []string{"state", "reason"}),
		instances: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_poll_instances",
			Help: "Pollers sharing each provider account's query rate, as this instance last counted them.",
		}),
		dailyLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_poll_daily_last_success_timestamp_seconds",
			Help: "Unix time of the last daily job (stuck report) that completed.",
		}),
		retentionRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_poll_retention_deleted_total",
			Help: "Rows deleted by the daily retention hook.",
		}),
		dailyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_poll_daily_failures_total",
			Help: "Daily jobs (stuck report or retention) that failed.",
		}),
		sweepFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_poll_sweep_failures_total",
			Help: "Sweeps whose claim failed (database errors).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.changes, m.sweepDuration, m.claimedPerSwp, m.dropped, m.resubmits,
			m.callbacks, m.stuck, m.dailyLastRun, m.instances, m.retentionRows, m.dailyFailures, m.sweepFailures)
	}
	return m
}

// Callback counts one callback with its result; package callback calls it.
func (m *Metrics) Callback(result string) { m.callbacks.WithLabelValues(result).Inc() }
