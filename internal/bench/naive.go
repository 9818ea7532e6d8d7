package bench

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Naive is the consumer the intake is measured against: what one would
// write first. Per message it opens a transaction, looks the key up, inserts
// the row and its outbox event (or a rejection event), commits, and then
// commits that message's offset. Dead letters are written one at a time.
type Naive struct {
	DB     *store.DB
	Reader intake.Reader
	DLQ    intake.Writer
	Topic  string // the dead-letter topic
	Keys   *pii.Keyring
}

// Run consumes n messages and returns when the n-th offset is committed.
func (c *Naive) Run(ctx context.Context, n int) error {
	for range n {
		m, err := c.Reader.FetchMessage(ctx)
		if err != nil {
			return err
		}
		if err := c.one(ctx, m); err != nil {
			return err
		}
		if err := c.Reader.CommitMessages(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (c *Naive) one(ctx context.Context, m kafka.Message) error {
	now := time.Now().UTC()
	cmd, err := withdrawal.Decode(m.Value)
	var undecodable *withdrawal.Undecodable
	var rejection *withdrawal.Rejection
	switch {
	case errors.As(err, &undecodable):
		return c.DLQ.WriteMessages(ctx, kafka.Message{Topic: c.Topic, Key: m.Key, Value: m.Value, Headers: []kafka.Header{
			{Key: "error", Value: []byte(undecodable.Reason)},
			{Key: "original_topic", Value: []byte(m.Topic)},
			{Key: "original_partition", Value: []byte(strconv.Itoa(m.Partition))},
			{Key: "original_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		}})
	case errors.As(err, &rejection):
	case err != nil:
		return err
	default:
		rejection = withdrawal.Validate(cmd)
	}
	hash, _ := withdrawal.ParamsHash(cmd)
	return c.DB.InTx(ctx, func(tx *store.Tx) error {
		if rejection != nil {
			rec, err := outbox.Record(withdrawal.Event{
				EventID: withdrawal.RejectionEventID(cmd.Key(), hash, rejection.Code), Type: withdrawal.EventRejected,
				Channel: cmd.Channel, Account: cmd.Account, OutRequestNo: cmd.OutRequestNo,
				State: withdrawal.StateRejected, ReasonCode: string(rejection.Code), Reason: rejection.Reason,
				OccurredAt: withdrawal.FormatEventTime(now),
			}, now)
			if err != nil {
				return err
			}
			return store.InsertOutbox(ctx, tx, []store.OutboxEvent{rec})
		}
		found, err := store.FindKeyHashes(ctx, tx, []string{cmd.OutRequestNo})
		if err != nil {
			return err
		}
		for _, f := range found {
			if f.Channel == string(cmd.Channel) && f.Account == cmd.Account {
				return nil // a redelivery (conflicts are not in this workload)
			}
		}
		row, err := store.NewWithdrawalRow(withdrawal.NewID(), cmd, hash, c.Keys, now)
		if err != nil {
			return err
		}
		rec, err := outbox.Record(row.Event(withdrawal.NewID(), "", now), now)
		if err != nil {
			return err
		}
		if err := store.InsertWithdrawals(ctx, tx, []store.Withdrawal{row}); err != nil {
			return err
		}
		return store.InsertOutbox(ctx, tx, []store.OutboxEvent{rec})
	})
}

// Timed wraps an intake.Reader and records when the first message was
// fetched and when the offsets of the last of `want` messages were
// committed: the span over which a consumer's rate is measured.
type Timed struct {
	intake.Reader
	Want int

	first, last time.Time
	committed   int
	done        chan struct{}
}

// NewTimed wraps r to wait for want committed messages.
func NewTimed(r intake.Reader, want int) *Timed {
	return &Timed{Reader: r, Want: want, done: make(chan struct{})}
}

// FetchMessage implements intake.Reader.
func (t *Timed) FetchMessage(ctx context.Context) (kafka.Message, error) {
	m, err := t.Reader.FetchMessage(ctx)
	if err == nil && t.first.IsZero() {
		t.first = time.Now()
	}
	return m, err
}

// CommitMessages implements intake.Reader. The intake calls it from one
// goroutine, so no lock is needed.
func (t *Timed) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := t.Reader.CommitMessages(ctx, msgs...)
	if err == nil && t.committed < t.Want {
		t.committed += len(msgs)
		if t.committed >= t.Want {
			t.last = time.Now()
			close(t.done)
		}
	}
	return err
}

// Done is closed once Want messages are committed.
func (t *Timed) Done() <-chan struct{} { return t.done }

// Elapsed is the time from the first fetch to the last commit.
func (t *Timed) Elapsed() time.Duration { return t.last.Sub(t.first) }
