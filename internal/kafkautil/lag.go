package kafkautil

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Lag is one partition's consumer lag: how many messages the group has not
// committed yet.
type Lag struct {
	Partition int
	// Committed is the group's committed offset, -1 when it has none (a
	// new group then starts at the partition's first offset).
	Committed int64
	// Last is the partition's high watermark (the offset of the next
	// message to be written).
	Last int64
	// Lag is Last minus the committed offset (or minus the first offset
	// when nothing is committed); never negative.
	Lag int64
}

// GroupLag computes the lag of a consumer group on a topic from the group's
// committed offsets and the partitions' last offsets. kafka-go's Reader
// cannot report lag when it consumes with a group, and a member only knows
// its own partitions; this asks the brokers for all of them.
func GroupLag(ctx context.Context, client *kafka.Client, group, topic string) ([]Lag, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("lag: metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		var terr error
		if len(meta.Topics) == 1 {
			terr = meta.Topics[0].Error
		}
		return nil, fmt.Errorf("lag: topic %s: %v", topic, terr)
	}
	var parts []int
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
	}
	sort.Ints(parts)

	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("lag: committed offsets of group %s: %w", group, err)
	}
	if committed.Error != nil {
		return nil, fmt.Errorf("lag: committed offsets of group %s: %w", group, committed.Error)
	}
	byPart := make(map[int]int64, len(parts))
	for _, p := range committed.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("lag: committed offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		byPart[p.Partition] = p.CommittedOffset
	}

	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	offsets, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("lag: offsets of %s: %w", topic, err)
	}
	out := make([]Lag, 0, len(parts))
	for _, po := range offsets.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("lag: offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		c, ok := byPart[po.Partition]
		if !ok {
			c = -1
		}
		from := c
		if from < 0 {
			from = po.FirstOffset // the group starts at the oldest message
		}
		l := Lag{Partition: po.Partition, Committed: c, Last: po.LastOffset, Lag: max(po.LastOffset-from, 0)}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// LagCollector exports a consumer group's lag on a topic as
//
//	withdraw_intake_consumer_lag{partition}          messages not yet committed, per partition
//	withdraw_intake_consumer_group_lag               their sum
//	withdraw_intake_consumer_lag_last_success_timestamp_seconds
//	withdraw_intake_consumer_lag_errors_total
//
// refreshed in the background by Run (every instance of the group reports
// the same figures; aggregate with max, not sum). A scrape reads the last
// snapshot and never waits for the brokers.
type LagCollector struct {
	brokers      []string
	group, topic string
	log          *slog.Logger

	lagDesc, sumDesc, okDesc *prometheus.Desc
	errors                   prometheus.Counter

	mu   sync.Mutex
	lags []Lag
	ok   time.Time
}

// NewLagCollector builds the collector; register it, then start Run.
func NewLagCollector(brokers []string, group, topic string, log *slog.Logger) *LagCollector {
	if log == nil {
		log = slog.Default()
	}
	labels := prometheus.Labels{"topic": topic, "group": group}
	return &LagCollector{
		brokers: brokers, group: group, topic: topic, log: log,
		lagDesc: prometheus.NewDesc("withdraw_intake_consumer_lag",
			"Commands not yet committed by the intake's consumer group, by partition (high watermark minus committed offset).",
			[]string{"partition"}, labels),
		sumDesc: prometheus.NewDesc("withdraw_intake_consumer_group_lag",
			"Commands not yet committed by the intake's consumer group, all partitions.", nil, labels),
		okDesc: prometheus.NewDesc("withdraw_intake_consumer_lag_last_success_timestamp_seconds",
			"Unix time of the last successful consumer lag refresh.", nil, labels),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "withdraw_intake_consumer_lag_errors_total",
			Help:        "Consumer lag refreshes that failed (brokers unreachable, group coordinator moving).",
			ConstLabels: labels,
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lagDesc
	ch <- c.sumDesc
	ch <- c.okDesc
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector: the last snapshot. Before the
// first successful refresh only the error counter is reported.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	c.errors.Collect(ch)
	c.mu.Lock()
	lags, ok := c.lags, c.ok
	c.mu.Unlock()
	if ok.IsZero() {
		return
	}
	var sum int64
	for _, l := range lags {
		sum += l.Lag
		ch <- prometheus.MustNewConstMetric(c.lagDesc, prometheus.GaugeValue, float64(l.Lag), strconv.Itoa(l.Partition))
	}
	ch <- prometheus.MustNewConstMetric(c.sumDesc, prometheus.GaugeValue, float64(sum))
	ch <- prometheus.MustNewConstMetric(c.okDesc, prometheus.GaugeValue, float64(ok.UnixNano())/1e9)
}

// Refresh recomputes the lag once.
func (c *LagCollector) Refresh(ctx context.Context) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.brokers...), Timeout: 10 * time.Second, Transport: transport}
	lags, err := GroupLag(ctx, client, c.group, c.topic)
	if err != nil {
		c.errors.Inc()
		return err
	}
	c.mu.Lock()
	c.lags, c.ok = lags, time.Now()
	c.mu.Unlock()
	return nil
}

// Run refreshes every interval until ctx ends. Failures are counted and
// logged (once per streak), never fatal: the last snapshot stays exported
// and its timestamp shows its age.
func (c *LagCollector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		rctx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		err := c.Refresh(rctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			c.log.Warn("consumer lag refresh failed", "group", c.group, "topic", c.topic, "err", err)
			failing = true
		case err == nil && failing:
			c.log.Info("consumer lag refresh recovered", "group", c.group, "topic", c.topic)
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// StartLagCollector registers a LagCollector with reg and refreshes it in
// the background until ctx ends.
func StartLagCollector(ctx context.Context, reg prometheus.Registerer, brokers []string, group, topic string,
	interval time.Duration, log *slog.Logger) *LagCollector {
	c := NewLagCollector(brokers, group, topic, log)
	reg.MustRegister(c)
	go c.Run(ctx, interval)
	return c
}
