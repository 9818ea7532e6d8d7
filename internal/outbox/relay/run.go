package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/store"
)

// Start builds a relay publishing to topic on brokers with this project's
// writer settings, runs it until ctx ends, and returns it (for Ready, Notify
// and Purge) with a function that waits for it to stop. Every process
// embeds the relay through this one function (internal/app).
func Start(ctx context.Context, db *store.DB, brokers []string, topic, instance string, log *slog.Logger, reg prometheus.Registerer) (*Relay, func(), error) {
	w := NewWriter(brokers, topic)
	r, err := New(db, w, Options{Instance: instance, Logger: log, Metrics: NewMetrics(reg)})
	if err != nil {
		_ = w.Close() // nothing written yet: returns at once
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer closeWriter(w, log)
		if err := r.Run(ctx); err != nil {
			log.Error("outbox relay stopped", "err", err)
		}
	}()
	return r, func() { <-done }, nil
}

// writerCloseWait bounds the wait for the writer at shutdown.
const writerCloseWait = 2 * time.Second

// closeWriter closes the relay's writer, waiting at most writerCloseWait.
// kafka-go's Close waits for every batch still being retried, with pauses
// that nothing interrupts: with the brokers unreachable that held a
// shutdown for up to ten seconds after the relay had already given the
// batch up. Not waiting loses nothing: rows are marked published only
// after Run saw them acknowledged, so whatever the writer still holds is
// sent again by the next relay to hold the lane, a duplicate at worst.
func closeWriter(w *kafka.Writer, log *slog.Logger) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = w.Close()
	}()
	t := time.NewTimer(writerCloseWait)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		log.Warn("events writer still retrying at shutdown; not waiting for it (its rows stay unpublished and are sent again)",
			"component", "outbox-relay", "waited", writerCloseWait.String())
	}
}
