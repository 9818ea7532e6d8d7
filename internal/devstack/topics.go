package devstack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// EndOffsets returns the next offset of every partition of topic: reading
// from there sees only what is produced afterwards.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("metadata of %s: %v", topic, meta.Topics)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64)
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) == 0 {
		return nil, errors.New("no partitions of " + topic)
	}
	return out, nil
}

// Follow reads every partition of topic from the given offsets and sends
// the messages to out until ctx ends. Per partition, order is kept.
func Follow(ctx context.Context, brokers []string, topic string, from map[int]int64, out chan<- kafka.Message) error {
	errc := make(chan error, len(from))
	for p, off := range from {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond,
		})
		if err := r.SetOffset(off); err != nil {
			_ = r.Close()
			return err
		}
		go func() {
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					errc <- err
					return
				}
				select {
				case out <- m:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			}
		}()
	}
	var first error
	for range from {
		if err := <-errc; first == nil && ctx.Err() == nil {
			first = err
		}
	}
	return first
}
