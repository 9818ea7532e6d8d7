package main

// System tests: the real consumer binary against the real broker and the
// real MariaDB of the local env (deploy/local/env.sh). Each test gets a fresh
// database, its own topics and its own consumer group.
//
// TestOutage* stop the shared MariaDB and only run with
// WITHDRAW_TESTENV_OUTAGE=1 (make test runs them in a second, serial go test).

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/bench"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// consumerBinary builds cmd/consumer once per test run, with -race when the
// tests themselves run with it, so the system tests race-check the binary.
func consumerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "consumer-systest")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "consumer")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/paycore/withdraw/cmd/consumer")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// system is one test's world: database, topics, group, keys.
type system struct {
	t          *testing.T
	bin        string
	dsn        string
	db         *sql.DB
	brokers    []string
	commands   string
	dlq        string
	events     string
	group      string
	run        string            // letters and digits, in every out_request_no
	keysFile   string            // the PII keyring the consumer reads
	sandbox    *providertest.Env // the provider sandbox, once dispatchEnv started it
	partitions int
	env        []string
}

func newSystem(t *testing.T, partitions int) *system {
	t.Helper()
	testenv.MySQLDSN(t) // skip under -short without the env
	s := &system{t: t, brokers: testenv.KafkaBrokers(t), partitions: partitions}
	s.bin = consumerBinary(t)
	s.dsn = testenv.FreshDatabase(t)
	db, err := sql.Open("mysql", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db

	s.commands = testenv.UniqueTopic(t, "systest.commands")
	s.dlq = testenv.UniqueTopic(t, "systest.dlq")
	s.events = testenv.UniqueTopic(t, "systest.events")
	testenv.CreateTopic(t, s.commands, partitions)
	testenv.CreateTopic(t, s.dlq, 1)
	testenv.CreateTopic(t, s.events, 3)
	s.group = testenv.UniqueTopic(t, "systest.group")
	s.run = s.group[strings.LastIndexByte(s.group, '.')+1:]

	keys := filepath.Join(t.TempDir(), "pii.keys")
	if err := os.WriteFile(keys, []byte(pii.GenerateKeyLine("k1")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.keysFile = keys
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WITHDRAW_") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env,
		"WITHDRAW_MYSQL_DSN="+s.dsn,
		"WITHDRAW_KAFKA_BROKERS="+strings.Join(s.brokers, ","),
		"WITHDRAW_COMMANDS_TOPIC="+s.commands,
		"WITHDRAW_DLQ_TOPIC="+s.dlq,
		"WITHDRAW_EVENTS_TOPIC="+s.events,
		"WITHDRAW_CONSUMER_GROUP="+s.group,
		"WITHDRAW_PII_KEYS_FILE="+keys,
		"WITHDRAW_HTTP_ADDR=127.0.0.1:0",
		"WITHDRAW_INTAKE_BATCH_SIZE=100",
		"WITHDRAW_SHUTDOWN_TIMEOUT=10s",
		// These tests are about the intake; the dispatcher is tested in
		// internal/dispatch against the provider sandbox.
		"WITHDRAW_DISPATCH=false",
	)
	return s
}

// consumer is one running consumer process.
type consumer struct {
	name string
	cmd  *exec.Cmd
	http string // host:port of /metrics, /readyz

	mu   sync.Mutex
	logs []string

	exited   chan struct{}
	err      error         // of Wait, once exited is closed
	migrated chan struct{} // closed when it logs that its database is migrated
}

// start runs the consumer binary and waits until it serves HTTP and has
// migrated its database.
func (s *system) start(name string, extraEnv ...string) *consumer {
	s.t.Helper()
	c := s.startEarly(name, extraEnv...)
	select {
	case <-c.migrated:
	case <-c.exited:
		s.t.Fatalf("consumer %s exited at start: %v", name, c.err)
	case <-time.After(60 * time.Second):
		s.t.Fatalf("consumer %s did not migrate its database within 60s", name)
	}
	return c
}

// startEarly runs the consumer binary and waits until it serves HTTP,
// which it does before it has reached MySQL or Kafka.
func (s *system) startEarly(name string, extraEnv ...string) *consumer {
	s.t.Helper()
	c := &consumer{name: name, exited: make(chan struct{}), migrated: make(chan struct{})}
	c.cmd = exec.Command(s.bin)
	c.cmd.Env = append(append([]string(nil), s.env...), extraEnv...)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	started := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.logs = append(c.logs, line)
			c.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil {
				switch rec.Msg {
				case "consumer started":
					started <- rec.HTTP
				case "database migrated":
					close(c.migrated)
				}
			}
		}
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	s.t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		if s.t.Failed() {
			c.mu.Lock()
			lines := c.logs
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			s.t.Logf("last log lines of consumer %s:\n%s", c.name, strings.Join(lines, "\n"))
			c.mu.Unlock()
		}
	})
	select {
	case c.http = <-started:
	case <-c.exited:
		s.t.Fatalf("consumer %s exited at start: %v", name, c.err)
	case <-time.After(60 * time.Second):
		s.t.Fatalf("consumer %s did not start within 60s", name)
	}
	return c
}

