package kafkautil

import (
	"time"

	"github.com/segmentio/kafka-go"
)

// NewGroupReader builds the intake's consumer-group reader. Offsets are
// committed explicitly (CommitInterval 0 means synchronous CommitMessages),
// and a new group starts from the oldest command: a command is never skipped.
func NewGroupReader(brokers []string, group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:                brokers,
		GroupID:                group,
		Topic:                  topic,
		MinBytes:               1,
		MaxBytes:               16 << 20,
		MaxWait:                250 * time.Millisecond, // the default 10s would delay a lone command
		QueueCapacity:          5000,                   // fetched ahead while a batch is being stored
		CommitInterval:         0,
		StartOffset:            kafka.FirstOffset,
		ReadLagInterval:        -1, // lag is computed from committed offsets elsewhere
		HeartbeatInterval:      3 * time.Second,
		SessionTimeout:         30 * time.Second,
		RebalanceTimeout:       30 * time.Second,
		JoinGroupBackoff:       time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 30 * time.Second,
	})
}

// NewWriter builds a writer that waits for every in-sync replica
// (RequireAll) and flushes small batches quickly. Both must be explicit: a
// kafka.Writer literal defaults to no acknowledgement at all, and to a 1s
// batch timeout that makes single writes slow.
func NewWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{}, // same key, same partition as a Java producer
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		// Leadership moves (a broker restart, a new topic whose partitions
		// are still being set up) answer NOT_LEADER for a moment: retry for
		// a few seconds before the caller's own retry takes over.
		MaxAttempts:            10,
		WriteBackoffMin:        100 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		WriteTimeout:           10 * time.Second,
		AllowAutoTopicCreation: false,
		// Its own transport rather than the process-wide default: metadata
		// and pooled connections are not shared with other clients, so one
		// client's stale view after a broker restart or a new topic does not
		// leak into another's.
		Transport: &kafka.Transport{MetadataTTL: 5 * time.Second},
	}
}

// DefaultMaxMessageBytes is Kafka's default max.message.bytes (the topic
// setting; message.max.bytes on the broker): the largest record batch a
// topic accepts, after compression, batch header included.
const DefaultMaxMessageBytes = 1048588

// RecordBatchMargin is what BatchBytesFor keeps free below a topic's
// max.message.bytes: room for the record-batch header (61 bytes) and for
// any difference between kafka-go's size estimate of its messages and
// their encoding.
const RecordBatchMargin = 1024

// BatchBytesFor is the largest batch, as kafka-go counts it (and as
// MessageSize counts one message), that a topic with the given
// max.message.bytes accepts: a writer's BatchBytes, and the most one message
// may take.
func BatchBytesFor(maxMessageBytes int) int {
	return maxMessageBytes - RecordBatchMargin
}

// MessageSize is an upper bound of kafka-go's size estimate of m (key,
// value, headers and per-record overhead), the figure a Writer compares with
// its BatchBytes.
func MessageSize(m kafka.Message) int {
	const perRecord = 4 + 1 + 1 + 4 + 4 + 8 // crc, magic, attributes, key and value lengths, timestamp
	const varint = 5                        // the longest 32-bit varint
	n := perRecord + len(m.Key) + len(m.Value) + varint
	for _, h := range m.Headers {
		n += HeaderSize(h)
	}
	return n
}

// HeaderSize is MessageSize's share for one header.
func HeaderSize(h kafka.Header) int {
	return 5 + len(h.Key) + 5 + len(h.Value)
}

// NewDLQWriter is NewWriter (no topic: each message names it) for a
// dead-letter topic whose max.message.bytes is maxMessageBytes: its
// BatchBytes is BatchBytesFor(maxMessageBytes), so that a batch the writer
// accepts is one the topic accepts too.
func NewDLQWriter(brokers []string, maxMessageBytes int) *kafka.Writer {
	w := NewWriter(brokers, "")
	w.BatchBytes = int64(BatchBytesFor(maxMessageBytes))
	return w
}
