package intake_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/pii"
)

// stuckReader hands out its messages once, then blocks; every commit fails
// the way kafka-go's does for a generation lost in a rebalance.
type stuckReader struct {
	mu      sync.Mutex
	msgs    []kafka.Message
	commits atomic.Int64
}

func (r *stuckReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	r.mu.Lock()
	if len(r.msgs) > 0 {
		m := r.msgs[0]
		r.msgs = r.msgs[1:]
		r.mu.Unlock()
		return m, nil
	}
	r.mu.Unlock()
	<-ctx.Done()
	return kafka.Message{}, ctx.Err()
}

func (r *stuckReader) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	r.commits.Add(1)
	return kafka.IllegalGeneration
}

type dlqSink struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (d *dlqSink) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	d.mu.Lock()
	d.msgs = append(d.msgs, msgs...)
	d.mu.Unlock()
	return nil
}

func (d *dlqSink) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.msgs)
}

// TestIntakeKafkaErrors: how the intake rides out a failing Kafka step —
// an offset commit, a write, a fetch — with fake readers and writers, so
// no database or broker is needed.
//
// Not parallel: each subtest times the intake's retries against the wall
// clock, so they run one at a time before the parallel tests start.
func TestIntakeKafkaErrors(t *testing.T) {
	// testBundle is a running intake's handles.
	type testBundle struct {
		cancel  context.CancelFunc // stops Run
		done    <-chan error       // Run's result
		started time.Time          // just before Run started
	}

	// setup runs an intake over reader and dlq, without a database, with
	// opts and a keyring, until bundle.cancel or the end of the subtest.
	setup := func(t *testing.T, reader intake.Reader, dlq intake.Writer, opts intake.Options) (*intake.Intake, *testBundle) {
		t.Helper()
		keys, err := pii.ParseKeyring(pii.GenerateKeyLine("test"))
		if err != nil {
			t.Fatal(err)
		}
		opts.Keys = keys
		in, err := intake.New(nil, reader, dlq, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		done := make(chan error, 1)
		b := &testBundle{cancel: cancel, done: done, started: time.Now()}
		go func() { done <- in.Run(ctx) }()
		return in, b
	}

	// An offset commit that fails forever (a lost generation) is given up
	// after CommitGiveUp and the intake goes on with the next batch,
	// instead of stalling its partitions. Only dead letters are used, so no
	// database is needed.
	t.Run("CommitGivenUpDoesNotStall", func(t *testing.T) {
		// Serial: the intake must move on within a wall-clock deadline.
		reader := &stuckReader{msgs: []kafka.Message{
			{Topic: "c", Partition: 0, Offset: 0, Value: []byte("not json")},
			{Topic: "c", Partition: 0, Offset: 1, Value: []byte("not json either")},
		}}
		dlq := &dlqSink{}
		in, b := setup(t, reader, dlq, intake.Options{BatchSize: 1, CommitGiveUp: 300 * time.Millisecond})

		deadline := time.Now().Add(5 * time.Second)
		for dlq.len() < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("intake stalled: %d of 2 batches done, %d commit attempts", dlq.len(), reader.commits.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.cancel()
		if err := <-b.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := reader.commits.Load(); n < 4 {
			t.Errorf("%d commit attempts, want retries before giving up on each of 2 batches", n)
		}
		if err := in.Ready(); err != nil {
			t.Errorf("Ready() = %v after the intake moved on", err)
		}
	})

	// The other half: a failing write (here the dead-letter step; the store
	// step is retried the same way) is retried until shutdown, never given
	// up, and its offsets are not committed.
	t.Run("FailedWriteIsNeverSkipped", func(t *testing.T) {
		// Serial: reads Ready after a wall-clock wait for the retries to start.
		reader := &stuckReader{msgs: []kafka.Message{{Topic: "c", Value: []byte("not json")}}}
		failing := writerFunc(func(context.Context, ...kafka.Message) error { return errors.New("broker down") })
		in, b := setup(t, reader, failing, intake.Options{BatchSize: 1, CommitGiveUp: 100 * time.Millisecond, ShutdownGrace: 200 * time.Millisecond})
		time.Sleep(700 * time.Millisecond)
		if in.Ready() == nil {
			t.Error("Ready() = nil while the dead-letter step keeps failing")
		}
		b.cancel()
		select {
		case err := <-b.done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if n := reader.commits.Load(); n != 0 {
			t.Errorf("%d offset commits of a batch that was never written", n)
		}
	})

	// Fetch errors (a broker outage) neither end Run nor spin: they are
	// retried with backoff while Ready reports them, and the messages that
	// come after are processed.
	t.Run("FetchErrorsAreRetried", func(t *testing.T) {
		// Serial: asserts the backoff's duration against the wall clock.
		reader := &failingReader{stuckReader: stuckReader{msgs: []kafka.Message{{Topic: "c", Value: []byte("not json")}}}}
		reader.failures.Store(4)
		dlq := &dlqSink{}
		in, b := setup(t, reader, dlq, intake.Options{BatchSize: 1})

		deadline := time.Now().Add(10 * time.Second)
		sawNotReady := false
		for dlq.len() < 1 {
			sawNotReady = sawNotReady || in.Ready() != nil
			select {
			case err := <-b.done:
				t.Fatalf("Run returned %v on a fetch error", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the message after the fetch errors was not processed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Four failures with backoff from 100ms (jitter ±50%): at least 50+75+112+168ms.
		if took := time.Since(b.started); took < 300*time.Millisecond {
			t.Errorf("four fetch errors retried in %s: no backoff", took)
		}
		if !sawNotReady {
			t.Error("Ready() = nil throughout the fetch errors")
		}
		if err := in.Ready(); err != nil {
			t.Errorf("Ready() = %v after a batch went through", err)
		}
		b.cancel()
		if err := <-b.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

type writerFunc func(context.Context, ...kafka.Message) error

func (f writerFunc) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return f(ctx, msgs...)
}

// failingReader fails its first fetches the way kafka-go's group reader
// does while the brokers are unreachable, then hands out its messages.
type failingReader struct {
	stuckReader
	failures atomic.Int64 // still to fail
}

func (r *failingReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	if r.failures.Add(-1) >= 0 {
		return kafka.Message{}, errors.New("dial tcp 127.0.0.1:9092: connect: connection refused")
	}
	return r.stuckReader.FetchMessage(ctx)
}

func (r *failingReader) CommitMessages(context.Context, ...kafka.Message) error { return nil }
