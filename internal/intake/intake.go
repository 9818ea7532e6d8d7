// Package intake turns withdrawal commands consumed from Kafka into stored
// withdrawals, each with its outbox event, exactly once.
//
// The loop: fetch up to BatchSize messages (waiting at most BatchWait after
// the first), write the unidentifiable ones to the dead-letter topic, store
// everything else in ONE database transaction, and only then commit the
// batch's offsets. Up to Pipeline batches are in flight at once; offsets are
// committed in fetch order, after every earlier batch is stored. A crash anywhere before the offset commit redelivers the
// batch, and the redelivery is recognised: the same key with the same
// parameters hash is a no-op, and rejection events have deterministic ids.
package intake

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/store"
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

// Intake is the command consumer. Create it with New and call Run.
type Intake struct {
	db     *store.DB
	reader Reader
	dlq    Writer
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	lastErr error // nil when the last step succeeded; /readyz reports it
	// fetchErr is the last fetch error, nil after a fetch succeeded.
	fetchErr   error
	fetchErrAt time.Time
}

// New builds an Intake over a migrated database, a group reader of the
// commands topic and a writer for dead letters.
func New(db *store.DB, reader Reader, dlq Writer, opts Options) (*Intake, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Intake{db: db, reader: reader, dlq: dlq, opts: opts, log: opts.Logger.With("component", "intake")}, nil
}

// fetchErrHold is how long a fetch error keeps the intake not ready. A
// reader that cannot reach the brokers reports an error every few seconds
// (kafka-go: after 3 failed joins, JoinGroupBackoff apart), while one that
// has recovered on an idle topic reports nothing at all: without a limit,
// an intake with no commands to fetch would stay not ready for good.
const fetchErrHold = 15 * time.Second

// Ready reports the error of the last failed step, or nil once a step has
// succeeded since; a fetch error counts for fetchErrHold after it was seen.
// /readyz serves it: an intake retrying a database or broker outage is
// alive but not ready.
func (in *Intake) Ready() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lastErr != nil {
		return in.lastErr
	}
	if in.fetchErr != nil && time.Since(in.fetchErrAt) < fetchErrHold {
		return in.fetchErr
	}
	return nil
}

func (in *Intake) setFetchErr(err error) {
	in.mu.Lock()
	in.fetchErr, in.fetchErrAt = err, time.Now()
	in.mu.Unlock()
}

func (in *Intake) setErr(err error) {
	in.mu.Lock()
	in.lastErr = err
	in.mu.Unlock()
}

// Run consumes until ctx is cancelled. Up to Pipeline batches are in
// flight at once: each is planned (decoded, validated, its rows built) and
// stored concurrently with the others, while offsets are committed strictly
// in fetch order, each batch's only after its own and every earlier batch's
// transaction has committed. Batches already fetched when ctx is cancelled
// are finished (stored and committed) within ShutdownGrace, or abandoned
// uncommitted, to be redelivered to the next owner of their partitions.
// Errors of the brokers and of the database are retried, with backoff, for
// as long as they last (Ready reports them); Run returns nil once ctx is
// cancelled.
func (in *Intake) Run(ctx context.Context) error {
	// Finish batches even when shutdown began while they filled: their work
	// is idempotent, but redoing it costs the next owner. On shutdown they
	// get ShutdownGrace; before that, retries of an outage go on for as long
	// as the outage lasts.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(in.opts.ShutdownGrace, cancelWork) })
	defer stop()

	slots := make(chan struct{}, in.opts.Pipeline)
	queue := make(chan *inflight, in.opts.Pipeline) // fetch order
	finished := make(chan error, 1)
	go func() {
		var failed error
		for j := range queue {
			<-j.done
			if failed == nil {
				if failed = j.err; failed == nil {
					failed = in.finish(work, j)
				}
				if failed != nil {
					in.log.Warn("batch abandoned at shutdown; it will be redelivered", "messages", len(j.batch), "err", failed)
				}
			}
			// After a failure no later batch is committed: their offsets
			// would cover the failed one's.
			<-slots
		}
		finished <- failed
	}()

	// A fetch error (the brokers are unreachable, the group coordinator
	// moves) is retried for as long as it lasts: the reader reconnects and
	// rejoins the group by itself, and nothing is lost, since offsets are
	// committed only after the store step.
	fetchBackoff := newBackoff()
	fetchFailures := 0
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		batch, err := in.fetchBatch(ctx)
		if len(batch) > 0 {
			j := &inflight{batch: batch, done: make(chan struct{})}
			go func() {
				defer close(j.done)
				j.plan = in.plan(j.batch)
				j.counts, j.err = in.prepare(work, j.plan)
			}()
			queue <- j
		} else {
			<-slots
		}
		switch {
		case err == nil:
			if fetchFailures > 0 {
				in.log.Info("fetching commands again", "after_failures", fetchFailures)
			}
			fetchFailures = 0
			fetchBackoff.Reset()
			in.setFetchErr(nil)
		case ctx.Err() == nil:
			fetchFailures++
			next := fetchBackoff.NextBackOff()
			in.setFetchErr(fmt.Errorf("intake fetch: %w", err))
			in.opts.Metrics.retries.WithLabelValues("fetch").Inc()
			in.log.Warn("fetching commands failed; retrying", "attempt", fetchFailures, "retry_in", next, "err", err)
			t := time.NewTimer(next)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	close(queue)
	if failed := <-finished; failed != nil && ctx.Err() == nil {
		return failed
	}
	return nil
}

// newBackoff is the intake's retry schedule: exponential from 100ms,
// capped at 5s, with jitter.
func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	return b
}

