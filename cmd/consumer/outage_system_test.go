package main

// Outage system tests that run in the normal suite: the consumer reaches
// Kafka or MariaDB through a testenv proxy, and the test cuts and restores
// the proxy instead of stopping the shared servers.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// dispatchEnv starts the provider sandbox and returns the consumer
// settings that make it dispatch there.
func (s *system) dispatchEnv() []string {
	s.t.Helper()
	env := providertest.Start(s.t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
	s.sandbox = env
	cfg, err := yaml.Marshal(env.Config)
	if err != nil {
		s.t.Fatal(err)
	}
	cfgFile := filepath.Join(s.t.TempDir(), "withdraw.yaml")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return []string{"WITHDRAW_DISPATCH=true", "WITHDRAW_CONFIG=" + cfgFile, "WITHDRAW_SCHEDULE=accelerated"}
}

// kafkaProxy returns a proxy to the broker (cut when down) and the setting
// that points the consumer at it.
func (s *system) kafkaProxy(down bool) (*testenv.Proxy, string) {
	s.t.Helper()
	p := testenv.NewKafkaProxy(s.t, s.brokers[0])
	if down {
		p.Cut()
	}
	return p, "WITHDRAW_KAFKA_BROKERS=" + p.Addr()
}

// mysqlProxy returns a proxy to MariaDB (cut when down) and the setting
// that points the consumer at it.
func (s *system) mysqlProxy(down bool) (*testenv.Proxy, string) {
	s.t.Helper()
	cfg, err := mysql.ParseDSN(s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	p := testenv.NewProxy(s.t, cfg.Addr)
	if down {
		p.Cut()
	}
	cfg.Addr = p.Addr()
	return p, "WITHDRAW_MYSQL_DSN=" + cfg.FormatDSN()
}

// freshTopics makes the consumer use topics that do not exist yet (it
// creates them) and deletes them when the test ends.
func (s *system) freshTopics() []string {
	s.t.Helper()
	s.commands = testenv.UniqueTopic(s.t, "systest.commands")
	s.dlq = testenv.UniqueTopic(s.t, "systest.dlq")
	s.events = testenv.UniqueTopic(s.t, "systest.events")
	topics := []string{s.commands, s.dlq, s.events}
	s.t.Cleanup(func() {
		tr := &kafka.Transport{}
		defer tr.CloseIdleConnections()
		client := &kafka.Client{Addr: kafka.TCP(s.brokers...), Timeout: 10 * time.Second, Transport: tr}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
			s.t.Logf("delete topics %v: %v", topics, err)
		}
	})
	return []string{"WITHDRAW_COMMANDS_TOPIC=" + s.commands, "WITHDRAW_DLQ_TOPIC=" + s.dlq,
		"WITHDRAW_EVENTS_TOPIC=" + s.events, "WITHDRAW_TOPIC_PARTITIONS=3"}
}

// get returns the status and body of GET path (status 0 if it does not
// answer).
func (c *consumer) get(path string) (int, string) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + c.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stayUp fails the test if the process exits within d.
func (c *consumer) stayUp(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-c.exited:
		t.Fatalf("consumer %s exited: %v", c.name, c.err)
	case <-time.After(d):
	}
}

// waitNotReady waits until /readyz answers 503 naming check as failing,
// while /healthz answers 200.
func waitNotReady(t *testing.T, c *consumer, check string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := c.get("/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, `"`+check+`"`) && !strings.Contains(body, `"`+check+`":"ok"`) {
			t.Logf("/readyz = %d %s", code, strings.TrimSpace(body))
			break
		}
		select {
		case <-c.exited:
			t.Fatalf("consumer %s exited: %v", c.name, c.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after %s, want 503 with %s failing", code, body, within, check)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := c.get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d %s while %s is down, want 200", code, body, check)
	}
}

// stop sends SIGTERM and checks the process exits 0 within limit.
func (c *consumer) stop(t *testing.T, limit time.Duration) {
	t.Helper()
	sent := time.Now()
	c.signal(t, syscall.SIGTERM)
	if err := c.wait(t, limit+10*time.Second); err != nil {
		t.Fatalf("consumer %s exited with %v after SIGTERM, want 0", c.name, err)
	}
	took := time.Since(sent)
	t.Logf("consumer %s exited %s after SIGTERM", c.name, took.Round(time.Millisecond))
	if took > limit {
		t.Errorf("consumer %s took %s to stop, want under %s", c.name, took.Round(time.Millisecond), limit)
	}
	if took > limit/4 {
		c.mu.Lock()
		lines := c.logs[max(0, len(c.logs)-30):]
		t.Logf("last log lines of the slow stop:\n%s", strings.Join(lines, "\n"))
		c.mu.Unlock()
	}
}

