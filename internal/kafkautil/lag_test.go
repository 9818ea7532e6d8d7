package kafkautil_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/testenv"
)

// TestLagCollector produces to a 3-partition topic, commits offsets for a
// group on two partitions only, and checks the per-partition lag, the sum,
// and that a partition without a commit counts from its first offset.
func TestLagCollector(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.UniqueTopic(t, "lag")
	testenv.CreateTopic(t, topic, 3)
	group := "lag-test-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 5 messages on each partition.
	w := kafkautil.NewWriter(brokers, topic)
	w.Balancer = kafka.BalancerFunc(func(msg kafka.Message, partitions ...int) int { return msg.Partition })
	defer w.Close()
	var msgs []kafka.Message
	for p := range 3 {
		for i := range 5 {
			msgs = append(msgs, kafka.Message{Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)})
		}
	}
	// A balancer picks the partition: route by the Partition field set above.
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	c := kafkautil.NewLagCollector(brokers, group, topic, nil)
	reg.MustRegister(c)
	// Before the first refresh nothing but the error counter is exported.
	if got := gather(t, reg); len(got) != 1 || got["withdraw_intake_consumer_lag_errors_total{}"] != 0 {
		t.Fatalf("before any refresh, want only the error counter: %v", got)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect := func(p0, p1, p2 int) {
		t.Helper()
		got := gather(t, reg)
		want := map[string]float64{
			"withdraw_intake_consumer_lag{partition=0}": float64(p0),
			"withdraw_intake_consumer_lag{partition=1}": float64(p1),
			"withdraw_intake_consumer_lag{partition=2}": float64(p2),
			"withdraw_intake_consumer_group_lag{}":      float64(p0 + p1 + p2),
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v; all: %v", k, g, ok, v, got)
			}
		}
		if got["withdraw_intake_consumer_lag_last_success_timestamp_seconds{}"] < float64(time.Now().Add(-time.Minute).Unix()) {
			t.Errorf("last success timestamp missing or old: %v", got)
		}
	}
	expect(5, 5, 5) // no commits at all: everything is lag

	// The group commits 5 on partition 0 and 2 on partition 1 (a simple
	// commit outside any generation, as kafka-consumer-groups --reset does).
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: 5}, {Partition: 1, Offset: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("commit %d: %v", p.Partition, p.Error)
			}
		}
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	expect(0, 3, 5)

	// Run keeps refreshing and stops with its context.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx, 100*time.Millisecond); close(done) }()
	stop()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}

	// An unreachable cluster counts an error and keeps the last snapshot.
	bad := kafkautil.NewLagCollector([]string{"127.0.0.1:1"}, group, topic, nil)
	if err := bad.Refresh(ctx); err == nil {
		t.Error("refresh against a closed port succeeded")
	}
	badReg := prometheus.NewRegistry()
	badReg.MustRegister(bad)
	if got := gather(t, badReg); got["withdraw_intake_consumer_lag_errors_total{}"] != 1 {
		t.Errorf("errors: %v", got)
	}
}

// gather renders every sample as name{labels except topic and group} → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "topic" && l.GetName() != "group" {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}
