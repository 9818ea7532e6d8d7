package testenv

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
)

// TestProxyMySQL cuts and restores MariaDB for a pool that reaches it
// through a proxy.
func TestProxyMySQL(t *testing.T) {
	cfg, err := mysql.ParseDSN(MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, cfg.Addr)
	cfg.Addr = p.Addr()
	cfg.Timeout = 2 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("ping through the proxy: %v", err)
	}
	p.Cut()
	if err := ping(); err == nil {
		t.Fatal("ping succeeded through a cut proxy")
	}
	p.Restore()
	if err := ping(); err != nil {
		t.Fatalf("ping after Restore: %v", err)
	}
}

// TestProxyKafka produces and consumes through a Kafka proxy, and checks
// that a cut proxy cuts every connection: the metadata the client got
// through it names the proxy, not the broker.
func TestProxyKafka(t *testing.T) {
	brokers := KafkaBrokers(t)
	topic := UniqueTopic(t, "testenv.proxy")
	CreateTopic(t, topic, 1)
	p := NewKafkaProxy(t, brokers[0])

	tr := &kafka.Transport{MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.Addr()), Timeout: 3 * time.Second, Transport: tr}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("metadata through the proxy: %v", err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Host != "127.0.0.1" || md.Topics[0].Partitions[0].Leader.Port != portOf(t, p.Addr()) {
		t.Fatalf("metadata through the proxy names %+v, want only the proxy %s", md.Brokers, p.Addr())
	}

	w := &kafka.Writer{Addr: kafka.TCP(p.Addr()), Topic: topic, RequiredAcks: kafka.RequireAll, Transport: tr,
		BatchTimeout: time.Millisecond, MaxAttempts: 1, WriteTimeout: 3 * time.Second}
	defer w.Close()
	write := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return w.WriteMessages(ctx, kafka.Message{Value: []byte("x")})
	}
	if err := write(); err != nil {
		t.Fatalf("produce through the proxy: %v", err)
	}
	p.Cut()
	if err := write(); err == nil {
		t.Fatal("produce succeeded through a cut proxy")
	}
	p.Restore()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := write()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce after Restore: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A consumer group (the old connection code of kafka-go: its own
	// metadata and coordinator requests) reads both messages.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{p.Addr()}, GroupID: UniqueTopic(t, "testenv.proxy.group"),
		Topic: topic, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		if _, err := r.ReadMessage(ctx); err != nil {
			t.Fatalf("read message %d through the proxy: %v", i, err)
		}
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