// waitCount waits until query counts at least n.
func (s *system) waitCount(query string, n int64, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var got int64
		err := s.db.QueryRow(query).Scan(&got)
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s = %d after %s (last error %v), want at least %d", query, got, within, err, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seedAccepted stores one ACCEPTED withdrawal directly in the database, as
// the intake would, once the consumer has migrated it; it returns its id.
func (s *system) seedAccepted(no string) string {
	s.t.Helper()
	s.waitCount("SELECT COUNT(*) + 1 FROM withdrawals", 1, 60*time.Second) // the schema exists
	keys, err := pii.LoadKeyringFile(s.keysFile)
	if err != nil {
		s.t.Fatal(err)
	}
	db, err := store.OpenMySQL(context.Background(), s.dsn, store.PoolOptions{MaxOpen: 2})
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	ids := storetest.Seed(s.t, db, keys, providertest.Command(withdrawal.ChannelWeChatEcommerce, no, 123))
	return ids[no]
}

// waitState waits until the withdrawal is in state.
func (s *system) waitState(id, state string, within time.Duration) {
	s.t.Helper()
	s.waitCount(fmt.Sprintf("SELECT COUNT(*) FROM withdrawals WHERE id = '%s' AND state = '%s'", id, state), 1, within)
}

func (s *system) unpublished() int64 {
	s.t.Helper()
	return s.count("SELECT COUNT(*) FROM outbox WHERE published_at = ?", store.NotPublished)
}

// waitPublished waits until every outbox row is published.
func (s *system) waitPublished(within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for s.unpublished() > 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("%d outbox rows unpublished after %s", s.unpublished(), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitMetric(t *testing.T, c *consumer, prefix string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := c.metric(t, prefix)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %s, want %v", prefix, got, within, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsumerStartsWithKafkaDown starts the consumer while its broker is
// unreachable and its topics do not exist: it stays up, serves /healthz,
// answers /readyz 503 naming kafka, and its dispatcher already submits from
// MySQL; once the broker is reachable it creates the topics, turns ready
// and consumes, and the events written meanwhile are published.
func TestConsumerStartsWithKafkaDown(t *testing.T) {
	s := newSystem(t, 3)
	kp, brokers := s.kafkaProxy(true)
	env := append(append(s.freshTopics(), brokers), s.dispatchEnv()...)
	c := s.start("kafka-down", env...)

	id := s.seedAccepted("WSEED" + s.run)
	s.waitState(id, "SUBMITTED", 30*time.Second)
	waitNotReady(t, c, "kafka", 30*time.Second)
	c.stayUp(t, 2*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="kafka"}`, 0, 10*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="mysql"}`, 1, 10*time.Second)
	if n := s.unpublished(); n != 2 {
		t.Errorf("%d outbox rows unpublished while Kafka is down, want the seed's 2", n)
	}

	kp.Restore()
	waitReadyz(t, c, http.StatusOK, 45*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="kafka"}`, 1, 10*time.Second)
	const n = 30
	s.produce(0, n)
	s.waitCount("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED'", n+1, 60*time.Second)
	s.waitCommitted(n, 30*time.Second)
	s.waitPublished(30 * time.Second)
	s.checkEventsOnTopic(n+1, 2)
	c.stop(t, 10*time.Second)
}

// TestConsumerSurvivesKafkaOutage cuts the broker in the middle of a run:
// the consumer stays up, /readyz answers 503 naming kafka, the dispatcher
// still submits an ACCEPTED withdrawal and the relay keeps its events;
// when the broker is back, the intake resumes and the backlog is published
// in order, without a restart.
func TestConsumerSurvivesKafkaOutage(t *testing.T) {
	s := newSystem(t, 3)
	kp, brokers := s.kafkaProxy(false)
	c := s.start("a", append(s.dispatchEnv(), brokers)...)
	const n = 40
	s.produce(0, n)
	s.waitCount("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED'", n, 60*time.Second)
	s.waitPublished(30 * time.Second)
	waitReadyz(t, c, http.StatusOK, 30*time.Second)

	kp.Cut()
	c.stayUp(t, 5*time.Second)
	waitNotReady(t, c, "kafka", 30*time.Second)
	id := s.seedAccepted("WSEED" + s.run)
	s.waitState(id, "SUBMITTED", 30*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="kafka"}`, 0, 10*time.Second)
	if got := s.unpublished(); got != 2 {
		t.Errorf("%d outbox rows unpublished during the outage, want the seed's 2", got)
	}
	if code, _ := c.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while Kafka is still cut, want 503", code)
	}

	kp.Restore()
	waitReadyz(t, c, http.StatusOK, 45*time.Second)
	s.produce(n, 2*n)
	s.waitCount("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED'", 2*n+1, 60*time.Second)
	s.waitCommitted(2*n, 60*time.Second)
	s.waitPublished(30 * time.Second)
	s.checkEventsOnTopic(2*n+1, 2)
	if m := c.metric(t, `withdraw_intake_retries_total{step="fetch"}`); m == 0 {
		t.Error("no fetch retries counted: did the outage reach the intake?")
	}
	c.stop(t, 10*time.Second)
}

// TestConsumerStartsWithMySQLDown starts the consumer while MariaDB is
// unreachable: it stays up, serves /healthz, answers /readyz 503 naming
// mysql; once the database is reachable it migrates it, turns ready and
// consumes.
func TestConsumerStartsWithMySQLDown(t *testing.T) {
	s := newSystem(t, 3)
	mp, dsn := s.mysqlProxy(true)
	c := s.startEarly("mysql-down", dsn)
	waitNotReady(t, c, "mysql", 30*time.Second)
	c.stayUp(t, 3*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="mysql"}`, 0, 10*time.Second)

	mp.Restore()
	waitReadyz(t, c, http.StatusOK, 45*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="mysql"}`, 1, 10*time.Second)
	const n = 100
	s.produce(0, n)
	s.waitCommitted(n, 60*time.Second)
	s.checkExactlyOnce(n)
	s.waitPublished(30 * time.Second)
	c.stop(t, 10*time.Second)
}

