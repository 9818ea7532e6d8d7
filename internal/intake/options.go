package intake

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Defaults of Options: what a zero field means. internal/config documents
// the same numbers as the defaults of its settings.
const (
	BatchSizeDefault          = 1000
	BatchWaitDefault          = 20 * time.Millisecond
	PipelineDefault           = 3
	DLQTopicDefault           = "withdraw.commands.dlq"
	DLQMaxMessageBytesDefault = kafkautil.DefaultMaxMessageBytes
	ShutdownGraceDefault      = 10 * time.Second
	CommitGiveUpDefault       = 30 * time.Second
)

// Options configure an Intake. Zero values take the documented defaults.
type Options struct {
	// BatchSize is the most messages stored in one transaction (BatchSizeDefault).
	BatchSize int
	// BatchWait is the longest wait for a batch to fill after its first
	// message (BatchWaitDefault).
	BatchWait time.Duration
	// Pipeline is the most batches in flight at once (PipelineDefault): planned
	// and stored concurrently, their offsets committed in order. 1 makes the
	// intake strictly one batch at a time.
	Pipeline int
	// DLQTopic receives unidentifiable messages (DLQTopicDefault).
	DLQTopic string
	// DLQMaxMessageBytes is the dead-letter topic's max.message.bytes
	// (DLQMaxMessageBytesDefault, Kafka's default; at least 16 KiB). A dead letter takes at most
	// kafkautil.BatchBytesFor(DLQMaxMessageBytes) bytes, key, value, headers
	// and record overhead included: a larger one is truncated (see
	// docs/intake.md). The dead-letter writer's BatchBytes must be no
	// smaller (kafkautil.NewDLQWriter); if it, or the topic, still refuses
	// a dead letter as too large, the dead letter is cut further.
	DLQMaxMessageBytes int
	// Keys seals payee data at rest. Required for cancel-withdraw commands.
	Keys *pii.Keyring
	// AccountConfigured reports whether a provider account exists; commands
	// naming another are rejected with ACCOUNT_NOT_CONFIGURED. Nil accepts
	// every account. It and Rules are called from concurrent goroutines.
	AccountConfigured func(withdrawal.Channel, string) bool
	// Rules gives per-account validation limits; nil uses DefaultRules.
	Rules func(withdrawal.Channel, string) withdrawal.Rules
	// ShutdownGrace bounds the time a batch already fetched may take to
	// finish after Run's context is cancelled (ShutdownGraceDefault).
	ShutdownGrace time.Duration
	// CommitGiveUp bounds the retries of an offset commit (CommitGiveUpDefault).
	// A batch whose store step succeeded is safe: when its offsets cannot be
	// committed (typically a commit for a generation lost in a rebalance,
	// which kafka-go keeps rejecting), the intake logs a warning and goes on;
	// the batch is redelivered to the partition's next owner, and storing it
	// again is a no-op. The store step itself is never given up.
	CommitGiveUp time.Duration
	// AfterStore, when set, is called after a batch's transaction has
	// committed and before its offsets are committed, with the merchant
	// keys of the batch's valid commands (new or redelivered). cmd/consumer
	// wakes its dispatcher (NotifyDue) and relay with it, and arms the TEST
	// FAILPOINT WITHDRAW_FAILPOINT in it: a kill in exactly the window where
	// a crash makes Kafka redeliver stored commands.
	AfterStore func(merchantKeys []string)
	Logger     *slog.Logger
	Metrics    *Metrics
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

func (o *Options) defaults() {
	o.BatchSize = cmp.Or(o.BatchSize, BatchSizeDefault)
	o.BatchWait = cmp.Or(o.BatchWait, BatchWaitDefault)
	o.Pipeline = cmp.Or(o.Pipeline, PipelineDefault)
	o.DLQTopic = cmp.Or(o.DLQTopic, DLQTopicDefault)
	o.DLQMaxMessageBytes = cmp.Or(o.DLQMaxMessageBytes, DLQMaxMessageBytesDefault)
	o.ShutdownGrace = cmp.Or(o.ShutdownGrace, ShutdownGraceDefault)
	o.CommitGiveUp = cmp.Or(o.CommitGiveUp, CommitGiveUpDefault)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
}

// validate rejects settings no intake can run with; it runs after
// defaults, so a zero is already the default and only a negative or an
// out-of-range value is left to refuse.
func (o *Options) validate() error {
	var errs []error
	if o.Keys == nil {
		// Without it a cancel-withdraw command could be neither stored nor
		// rejected (it is valid): refuse to start instead of blocking later.
		errs = append(errs, errors.New("intake: a PII keyring is required"))
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"BatchSize", int64(o.BatchSize)},
		{"BatchWait", int64(o.BatchWait)},
		{"Pipeline", int64(o.Pipeline)},
		{"ShutdownGrace", int64(o.ShutdownGrace)},
		{"CommitGiveUp", int64(o.CommitGiveUp)},
	} {
		if c.v < 0 {
			errs = append(errs, fmt.Errorf("intake: Options.%s must not be negative, got %v", c.name, c.v))
		}
	}
	if o.DLQMaxMessageBytes < minDLQMaxMessageBytes {
		errs = append(errs, fmt.Errorf("intake: DLQMaxMessageBytes %d is below the minimum %d", o.DLQMaxMessageBytes, minDLQMaxMessageBytes))
	}
	return errors.Join(errs...)
}
