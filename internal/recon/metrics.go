package recon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/store"
)

// Metrics are the reconciliation's Prometheus metrics.
type Metrics struct {
	findings *prometheus.CounterVec
	failures *prometheus.CounterVec
	lastDay  *prometheus.GaugeVec
	lastDone prometheus.Gauge
	pending  prometheus.Gauge
}

// NewMetrics registers the metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_recon_items_total",
			Help: "Reconciliation items recorded, by outcome (MATCHED, NOT_OURS, MISSING, AMOUNT_MISMATCH, REFUND); a re-run adds none.",
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_recon_bill_failures_total",
			Help: "Bills that could not be read, by source and reason (not_ready, refused: hash or decryption, error).",
		}, []string{"source", "reason"}),
		lastDay: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "withdraw_recon_last_day_items",
			Help: "Items of the last day fully reconciled, by outcome.",
		}, []string{"outcome"}),
		lastDone: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_recon_last_done_timestamp_seconds",
			Help: "Unix time at which the last day was fully reconciled.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "withdraw_recon_pending_sources",
			Help: "Bills of the day last reconciled that are not read yet.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.findings, m.failures, m.lastDay, m.lastDone, m.pending)
	}
	return m
}

func (m *Metrics) observeDay(d *store.ReconDay) {
	for _, o := range store.ReconOutcomes {
		n, _ := d.Count(o)
		m.lastDay.WithLabelValues(o).Set(float64(n))
	}
	m.lastDone.Set(float64(time.Now().Unix()))
}
