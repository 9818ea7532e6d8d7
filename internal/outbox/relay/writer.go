package relay

import (
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
)

// NewWriter builds the relay's writer of topic: kafkautil.NewWriter
// (RequireAll, Murmur2 keys, its own transport) with batches sized for the
// relay. A relay call holds one message per key and the call's answer is
// awaited before the next, so waiting long for a batch to fill only adds
// latency: the batch timeout is 2ms. A partition's batch is capped by
// BatchBytes at 1,000,000 bytes, under the broker's default max.message.bytes (1 MiB).
func NewWriter(brokers []string, topic string) *kafka.Writer {
	w := kafkautil.NewWriter(brokers, topic)
	w.BatchSize = 2000
	w.BatchBytes = 1_000_000
	w.BatchTimeout = 2 * time.Millisecond
	return w
}
