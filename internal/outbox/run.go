package outbox

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/store"
)

// Start builds a relay publishing to topic on brokers with this project's
// writer settings, runs it until ctx ends, and returns it (for Ready, Notify
// and Purge) with a function that waits for it to stop. Both binaries embed
// the relay through this one function.
func Start(ctx context.Context, db *store.DB, brokers []string, topic, instance string, log *slog.Logger, reg prometheus.Registerer) (*Relay, func()) {
	w := NewWriter(brokers, topic)
	r := NewRelay(db, w, RelayOptions{Instance: instance, Logger: log, Metrics: NewMetrics(reg)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		if err := r.Run(ctx); err != nil {
			log.Error("outbox relay stopped", "err", err)
		}
	}()
	return r, func() { <-done }
}