// TestConsumerSurvivesMySQLOutage cuts MariaDB in the middle of a stream,
// with the dispatcher on: nothing exits, /readyz answers 503 naming mysql,
// and after the database is back every command is stored once and
// submitted, none paid twice. (A provider answer that could not be
// recorded during the outage makes its withdrawal UNKNOWN when the claim's
// lease expires, and the query that follows finds it SUBMITTED: a short
// lease keeps the test short.)
func TestConsumerSurvivesMySQLOutage(t *testing.T) {
	s := newSystem(t, 3)
	mp, dsn := s.mysqlProxy(false)
	c := s.start("a", append(s.dispatchEnv(), dsn, "WITHDRAW_DISPATCH_LEASE_TTL=10s")...)
	const n = 600
	wait := s.produceSlowly(0, n, 50, 20*time.Millisecond)
	s.waitStored(100, 60*time.Second)

	mp.Cut()
	c.stayUp(t, 5*time.Second)
	waitNotReady(t, c, "mysql", 30*time.Second)
	waitMetric(t, c, `withdraw_dependency_up{dependency="mysql"}`, 0, 10*time.Second)

	mp.Restore()
	waitReadyz(t, c, http.StatusOK, 60*time.Second)
	wait()
	s.waitCommitted(n, 90*time.Second)
	s.waitCount("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED'", n, 90*time.Second)
	if got := s.count("SELECT COUNT(*) FROM withdrawals"); got != n {
		t.Errorf("%d withdrawals, want %d", got, n)
	}
	if got := s.count("SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.accepted'"); got != n {
		t.Errorf("%d accepted events, want %d", got, n)
	}
	if got := s.count("SELECT COUNT(*) FROM withdrawals WHERE submissions > 1"); got != 0 {
		t.Errorf("%d withdrawals submitted more than once", got)
	}
	s.sandbox.AssertPaidAtMostOnce()
	if got := len(s.sandbox.Ledger().Orders); got != n {
		t.Errorf("the sandbox saw %d orders, want %d", got, n)
	}
	s.waitPublished(30 * time.Second)
	c.stop(t, 10*time.Second)
}

// TestConsumerStopsDuringOutages sends SIGTERM while a dependency is
// unreachable, at start or in the middle of a run: the consumer exits 0
// promptly every time. A batch in flight whose offsets cannot reach Kafka
// gets WITHDRAW_SHUTDOWN_TIMEOUT (3s here), the relay's batch in flight
// its 5s grace and its writer 2s more, all at once.
func TestConsumerStopsDuringOutages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kafka  bool // cut the broker (else MariaDB)
		atRest bool // cut from the start (else after a first batch)
	}{
		{"kafka down at start", true, true},
		{"mysql down at start", false, true},
		{"kafka cut mid-run", true, false},
		{"mysql cut mid-run", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSystem(t, 3)
			var p *testenv.Proxy
			var setting string
			if tc.kafka {
				p, setting = s.kafkaProxy(tc.atRest)
			} else {
				p, setting = s.mysqlProxy(tc.atRest)
			}
			env := append(s.dispatchEnv(), setting, "WITHDRAW_SHUTDOWN_TIMEOUT=3s")
			var c *consumer
			if tc.atRest && !tc.kafka {
				c = s.startEarly("a", env...)
			} else {
				c = s.start("a", env...)
			}
			if !tc.atRest {
				s.produce(0, 20)
				s.waitStored(20, 60*time.Second)
				p.Cut()
			}
			check := "mysql"
			if tc.kafka {
				check = "kafka"
			}
			waitNotReady(t, c, check, 30*time.Second)
			c.stayUp(t, 2*time.Second)
			c.stop(t, 10*time.Second)
		})
	}
}
