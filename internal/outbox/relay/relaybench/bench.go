// Package relaybench measures the outbox relay against a real database and
// broker: how fast one relay drains a backlog, and the delay from an
// event's commit to the broker's acknowledgement under a steady load. `go
// run ./cmd/bench all` and the benchmarks of this package's tests call it.
package relaybench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Both benchmarks want an empty outbox (a fresh database) and an existing
// topic; they run their own relay.

// BacklogResult is the outcome of BenchBacklog.
type BacklogResult struct {
	Events       int
	Duration     time.Duration // first claim to the last row marked
	EventsPerSec float64
	Calls        int // produce calls (rounds) made
}

func (r BacklogResult) String() string {
	return fmt.Sprintf("%d events in %s: %.0f events/s (%d produce calls)", r.Events, r.Duration.Round(time.Millisecond), r.EventsPerSec, r.Calls)
}

// BenchBacklog writes a backlog of n events (n/4 withdrawals with versions
// 1..4, each version in its own transactions, like real status changes),
// then starts a relay with opts on brokers/topic and measures how fast it
// drains the backlog.
func BenchBacklog(ctx context.Context, db *store.DB, brokers []string, topic string, n int, opts relay.Options) (BacklogResult, error) {
	if err := SeedBacklog(ctx, db, n, 4); err != nil {
		return BacklogResult{}, err
	}
	w := relay.NewWriter(brokers, topic)
	defer w.Close()
	opts.Metrics = relay.NewMetrics(nil)
	opts.StatsInterval = -1
	r, err := relay.New(db, w, opts)
	if err != nil {
		return BacklogResult{}, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for {
		if r.Stats().Published >= int64(n) {
			break
		}
		select {
		case <-ctx.Done():
			return BacklogResult{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	// published counts acknowledgements; wait for the marks too.
	for {
		pending, _, err := store.OutboxBacklog(ctx, db)
		if err != nil {
			return BacklogResult{}, err
		}
		if pending == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return BacklogResult{}, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(start)
	return BacklogResult{Events: n, Duration: d, EventsPerSec: float64(n) / d.Seconds(),
		Calls: int(r.Stats().ProduceCalls)}, nil
}

// SeedBacklog inserts n outbox rows: n/versions withdrawals, version 1 of
// all of them, then version 2, and so on, in transactions of 1,000 rows.
func SeedBacklog(ctx context.Context, db *store.DB, n, versions int) error {
	keys := max(n/versions, 1)
	ids := make([]string, keys)
	for i := range ids {
		ids[i] = withdrawal.NewID()
	}
	batch := make([]store.OutboxEvent, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.InTx(ctx, func(tx *store.Tx) error { return store.InsertOutbox(ctx, tx, batch) })
		batch = batch[:0]
		return err
	}
	written := 0
	for v := 1; written < n; v++ {
		for _, id := range ids {
			if written == n {
				break
			}
			rec, err := benchEvent(id, v, time.Now().UTC())
			if err != nil {
				return err
			}
			batch = append(batch, rec)
			written++
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return fmt.Errorf("seed backlog: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("seed backlog: %w", err)
	}
	return nil
}

// benchEvent is a realistic event (about 450 bytes of JSON).
func benchEvent(id string, v int, now time.Time) (store.OutboxEvent, error) {
	return outbox.Record(withdrawal.Event{
		EventID: withdrawal.NewID(), Type: withdrawal.EventSubmitted, WithdrawalID: id, Version: v,
		Channel: "wechatpay_platform", Account: "default", OutRequestNo: "20190611222222222200000000012122",
		State: "SUBMITTED", PreviousState: "SUBMITTING", ProviderStatus: "CREATE_SUCCESS",
		ProviderRef: "1000000000000000000000000000001", Amount: 12345,
		OccurredAt: withdrawal.FormatEventTime(now),
	}, now)
}

// LatencyResult is the outcome of BenchLatency: delays from the commit of
// an event's transaction to the broker's acknowledgement of it.
type LatencyResult struct {
	Events        int
	P50, P99, Max time.Duration
}

func (r LatencyResult) String() string {
	return fmt.Sprintf("%d events: commit→ack p50 %s, p99 %s, max %s", r.Events,
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond))
}

// BenchLatency commits rate events per second (in transactions of rate/100
// events every 10ms, calling Notify after each commit as the services do)
// for duration, with a relay running, and reports the delay from each
// commit to its acknowledgement.
func BenchLatency(ctx context.Context, db *store.DB, brokers []string, topic string, rate int, duration time.Duration, opts relay.Options) (LatencyResult, error) {
	w := relay.NewWriter(brokers, topic)
	defer w.Close()
	aw := &ackWriter{Writer: w, acked: map[string]time.Time{}}
	opts.Metrics = relay.NewMetrics(nil)
	opts.StatsInterval = -1
	r, err := relay.New(db, aw, opts)
	if err != nil {
		return LatencyResult{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond) // lanes claimed

	perTick := max(rate/100, 1)
	committed := map[string]time.Time{}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return LatencyResult{}, ctx.Err()
		case <-tick.C:
		}
		now := time.Now().UTC()
		rows := make([]store.OutboxEvent, perTick)
		for i := range rows {
			rec, err := benchEvent(withdrawal.NewID(), 1, now)
			if err != nil {
				return LatencyResult{}, err
			}
			rows[i] = rec
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return store.InsertOutbox(ctx, tx, rows) }); err != nil {
			return LatencyResult{}, err
		}
		at := time.Now()
		for _, row := range rows {
			committed[row.EventID] = at
		}
		r.Notify()
	}
	deadline := time.Now().Add(30 * time.Second)
	for aw.count() < len(committed) {
		if time.Now().After(deadline) {
			return LatencyResult{}, errors.New("bench latency: events not acknowledged after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	aw.mu.Lock()
	defer aw.mu.Unlock()
	delays := make([]time.Duration, 0, len(committed))
	for id, c := range committed {
		delays = append(delays, aw.acked[id].Sub(c))
	}
	slices.Sort(delays)
	q := func(p float64) time.Duration { return delays[min(int(p*float64(len(delays))), len(delays)-1)] }
	return LatencyResult{Events: len(delays), P50: q(0.50), P99: q(0.99), Max: delays[len(delays)-1]}, nil
}

// ackWriter notes when each event was first acknowledged.
type ackWriter struct {
	relay.Writer
	mu    sync.Mutex
	acked map[string]time.Time
}

func (a *ackWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := a.Writer.WriteMessages(ctx, msgs...)
	now := time.Now()
	var perMsg kafka.WriteErrors
	errors.As(err, &perMsg)
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, m := range msgs {
		if err != nil && (len(perMsg) != len(msgs) || perMsg[i] != nil) {
			continue
		}
		var id string
		for _, h := range m.Headers {
			if h.Key == "ce_id" {
				id = string(h.Value)
			}
		}
		if _, ok := a.acked[id]; !ok {
			a.acked[id] = now
		}
	}
	return err
}

func (a *ackWriter) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}
