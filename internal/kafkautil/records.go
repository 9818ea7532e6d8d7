package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"
)

// Client is a client with a transport of its own; the func releases its
// connections.
func Client(brokers []string) (*kafka.Client, func()) {
	tr := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second, Transport: tr}, tr.CloseIdleConnections
}

// Partitions lists a topic's partitions.
func Partitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 {
		return nil, fmt.Errorf("topic %s: not in the metadata", topic)
	}
	if err := meta.Topics[0].Error; err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	var ps []int
	for _, p := range meta.Topics[0].Partitions {
		ps = append(ps, p.ID)
	}
	sort.Ints(ps)
	if len(ps) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	return ps, nil
}

// Produce writes one record with RequireAll to the partition the services'
// writers would choose for its key (murmur2, like a Java producer), and
// returns where it landed.
func Produce(ctx context.Context, brokers []string, topic string, key, value []byte, headers []kafka.Header) (partition int, offset int64, err error) {
	client, done := Client(brokers)
	defer done()
	ps, err := Partitions(ctx, client, topic)
	if err != nil {
		return 0, 0, err
	}
	partition = (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, ps...)
	// A leadership move (a broker restart, a topic just created) answers
	// NOT_LEADER for a moment: retry retriable errors for a few seconds.
	resp, err := backoff.Retry(ctx, func() (*kafka.ProduceResponse, error) {
		// A record's key and value are readers, drained by a send: every
		// attempt needs its own, or a retry produces an empty record.
		rec := kafka.Record{Time: time.Now(), Value: kafka.NewBytes(value), Headers: headers}
		if key != nil {
			rec.Key = kafka.NewBytes(key)
		}
		resp, err := client.Produce(ctx, &kafka.ProduceRequest{
			Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(rec),
		})
		if err == nil {
			err = resp.Error
		}
		if err == nil {
			for _, rerr := range resp.RecordErrors {
				err = rerr
			}
		}
		var kerr kafka.Error
		if err != nil && !(errors.As(err, &kerr) && kerr.Temporary()) {
			return nil, backoff.Permanent(err)
		}
		return resp, err
	}, backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(10*time.Second))
	if err != nil {
		return 0, 0, fmt.Errorf("produce to %s/%d: %w", topic, partition, err)
	}
	return partition, resp.BaseOffset, nil
}

// Record is one consumed record, read completely.
type Record struct {
	Partition int
	Offset    int64
	Time      time.Time
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
}

// Header is the value of the record's header key ("" when absent).
func (r *Record) Header(key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Bounds returns a partition's first and last (next to be written) offsets.
func Bounds(ctx context.Context, client *kafka.Client, topic string, ps []int) (map[int][2]int64, error) {
	var reqs []kafka.OffsetRequest
	for _, p := range ps {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	out := map[int][2]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = [2]int64{po.FirstOffset, po.LastOffset}
	}
	return out, nil
}

// Fetch reads the records of one partition from offset (inclusive), at most
// one fetch's worth, waiting up to wait for the first one.
func Fetch(ctx context.Context, client *kafka.Client, topic string, partition int, offset int64, wait time.Duration) ([]Record, error) {
	resp, err := client.Fetch(ctx, &kafka.FetchRequest{
		Topic: topic, Partition: partition, Offset: offset, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: wait,
		IsolationLevel: kafka.ReadCommitted,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s/%d@%d: %w", topic, partition, offset, err)
	}
	var out []Record
	for {
		r, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("fetch %s/%d: %w", topic, partition, err)
		}
		rec := Record{Partition: partition, Offset: r.Offset, Time: r.Time}
		for _, h := range r.Headers { // valid only until the next ReadRecord
			rec.Headers = append(rec.Headers, kafka.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)})
		}
		if rec.Key, err = readBytes(r.Key); err == nil {
			rec.Value, err = readBytes(r.Value)
		}
		if err != nil {
			return out, err
		}
		if r.Offset >= offset { // a fetch may start at the batch before offset
			out = append(out, rec)
		}
	}
}

func readBytes(b kafka.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	return io.ReadAll(b)
}
