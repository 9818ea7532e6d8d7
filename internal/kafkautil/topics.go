// Package kafkautil holds the Kafka plumbing shared by the binaries:
// creating the topics, and building readers and writers with this project's
// settings.
package kafkautil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"
)

// TopicSpec is a topic to create when it is missing.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	// MaxMessageBytes, when positive, sets the topic's max.message.bytes at
	// creation (an existing topic keeps its own).
	MaxMessageBytes int
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left as they are (their partition count is not changed: that would move
// keys between partitions and break per-key order).
func EnsureTopics(ctx context.Context, brokers []string, specs []TopicSpec) error {
	// A transport of its own: the shared default keeps pooled connections
	// that go stale across a broker restart.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second, Transport: transport}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.ReplicationFactor}
		if s.MaxMessageBytes > 0 {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(s.MaxMessageBytes)}}
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for topic, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", topic, terr))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return waitForLeaders(ctx, client, specs)
}

// waitForLeaders returns once every partition of the topics has a leader, so
// that the first write after start-up does not fail.
func waitForLeaders(ctx context.Context, client *kafka.Client, specs []TopicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && allLed(meta.Topics) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v have no leaders after 30s (last error: %v)", names, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func allLed(topics []kafka.Topic) bool {
	for _, t := range topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Leader.Host == "" || p.Error != nil {
				return false
			}
		}
	}
	return true
}

// Ping checks that at least one broker accepts a connection and answers a
// metadata request; /readyz uses it.
func Ping(ctx context.Context, brokers []string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var errs []error
	for _, b := range brokers {
		d := kafka.Dialer{Timeout: 3 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		_, err = conn.Brokers()
		conn.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no kafka broker answers: %w", errors.Join(errs...))
}

// EnsureTopicsRetrying is EnsureTopics retried until it succeeds or ctx
// ends, so that a service can start while the brokers are unreachable.
// Each failure is passed to report and logged as a warning; the pause
// between attempts grows from 1s to 30s. It returns ctx's error when ctx
// ends first.
func EnsureTopicsRetrying(ctx context.Context, brokers []string, specs []TopicSpec, log *slog.Logger, report func(error)) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	b.MaxInterval = 30 * time.Second
	for attempt := 1; ; attempt++ {
		err := EnsureTopics(ctx, brokers, specs)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		report(err)
		if err == nil {
			if attempt > 1 {
				log.Info("kafka topics ready", "attempts", attempt)
			}
			return nil
		}
		wait := b.NextBackOff()
		log.Warn("kafka topics not ready; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