// wait waits for the process to exit and returns its Wait error.
func (c *consumer) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-c.exited:
		return c.err
	case <-time.After(within):
		t.Fatalf("consumer %s still running after %s", c.name, within)
		return nil
	}
}

// signal sends sig to the process.
func (c *consumer) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to consumer %s: %v", sig, c.name, err)
	}
}

// readyz returns the status code of GET /readyz (0 if it does not answer).
func (c *consumer) readyz() int {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + c.http + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// metric returns the sum of the samples of a metric whose line starts with
// prefix (name plus, optionally, a label matcher), from /metrics.
func (c *consumer) metric(t *testing.T, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.http + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", c.name, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// produce writes commands from..to-1 (bench.Valid, all valid and distinct).
func (s *system) produce(from, to int) {
	s.t.Helper()
	w := kafkautil.NewWriter(s.brokers, s.commands)
	defer w.Close()
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, bench.Valid(s.run, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		s.t.Fatalf("produce %d..%d: %v", from, to, err)
	}
}

// produceSlowly writes commands from..to-1 in chunks of chunk with a pause
// between them, in the background; the returned function waits for the end.
func (s *system) produceSlowly(from, to, chunk int, pause time.Duration) (wait func()) {
	done := make(chan error, 1)
	go func() {
		w := kafkautil.NewWriter(s.brokers, s.commands)
		defer w.Close()
		for i := from; i < to; i += chunk {
			end := min(i+chunk, to)
			msgs := make([]kafka.Message, 0, end-i)
			for j := i; j < end; j++ {
				msgs = append(msgs, bench.Valid(s.run, j))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err := w.WriteMessages(ctx, msgs...)
			cancel()
			if err != nil {
				done <- fmt.Errorf("produce %d..%d: %w", i, end, err)
				return
			}
			time.Sleep(pause)
		}
		done <- nil
	}()
	return func() {
		s.t.Helper()
		if err := <-done; err != nil {
			s.t.Fatal(err)
		}
	}
}

// committed is the sum of the group's committed offsets over all partitions
// (every command is one offset, as the topic is fresh).
func (s *system) committed() (int64, error) {
	parts := make([]int, s.partitions)
	for i := range parts {
		parts[i] = i
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(s.brokers...), Timeout: 5 * time.Second, Transport: tr}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: s.group, Topics: map[string][]int{s.commands: parts}})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error
	}
	var sum int64
	for _, p := range resp.Topics[s.commands] {
		if p.Error != nil {
			return 0, p.Error
		}
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum, nil
}

// waitCommitted waits until the group has committed total offsets.
func (s *system) waitCommitted(total int64, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := s.committed()
		if err == nil && n >= total {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("group committed %d of %d offsets after %s (last error %v)", n, total, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *system) count(query string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkExactlyOnce asserts that commands 0..n-1 were each stored exactly
// once with exactly one accepted event, and that nothing else was stored.
func (s *system) checkExactlyOnce(n int) {
	s.t.Helper()
	if got := s.count("SELECT COUNT(*) FROM withdrawals"); got != int64(n) {
		s.t.Errorf("%d withdrawals, want %d", got, n)
	}
	if got := s.count("SELECT COUNT(DISTINCT out_request_no) FROM withdrawals WHERE out_request_no LIKE ?", "W"+s.run+"%"); got != int64(n) {
		s.t.Errorf("%d distinct produced commands stored, want %d", got, n)
	}
	if got := s.count("SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.accepted'"); got != int64(n) {
		s.t.Errorf("%d accepted events, want %d", got, n)
	}
	if got := s.count(`SELECT COUNT(*) FROM (SELECT w.id FROM withdrawals w
		LEFT JOIN outbox o ON o.withdrawal_id = w.id AND o.event_type = 'withdrawal.accepted'
		GROUP BY w.id HAVING COUNT(o.id) <> 1) x`); got != 0 {
		s.t.Errorf("%d withdrawals without exactly one accepted event", got)
	}
	if got := s.count("SELECT COUNT(*) FROM outbox WHERE event_type <> 'withdrawal.accepted'"); got != 0 {
		s.t.Errorf("%d other events (rejections?), want none", got)
	}
	for i := range n {
		no := bench.OutRequestNo(s.run, i)
		if s.count("SELECT COUNT(*) FROM withdrawals WHERE out_request_no = ?", no) != 1 {
			s.t.Errorf("command %d (%s) is missing", i, no)
			break
		}
	}
}

// waitStored waits until at least n withdrawals are stored.
func (s *system) waitStored(n int64, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for s.count("SELECT COUNT(*) FROM withdrawals") < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("fewer than %d withdrawals after %s", n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedeliveryAfterCrash kills the consumer (SIGKILL, by the
// intake-after-store failpoint) after its third batch is committed to the
// database and before its offsets are: the restarted consumer gets those
// commands again and must recognise every one of them.
func TestRedeliveryAfterCrash(t *testing.T) {
	s := newSystem(t, 3)
	const n = 2000
	s.produce(0, n)

	a := s.start("crashing", "WITHDRAW_FAILPOINT=intake-after-store:3")
	err := a.wait(t, 60*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("consumer exited with %v, want killed by SIGKILL at the failpoint", err)
	}
	stored := s.count("SELECT COUNT(*) FROM withdrawals")
	committed, err := s.committed()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at the crash: %d stored, %d offsets committed", stored, committed)
	if stored <= committed {
		t.Fatalf("the crash left %d stored and %d committed: the failpoint missed the window", stored, committed)
	}

	b := s.start("restarted")
	s.waitCommitted(n, 90*time.Second)
	dups := b.metric(t, `withdraw_intake_commands_total{reason="",result="duplicate"}`)
	accepted := b.metric(t, `withdraw_intake_commands_total{reason="",result="accepted"}`)
	b.signal(t, syscall.SIGTERM)
	if err := b.wait(t, 30*time.Second); err != nil {
		t.Fatalf("restarted consumer: %v", err)
	}
	t.Logf("restarted consumer: %v accepted, %v duplicates", accepted, dups)
	if dups < float64(stored-committed) {
		t.Errorf("restarted consumer saw %v duplicates, want at least the %d stored but uncommitted", dups, stored-committed)
	}
	if int64(accepted)+stored != n {
		t.Errorf("accepted %v after the restart + %d before != %d", accepted, stored, n)
	}
	s.checkExactlyOnce(n)
}

// TestGracefulShutdown sends SIGTERM in the middle of a stream: the
// consumer finishes the batch in hand, commits it and exits 0 promptly, with
// nothing stored that is not committed; a restart takes the rest.
func TestGracefulShutdown(t *testing.T) {
	s := newSystem(t, 3)
	const n = 3000
	wait := s.produceSlowly(0, n, 100, 20*time.Millisecond)

	a := s.start("a")
	s.waitStored(500, 60*time.Second)
	sent := time.Now()
	a.signal(t, syscall.SIGTERM)
	if err := a.wait(t, 20*time.Second); err != nil {
		t.Fatalf("consumer exited with %v after SIGTERM, want 0", err)
	}
	took := time.Since(sent)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("shutdown took %s, want it prompt (< 10s)", took)
	}
	stored := s.count("SELECT COUNT(*) FROM withdrawals")
	committed, err := s.committed()
	if err != nil {
		t.Fatal(err)
	}
	if stored != committed {
		t.Errorf("after a graceful stop %d stored but %d committed: the batch in hand was not finished", stored, committed)
	}

	wait()
	b := s.start("b")
	s.waitCommitted(n, 90*time.Second)
	b.signal(t, syscall.SIGTERM)
	if err := b.wait(t, 30*time.Second); err != nil {
		t.Fatalf("second consumer: %v", err)
	}
	s.checkExactlyOnce(n)
}

// TestRebalance runs two consumers in one group: A alone, then B joins in
// the middle of the stream (a rebalance while A has batches in flight), then
// A is killed (a second rebalance, after its session times out, with A's
// last batches stored or not, committed or not). Nothing is lost or doubled.
func TestRebalance(t *testing.T) {
	s := newSystem(t, 6)
	const n = 6000
	wait := s.produceSlowly(0, n, 100, 15*time.Millisecond)

	a := s.start("a")
	s.waitStored(800, 60*time.Second)
	b := s.start("b")
	s.waitStored(3000, 90*time.Second)
	a.signal(t, syscall.SIGKILL)
	_ = a.wait(t, 10*time.Second)
	wait()

	// B takes A's partitions once A's session (30s) expires.
	s.waitCommitted(n, 120*time.Second)
	accepted := b.metric(t, `withdraw_intake_commands_total{reason="",result="accepted"}`)
	t.Logf("B: %v accepted, %v duplicates, %v commit retries, %v commits given up", accepted,
		b.metric(t, `withdraw_intake_commands_total{reason="",result="duplicate"}`),
		b.metric(t, `withdraw_intake_retries_total{step="commit"}`),
		b.metric(t, `withdraw_intake_commits_abandoned_total`))
	if accepted == 0 {
		t.Error("B accepted nothing: no rebalance happened")
	}
	b.signal(t, syscall.SIGTERM)
	if err := b.wait(t, 30*time.Second); err != nil {
		t.Fatalf("consumer b: %v", err)
	}
	s.checkExactlyOnce(n)
}

// TestOutageMariaDB stops MariaDB in the middle of a stream and starts it
// again: while it is down /readyz answers 503, afterwards 200, and nothing
// is lost or doubled. It stops the shared server, so it only runs with
// WITHDRAW_TESTENV_OUTAGE=1 (make test runs it serially after the rest).
func TestOutageMariaDB(t *testing.T) {
	if os.Getenv("WITHDRAW_TESTENV_OUTAGE") == "" {
		t.Skip("set WITHDRAW_TESTENV_OUTAGE=1 to run (stops the shared MariaDB)")
	}
	s := newSystem(t, 3)
	const n = 4000
	wait := s.produceSlowly(0, n, 100, 25*time.Millisecond)

	a := s.start("a")
	s.waitStored(500, 60*time.Second)
	if code := a.readyz(); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the outage, want 200", code)
	}
	testenv.StopMariaDB(t)
	waitReadyz(t, a, http.StatusServiceUnavailable, 30*time.Second)
	time.Sleep(3 * time.Second) // let commands pile up while the database is down
	if code := a.readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while MariaDB is still down, want 503", code)
	}
	testenv.StartMariaDB(t)
	waitReadyz(t, a, http.StatusOK, 60*time.Second)

	wait()
	s.waitCommitted(n, 120*time.Second)
	if got := a.metric(t, `withdraw_intake_retries_total{step="store"}`); got == 0 {
		t.Error("no store retries counted: did the outage hit the intake at all?")
	}
	a.signal(t, syscall.SIGTERM)
	if err := a.wait(t, 30*time.Second); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	s.checkExactlyOnce(n)
}

func waitReadyz(t *testing.T, c *consumer, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code := c.readyz()
		if code == want {
			t.Logf("/readyz = %d", code)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d after %s, want %d", code, within, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