// inflight is a batch between fetch and offset commit.
type inflight struct {
	batch  []kafka.Message
	plan   plan
	counts map[string]int
	err    error         // of prepare
	done   chan struct{} // closed when plan, counts and err are set
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

// commitAttemptTimeout bounds one CommitMessages call. kafka-go queues a
// commit for the reader's current generation and waits for its answer with
// no timeout of its own; between generations nothing answers.
const commitAttemptTimeout = 10 * time.Second

// prepare writes a planned batch: dead letters, then one transaction. Each
// step is retried with backoff until it succeeds or ctx ends. Batches are
// prepared concurrently; two that carry the same new key collide on the
// unique index, and the loser's retry finds the winner's row.
func (in *Intake) prepare(ctx context.Context, p plan) (map[string]int, error) {
	if len(p.deadLetters) > 0 {
		if err := in.writeDeadLetters(ctx, p.deadLetters); err != nil {
			return nil, err
		}
	}
	var counts map[string]int
	err := in.retry(ctx, "store", func() error {
		// A duplicate key or a deadlock: another in-flight batch committed
		// the same new key first (InnoDB made this one wait for it), and
		// looking again right away finds the row.
		return store.RetryCollided(func() error {
			var err error
			counts, err = in.store(ctx, p)
			return err
		}, in.opts.Metrics.retries.WithLabelValues("store_collision").Inc)
	})
	return counts, err
}

// finish commits the offsets of a prepared batch, retried for at most
// CommitGiveUp (see Options), and counts it. An error return means ctx
// ended before the commit.
func (in *Intake) finish(ctx context.Context, j *inflight) error {
	if in.opts.AfterStore != nil {
		in.opts.AfterStore(j.plan.merchantKeys())
	}
	err := in.retryFor(ctx, "commit", in.opts.CommitGiveUp, func() error {
		attempt, cancel := context.WithTimeout(ctx, commitAttemptTimeout)
		defer cancel()
		return in.reader.CommitMessages(attempt, j.batch...)
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Stored but not committed: the partitions' next owner gets the
		// batch again and finds every command already there.
		in.opts.Metrics.commitsAbandoned.Inc()
		in.log.Warn("offset commit given up; the stored batch will be redelivered and recognised",
			"messages", len(j.batch), "after", in.opts.CommitGiveUp, "err", err)
	}
	in.setErr(nil)
	m := in.opts.Metrics
	m.batchSize.Observe(float64(len(j.batch)))
	for result, n := range j.counts {
		m.commands.WithLabelValues(result, "").Add(float64(n))
	}
	for _, r := range j.plan.rejections {
		m.commands.WithLabelValues(ResultRejected, string(r.rejection.Code)).Inc()
	}
	m.commands.WithLabelValues(ResultDeadLettered, "").Add(float64(len(j.plan.deadLetters)))
	for _, d := range j.plan.deadLetters {
		switch {
		case d.dropped:
			m.deadLettersDropped.Inc()
		case d.truncated:
			m.deadLettersTruncated.Inc()
		}
	}
	return nil
}

// retry runs op until it succeeds or ctx ends, with exponential backoff
// capped at 5s, marking the intake not ready while it fails.
func (in *Intake) retry(ctx context.Context, step string, op func() error) error {
	return in.retryFor(ctx, step, 0, op)
}

// retryFor is retry that also gives up after maxElapsed (0: never).
func (in *Intake) retryFor(ctx context.Context, step string, maxElapsed time.Duration, op func() error) error {
	b := newBackoff()
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, op()
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(maxElapsed), backoff.WithNotify(func(err error, next time.Duration) {
		in.setErr(fmt.Errorf("intake %s: %w", step, err))
		in.opts.Metrics.retries.WithLabelValues(step).Inc()
		in.log.Warn("intake step failed; retrying", "step", step, "retry_in", next, "err", err)
	}))
	if err != nil {
		return fmt.Errorf("intake %s: %w", step, err)
	}
	return nil
}
