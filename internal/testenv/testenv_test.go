package testenv

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
)

// These tests prove that the env started by `make env-up` works end to end.

func TestEnvScriptFound(t *testing.T) {
	p := EnvScript()
	if !filepath.IsAbs(p) {
		t.Fatalf("EnvScript() = %q, want an absolute path", p)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

func TestMariaDB(t *testing.T) {
	db := openDB(t, MySQLDSN(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatalf("SELECT VERSION(): %v", err)
	}
	t.Logf("server version %s", version)

	// A fresh database is usable (CREATE/INSERT/SELECT) and dropped afterwards.
	dsn := FreshDatabase(t)
	fresh := openDB(t, dsn)
	var name string
	if err := fresh.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "withdraw_test_") {
		t.Fatalf("fresh database is %q, want withdraw_test_*", name)
	}
	if _, err := fresh.ExecContext(ctx, `CREATE TABLE t (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL);
		INSERT INTO t VALUES (1, UTC_TIMESTAMP(6))`); err != nil {
		t.Fatalf("create/insert (multiStatements): %v", err)
	}
	var at time.Time // parseTime=true
	if err := fresh.QueryRowContext(ctx, "SELECT at FROM t WHERE id = 1").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Fatalf("stored time %v is %v away from now; loc=UTC not applied?", at, d)
	}
}

func TestKafka(t *testing.T) {
	brokers := KafkaBrokers(t)
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	list, err := conn.Brokers()
	if err != nil {
		t.Fatalf("Brokers(): %v", err)
	}
	if len(list) == 0 {
		t.Fatal("no brokers")
	}
	for _, b := range list {
		t.Logf("broker %d at %s:%d", b.ID, b.Host, b.Port)
	}

	// Round trip one message through a fresh topic.
	topic := UniqueTopic(t, "testenv")
	CreateTopic(t, topic, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// kafka-go defaults are slow for tests: the Writer waits up to 1s to fill
	// a batch (BatchTimeout) and the Reader's first read took ~9s with the
	// default 10s MaxWait. Short values keep this round trip ~0.5s.
	t0 := time.Now()
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello")}); err != nil {
		t.Fatalf("write: %v", err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, GroupID: topic + ".g", StartOffset: kafka.FirstOffset,
		MaxWait: 500 * time.Millisecond,
	})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	t.Logf("round trip took %s", time.Since(t0).Round(time.Millisecond))
	if string(m.Value) != "hello" {
		t.Fatalf("read %q, want hello", m.Value)
	}
}

// TestOutageStopStart stops and restarts both servers. It disrupts every
// other test using the env, so it only runs when asked:
//
//	WITHDRAW_TESTENV_OUTAGE=1 go test -run TestOutageStopStart ./internal/testenv/
func TestOutageStopStart(t *testing.T) {
	if os.Getenv("WITHDRAW_TESTENV_OUTAGE") == "" {
		t.Skip("set WITHDRAW_TESTENV_OUTAGE=1 to run (stops the shared servers)")
	}
	dsn := FreshDatabase(t)
	db := openDB(t, dsn)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (id INT PRIMARY KEY); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	topic := UniqueTopic(t, "testenv.outage")
	CreateTopic(t, topic, 1)

	StopMariaDB(t)
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if err := db.PingContext(pingCtx); err == nil {
		t.Error("ping succeeded while MariaDB is stopped")
	}
	cancel()
	StartMariaDB(t)
	var id int
	if err := db.QueryRowContext(ctx, "SELECT id FROM kept").Scan(&id); err != nil || id != 42 {
		t.Fatalf("after restart: id=%d err=%v, want the row kept", id, err)
	}

	StopKafka(t)
	if c, err := kafka.DialContext(ctx, "tcp", KafkaBrokers(t)[0]); err == nil {
		c.Close()
		t.Error("dial succeeded while Kafka is stopped")
	}
	StartKafka(t)
	conn, err := kafka.Dial("tcp", KafkaBrokers(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil || len(parts) != 1 {
		t.Fatalf("after restart: partitions=%v err=%v, want the topic kept", parts, err)
	}
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
