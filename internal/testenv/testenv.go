// Package testenv connects integration tests to the local test environment
// (MariaDB + Kafka) started by deploy/local/env.sh, or to any servers named by
// WITHDRAW_MYSQL_DSN and WITHDRAW_KAFKA_BROKERS.
//
// Start it and export the variables with:
//
//	make env-up
//	eval "$(deploy/local/env.sh env)"
//
// Without the variables, integration tests are skipped under -short and fail
// otherwise, so a forgotten env never looks like a green run.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
)

// Environment variables read by this package (printed by `env.sh env`).
const (
	EnvMySQLDSN     = "WITHDRAW_MYSQL_DSN"
	EnvKafkaBrokers = "WITHDRAW_KAFKA_BROKERS"
)

// Addresses of the servers that deploy/local/env.sh runs. The Stop/Start
// helpers only make sense when the tests point at these.
const (
	LocalMySQLAddr   = "127.0.0.1:3307"
	LocalKafkaBroker = "127.0.0.1:19092"
)

const howToStart = `start the local test env first:
	make env-up
	eval "$(deploy/local/env.sh env)"
(or set it to your own server; run with -short to skip integration tests)`

// MySQLDSN returns WITHDRAW_MYSQL_DSN. When it is unset the test is skipped
// under -short and fails otherwise.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	return requireEnv(t, EnvMySQLDSN)
}

// KafkaBrokers returns the comma-separated WITHDRAW_KAFKA_BROKERS as a slice,
// with the same skip/fail rule as MySQLDSN.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	var brokers []string
	for _, b := range strings.Split(requireEnv(t, EnvKafkaBrokers), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		t.Fatalf("testenv: %s lists no brokers", EnvKafkaBrokers)
	}
	return brokers
}

func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v != "" {
		return v
	}
	if testing.Short() {
		t.Skipf("testenv: %s not set; integration test skipped in -short mode", name)
	}
	t.Fatalf("testenv: %s is not set; %s", name, howToStart)
	return ""
}

// FreshDatabase creates an empty database withdraw_test_<random> on the
// MySQLDSN server and returns a DSN for it with the same user and options.
// The database is dropped when the test ends.
func FreshDatabase(t testing.TB) string {
	t.Helper()
	base := MySQLDSN(t)
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", EnvMySQLDSN, err)
	}
	name := "withdraw_test_" + randomHex(t, 6)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := execAdmin(ctx, cfg, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Best effort: a test that stopped the server may leave it behind,
		// which is harmless (the name is random).
		if err := execAdmin(ctx, cfg, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})

	fresh := cfg.Clone()
	fresh.DBName = name
	return fresh.FormatDSN()
}

// execAdmin runs one statement on a short-lived connection to the server of
// cfg (its database is irrelevant to CREATE/DROP DATABASE).
func execAdmin(ctx context.Context, cfg *mysql.Config, stmt string) error {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// UniqueTopic returns prefix + "." + random, a topic name no other test uses.
// It does not create the topic (the local broker has auto-creation off); see
// CreateTopic.
func UniqueTopic(t testing.TB, prefix string) string {
	t.Helper()
	return prefix + "." + randomHex(t, 6)
}

// CreateTopic creates topic with the given number of partitions (replication
// factor 1) on the KafkaBrokers cluster, waits until every partition has a
// leader, and deletes the topic when the test ends.
func CreateTopic(t testing.TB, topic string, partitions int) {
	t.Helper()
	CreateTopicWithConfig(t, topic, partitions, nil)
}

// CreateTopicWithConfig is CreateTopic with topic-level configuration, e.g.
// {"max.message.bytes": "2097152"}.
func CreateTopicWithConfig(t testing.TB, topic string, partitions int, config map[string]string) {
	t.Helper()
	brokers := KafkaBrokers(t)
	// A Transport of our own, not kafka.DefaultTransport: its pooled
	// connections would go stale when an outage test restarts the broker.
	newClient := func() (*kafka.Client, func()) {
		tr := &kafka.Transport{}
		return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: tr},
			tr.CloseIdleConnections
	}
	client, closeClient := newClient()
	defer closeClient()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var entries []kafka.ConfigEntry
	for name, value := range config {
		entries = append(entries, kafka.ConfigEntry{ConfigName: name, ConfigValue: value})
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: entries,
	}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatalf("testenv: create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		client, closeClient := newClient()
		defer closeClient()
		resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
		if err == nil {
			err = resp.Errors[topic]
		}
		if err != nil {
			t.Logf("testenv: delete topic %s: %v", topic, err)
		}
	})

	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil &&
			len(md.Topics[0].Partitions) == partitions && allLed(md.Topics[0].Partitions) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: topic %s has no leaders after 30s (last error: %v)", topic, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLed(ps []kafka.Partition) bool {
	for _, p := range ps {
		if p.Error != nil || p.Leader.Host == "" {
			return false
		}
	}
	return true
}

// EnvScript returns the absolute path of deploy/local/env.sh, found by walking
// up from the working directory to the directory holding go.mod.
func EnvScript() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(fmt.Sprintf("testenv: getwd: %v", err))
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "deploy", "local", "env.sh")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			panic("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// StopMariaDB stops the local MariaDB (data kept) to simulate an outage. It
// skips the test unless MySQLDSN points at the local env, and registers a
// cleanup that starts the server again, so a failing test does not leave it
// down for the tests after it. Outage tests must not run in parallel with
// other database tests, including those of other packages: `go test ./...`
// runs packages concurrently.
func StopMariaDB(t testing.TB) {
	t.Helper()
	requireLocal(t, MySQLDSN(t), LocalMySQLAddr)
	t.Cleanup(func() { runEnvScript(t, "mariadb-start") })
	runEnvScript(t, "mariadb-stop")
}

// StartMariaDB starts the local MariaDB again and waits until it answers.
// Starting a running server is a no-op.
func StartMariaDB(t testing.TB) {
	t.Helper()
	requireLocal(t, MySQLDSN(t), LocalMySQLAddr)
	runEnvScript(t, "mariadb-start")
}

// StopKafka stops the local Kafka broker (data kept); see StopMariaDB.
func StopKafka(t testing.TB) {
	t.Helper()
	requireLocal(t, strings.Join(KafkaBrokers(t), ","), LocalKafkaBroker)
	t.Cleanup(func() { runEnvScript(t, "kafka-start") })
	runEnvScript(t, "kafka-stop")
}

// StartKafka starts the local Kafka broker again and waits until it serves
// metadata. Starting a running broker is a no-op.
func StartKafka(t testing.TB) {
	t.Helper()
	requireLocal(t, strings.Join(KafkaBrokers(t), ","), LocalKafkaBroker)
	runEnvScript(t, "kafka-start")
}

func requireLocal(t testing.TB, configured, local string) {
	t.Helper()
	if !strings.Contains(configured, local) {
		t.Skipf("testenv: outage test needs the local env at %s (configured: %s)", local, configured)
	}
}

func runEnvScript(t testing.TB, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", EnvScript(), cmd)
	start := time.Now()
	out, err := c.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after 3m: %w", err)
	}
	if err != nil {
		t.Fatalf("testenv: env.sh %s: %v\n%s", cmd, err, out)
	}
	t.Logf("testenv: env.sh %s took %s", cmd, time.Since(start).Round(time.Millisecond))
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return hex.EncodeToString(b)
}
