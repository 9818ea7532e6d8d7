package intake

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the intake's Prometheus metrics.
type Metrics struct {
	commands   *prometheus.CounterVec
	batchSize  prometheus.Histogram
	txDuration prometheus.Histogram
	retries    *prometheus.CounterVec
	// commitsAbandoned counts stored batches whose offset commit was given up.
	commitsAbandoned prometheus.Counter
	// deadLettersTruncated and deadLettersDropped count dead letters
	// published cut to fit the topic, and those not published at all.
	deadLettersTruncated prometheus.Counter
	deadLettersDropped   prometheus.Counter
}

// Results of a consumed command, the "result" label of
// withdraw_intake_commands_total.
const (
	ResultAccepted     = "accepted"
	ResultDuplicate    = "duplicate"
	ResultConflict     = "conflict"
	ResultRejected     = "rejected"
	ResultDeadLettered = "dead_lettered"
)

// NewMetrics registers the intake's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_intake_commands_total",
			Help: "Commands consumed, by result (accepted, duplicate, conflict, rejected, dead_lettered) and rejection reason.",
		}, []string{"result", "reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_intake_batch_size",
			Help:    "Commands per database transaction.",
			Buckets: []float64{1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000},
		}),
		txDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "withdraw_intake_transaction_duration_seconds",
			Help:    "Duration of one intake database transaction, commit included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraw_intake_retries_total",
			Help: "Retried intake steps (store, dead_letter, commit) after an error; store_collision counts immediate retries after a concurrent batch stored the same key first.",
		}, []string{"step"}),
		commitsAbandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_intake_commits_abandoned_total",
			Help: "Stored batches whose offset commit was given up after retrying (they are redelivered, and recognised as duplicates).",
		}),
		deadLettersTruncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_intake_dead_letters_truncated_total",
			Help: "Dead letters published truncated because the original did not fit the dead-letter topic (headers original_size, original_sha256).",
		}),
		deadLettersDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "withdraw_intake_dead_letters_dropped_total",
			Help: "Dead letters not published because the dead-letter topic refused even a 4 KiB truncated copy as too large (misconfigured topic; logged with the original's offset).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commands, m.batchSize, m.txDuration, m.retries, m.commitsAbandoned, m.deadLettersTruncated, m.deadLettersDropped)
	}
	return m
}
