// Package intake turns withdrawal commands consumed from Kafka into stored
// withdrawals, each with its outbox event, exactly once.
//
// The loop: fetch up to BatchSize messages (waiting at most BatchWait after
// the first), write the unidentifiable ones to the dead-letter topic, store
// everything else in ONE database transaction, and only then commit the
// batch's offsets. A crash anywhere before the offset commit redelivers the
// batch, and the redelivery is recognised: the same key with the same
// parameters hash is a no-op, and rejection events have deterministic ids.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Reader is the part of a kafka-go group reader the intake uses.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Writer publishes dead letters; a *kafka.Writer with RequiredAcks set.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Options configure an Intake. Zero values take the documented defaults.
type Options struct {
	// BatchSize is the most messages stored in one transaction (default 1000).
	BatchSize int
	// BatchWait is the longest wait for a batch to fill after its first
	// message (default 20ms).
	BatchWait time.Duration
	// DLQTopic receives unidentifiable messages (default withdraw.commands.dlq).
	DLQTopic string
	// Keys seals payee data at rest. Required for cancel-withdraw commands.
	Keys *pii.Keyring
	// AccountConfigured reports whether a provider account exists; commands
	// naming another are rejected with ACCOUNT_NOT_CONFIGURED. Nil accepts
	// every account.
	AccountConfigured func(withdrawal.Channel, string) bool
	// Rules gives per-account validation limits; nil uses DefaultRules.
	Rules func(withdrawal.Channel, string) withdrawal.Rules
	// ShutdownGrace bounds the time a batch already fetched may take to
	// finish after Run's context is cancelled (default 10s).
	ShutdownGrace time.Duration
	Logger        *slog.Logger
	Metrics       *Metrics
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Intake is the command consumer. Create it with New and call Run.
type Intake struct {
	db     *store.DB
	reader Reader
	dlq    Writer
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	lastErr error // nil when the last step succeeded; /readyz reports it
}

// New builds an Intake over a migrated database, a group reader of the
// commands topic and a writer for dead letters.
func New(db *store.DB, reader Reader, dlq Writer, opts Options) (*Intake, error) {
	if opts.Keys == nil {
		// Without it a cancel-withdraw command could be neither stored nor
		// rejected (it is valid): refuse to start instead of blocking later.
		return nil, errors.New("intake: a PII keyring is required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.BatchWait <= 0 {
		opts.BatchWait = 20 * time.Millisecond
	}
	if opts.DLQTopic == "" {
		opts.DLQTopic = "withdraw.commands.dlq"
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC() }
	}
	return &Intake{db: db, reader: reader, dlq: dlq, opts: opts, log: opts.Logger.With("component", "intake")}, nil
}

// Ready reports the error of the last failed step, or nil once a step has
// succeeded since. /readyz serves it: an intake retrying a database or
// broker outage is alive but not ready.
func (in *Intake) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lastErr
}

func (in *Intake) setErr(err error) {
	in.mu.Lock()
	in.lastErr = err
	in.mu.Unlock()
}

// Run consumes until ctx is cancelled. A batch already fetched when that
// happens is finished (stored and committed) within ShutdownGrace, or
// abandoned uncommitted, to be redelivered to the next owner of its
// partitions. Run returns nil on cancellation.
func (in *Intake) Run(ctx context.Context) error {
	for {
		batch, err := in.fetchBatch(ctx)
		if len(batch) > 0 {
			// Finish the batch even when shutdown began while it filled:
			// its work is idempotent, but redoing it costs the next owner.
			// On shutdown it gets ShutdownGrace; before that, retries of an
			// outage go on for as long as the outage lasts.
			work, cancel := context.WithCancel(context.WithoutCancel(ctx))
			stop := context.AfterFunc(ctx, func() { time.AfterFunc(in.opts.ShutdownGrace, cancel) })
			perr := in.process(work, batch)
			stop()
			cancel()
			if perr != nil {
				if ctx.Err() != nil {
					in.log.Warn("batch abandoned at shutdown; it will be redelivered", "messages", len(batch), "err", perr)
					return nil
				}
				return perr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch commands: %w", err)
		}
	}
}

// fetchBatch blocks for the first message, then gathers more until the
// batch is full or BatchWait has passed.
func (in *Intake) fetchBatch(ctx context.Context) ([]kafka.Message, error) {
	first, err := in.reader.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := make([]kafka.Message, 1, in.opts.BatchSize)
	batch[0] = first
	wait, cancel := context.WithTimeout(ctx, in.opts.BatchWait)
	defer cancel()
	for len(batch) < in.opts.BatchSize {
		m, err := in.reader.FetchMessage(wait)
		if err != nil {
			if ctx.Err() != nil {
				return batch, ctx.Err()
			}
			return batch, nil // the wait is over; a fetch error will recur on the next call
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process does one batch: dead letters, one transaction, offset commit. Each
// step is retried with backoff until it succeeds or ctx ends; an error
// return means nothing was committed to Kafka.
func (in *Intake) process(ctx context.Context, batch []kafka.Message) error {
	p := in.plan(batch)
	if len(p.deadLetters) > 0 {
		if err := in.retry(ctx, "dead_letter", func() error { return in.dlq.WriteMessages(ctx, p.deadLetters...) }); err != nil {
			return err
		}
	}
	var counts map[string]int
	err := in.retry(ctx, "store", func() error {
		var err error
		counts, err = in.store(ctx, p)
		return err
	})
	if err != nil {
		return err
	}
	if err := in.retry(ctx, "commit", func() error { return in.reader.CommitMessages(ctx, batch...) }); err != nil {
		return err
	}
	in.setErr(nil)
	m := in.opts.Metrics
	m.batchSize.Observe(float64(len(batch)))
	for result, n := range counts {
		m.commands.WithLabelValues(result, "").Add(float64(n))
	}
	for _, r := range p.rejections {
		m.commands.WithLabelValues(ResultRejected, string(r.rejection.Code)).Inc()
	}
	m.commands.WithLabelValues(ResultDeadLettered, "").Add(float64(len(p.deadLetters)))
	return nil
}

// retry runs op until it succeeds or ctx ends, with exponential backoff
// capped at 5s, marking the intake not ready while it fails.
func (in *Intake) retry(ctx context.Context, step string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, op()
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		in.setErr(fmt.Errorf("intake %s: %w", step, err))
		in.opts.Metrics.retries.WithLabelValues(step).Inc()
		in.log.Warn("intake step failed; retrying", "step", step, "retry_in", next, "err", err)
	}))
	if err != nil {
		return fmt.Errorf("intake %s: %w", step, err)
	}
	return nil
}

// deadLetter wraps an unidentifiable message for the DLQ topic: the original
// key, value and headers, plus the headers DESIGN.md names.
func (in *Intake) deadLetter(m kafka.Message, reason string) kafka.Message {
	headers := append([]kafka.Header(nil), m.Headers...)
	headers = append(headers,
		kafka.Header{Key: "error", Value: []byte(reason)},
		kafka.Header{Key: "original_topic", Value: []byte(m.Topic)},
		kafka.Header{Key: "original_partition", Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: "original_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: in.opts.DLQTopic, Key: m.Key, Value: m.Value, Headers: headers}
}
