package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver of the checks
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/sandbox/sandboxstack"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// The end-to-end benchmark: the real consumer binary (intake + dispatcher
// + relay, as deployed) against the sandbox binary over HTTP, on the real
// broker and MariaDB. The harness produces commands to withdraw.commands
// and reads withdraw.events until every command's withdrawal.submitted
// event has arrived; it measures
//
//   - Saturated: N commands produced at once; withdrawals per second from
//     the first command produced to the last submitted event consumed;
//   - OpenLoop: commands sent on a fixed schedule (rate per second) by a
//     producer that never waits for answers; latency of each command from
//     its send to the consumption of its submitted event, commands of the
//     warm-up excluded.
//
// Each run has a fresh database, fresh topics and groups, and fresh
// consumer and sandbox processes; before the measured commands, a probe
// of a few commands goes through the whole pipeline so that group joins
// and connection set-up are not measured. After the run the harness proves
// that every command is accounted for (see check) and reads the peak RSS
// (VmHWM) of both processes.

// E2E configures the end-to-end harness. Call Setup once, then any number
// of Saturated and OpenLoop runs, then Close.
type E2E struct {
	ConsumerBin, SandboxBin string
	// DSN names the MariaDB server; each run creates (and drops) a fresh
	// database withdraw_bench_<random>_e2e on it.
	DSN     string
	Brokers []string
	// Partitions of the commands and events topics (default 6).
	Partitions int
	// Merchants is the number of distinct e-commerce sub-merchants the
	// commands are spread over (default 500): the dispatcher allows one
	// in-flight submission per merchant by default.
	Merchants int
	// Mix sends the production channel mix of Valid instead of e-commerce
	// commands only (platform and Allinpay withdrawals then serialize on
	// one merchant each under the default per-merchant limit).
	Mix bool
	// ConsumerEnv are extra WITHDRAW_* settings of the consumer; they
	// override the harness's (see consumerEnv).
	ConsumerEnv []string
	// Keep leaves the databases and topics behind.
	Keep bool
	// Log receives progress lines (nil: discarded).
	Log io.Writer

	dir  string
	keys sandboxstack.Files
}

// Identity of the benchmark's provider accounts.
var e2eIdentity = sandboxstack.Identity{
	MchID:      "1900000109",
	CertSerial: "BENCH0000000000000000000000000000000000",
	AppID:      "bench-app",
}

const e2eAPIv3Key = "benchAPIv3Key0123456789abcdefXYZ" // 32 bytes, test only

// Setup generates the keys of every run once: the sandbox's (loaded by
// each sandbox process with --keys-dir), the merchants' and the PII keys.
func (e *E2E) Setup() error {
	if e.Partitions == 0 {
		e.Partitions = 6
	}
	if e.Merchants == 0 {
		e.Merchants = 500
	}
	if e.Log == nil {
		e.Log = io.Discard
	}
	dir, err := os.MkdirTemp("", "withdraw-bench-e2e")
	if err != nil {
		return err
	}
	e.dir = dir
	keys, err := sandboxstack.LoadOrCreate(sandboxstack.HarnessFiles(dir),
		sandboxstack.Generate{APIv3Key: e2eAPIv3Key, PIIKeyID: "bench"})
	if err != nil {
		return err
	}
	e.keys = keys.Files
	return nil
}

// Close removes the keys.
func (e *E2E) Close() {
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// E2EResult is the outcome of one run.
type E2EResult struct {
	Mode     string  `json:"mode"` // saturated or open_loop
	Commands int     `json:"commands"`
	Seconds  float64 `json:"seconds"`
	// PerSec: saturated, commands / (last submitted event − first send).
	PerSec float64 `json:"withdrawals_per_sec,omitempty"`
	// Open loop: the offered load, the latencies of the commands sent after
	// the warm-up, and the producer's worst lateness against its schedule.
	OfferedPerSec float64 `json:"offered_per_sec,omitempty"`
	Measured      int     `json:"measured,omitempty"`
	P50ms         float64 `json:"p50_ms,omitempty"`
	P99ms         float64 `json:"p99_ms,omitempty"`
	MaxMs         float64 `json:"max_ms,omitempty"`
	SendLagMaxMs  float64 `json:"send_lag_max_ms,omitempty"`
	// CompletedPerSec: the measured commands / (last one's submitted event
	// − first one's send); below the offered load, the pipeline is saturated.
	CompletedPerSec float64 `json:"completed_per_sec,omitempty"`
	// RSSMB is the peak RSS (VmHWM) of each process at the end of the run.
	RSSMB map[string]float64 `json:"rss_mb"`
	// CPUms is the CPU time (user + system) of each process over its whole
	// life, per command (probe included): start-up is in it, MariaDB and
	// the broker are not.
	CPUmsPerCommand map[string]float64 `json:"cpu_ms_per_command"`
	Checked         string             `json:"checked"`
}

// Saturated produces n commands at once and measures withdrawals per
// second from the first send to the last submitted event consumed.
func (e *E2E) Saturated(ctx context.Context, n int) (E2EResult, error) {
	r, err := e.start(ctx)
	if err != nil {
		return E2EResult{}, err
	}
	defer r.cleanup()
	if err := r.probe(ctx); err != nil {
		return E2EResult{}, err
	}
	fmt.Fprintf(e.Log, "  e2e saturated: producing %d commands ...\n", n)
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = e.command('S', r.id, i)
		r.col.expect(string(msgs[i].Key), 1)
	}
	w := kafkautil.NewWriter(e.Brokers, r.commands)
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+1000, n)]...); err != nil {
			w.Close()
			return E2EResult{}, fmt.Errorf("produce: %w", err)
		}
	}
	w.Close()
	if err := r.wait(ctx, 1, n); err != nil {
		return E2EResult{}, err
	}
	last := r.col.lastOf(1)
	elapsed := last.Sub(start)
	res := E2EResult{Mode: "saturated", Commands: n, Seconds: elapsed.Seconds(), PerSec: float64(n) / elapsed.Seconds()}
	if err := r.finish(ctx, &res); err != nil {
		return E2EResult{}, err
	}
	return res, nil
}

// OpenLoop sends rate commands per second for warmup+measure on a fixed
// schedule, never waiting for answers, and measures the latency from each
// command's send to the consumption of its submitted event; the commands
// sent during the warm-up are excluded from the percentiles.
func (e *E2E) OpenLoop(ctx context.Context, rate int, warmup, measure time.Duration) (E2EResult, error) {
	r, err := e.start(ctx)
	if err != nil {
		return E2EResult{}, err
	}
	defer r.cleanup()
	if err := r.probe(ctx); err != nil {
		return E2EResult{}, err
	}
	total := int(float64(rate) * (warmup + measure).Seconds())
	interval := time.Second / time.Duration(rate)
	fmt.Fprintf(e.Log, "  e2e open loop: %d commands/s for %s (%s warm-up) ...\n", rate, warmup+measure, warmup)
	msgs := make([]kafka.Message, total)
	for i := range msgs {
		msgs[i] = e.command('L', r.id, i)
		r.col.expect(string(msgs[i].Key), 1)
	}
	var (
		mu       sync.Mutex
		writeErr error
	)
	w := kafkautil.NewWriter(e.Brokers, r.commands)
	w.Async = true // sending never waits for the broker's answer
	w.Completion = func(_ []kafka.Message, err error) {
		if err != nil {
			mu.Lock()
			writeErr = errors.Join(writeErr, err)
			mu.Unlock()
		}
	}
	sentAt := make([]time.Time, total)
	var lag time.Duration
	start := time.Now()
	for i := range msgs {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		lag = max(lag, now.Sub(due))
		sentAt[i] = now
		if err := w.WriteMessages(ctx, msgs[i]); err != nil {
			w.Close()
			return E2EResult{}, fmt.Errorf("produce: %w", err)
		}
	}
	w.Close() // flushes
	mu.Lock()
	err = writeErr
	mu.Unlock()
	if err != nil {
		return E2EResult{}, fmt.Errorf("produce: %w", err)
	}
	if err := r.wait(ctx, 1, total); err != nil {
		return E2EResult{}, err
	}
	cutoff := start.Add(warmup)
	var (
		lat             []time.Duration
		first, lastDone time.Time
	)
	for i, m := range msgs {
		if sentAt[i].Before(cutoff) {
			continue
		}
		done := r.col.submittedAt(string(m.Key))
		lat = append(lat, done.Sub(sentAt[i]))
		if first.IsZero() {
			first = sentAt[i]
		}
		if done.After(lastDone) {
			lastDone = done
		}
	}
	if len(lat) == 0 {
		return E2EResult{}, errors.New("open loop: no command after the warm-up")
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res := E2EResult{Mode: "open_loop", Commands: total, Seconds: (warmup + measure).Seconds(),
		OfferedPerSec: float64(rate), Measured: len(lat),
		P50ms: ms(Percentile(lat, 0.50)), P99ms: ms(Percentile(lat, 0.99)), MaxMs: ms(lat[len(lat)-1]),
		SendLagMaxMs: ms(lag), CompletedPerSec: float64(len(lat)) / lastDone.Sub(first).Seconds()}
	if err := r.finish(ctx, &res); err != nil {
		return E2EResult{}, err
	}
	if res.CompletedPerSec < 0.95*res.OfferedPerSec {
		res.Checked += fmt.Sprintf("; WARNING: the pipeline completed %.0f/s of the %d/s offered: it is saturated, and the latencies are queueing delays that grow with the length of the run",
			res.CompletedPerSec, rate)
	}
	if lag > 100*time.Millisecond {
		res.Checked += fmt.Sprintf("; WARNING: the producer ran up to %s behind its schedule (the harness machine is overloaded)", lag.Round(time.Millisecond))
	}
	return res, nil
}

// E2ECommand is an e-commerce withdrawal command (the channel of the
// dispatch benchmark) over merchants sub-merchants; its out_request_no is
// the letter tag, then run, then i.
func E2ECommand(tag byte, run string, i, merchants int) kafka.Message {
	no := fmt.Sprintf("%c%s%09d", tag, run, i)
	v := fmt.Sprintf(`{"channel":"wechatpay_ecommerce","sub_mchid":"19%08d","out_request_no":%q,"amount":%d,"remark":"交易提现","bank_memo":"xx平台提现","account_type":"BASIC"}`,
		i%merchants, no, 100+i%100_000)
	return kafka.Message{Key: []byte(no), Value: []byte(v)}
}

func (e *E2E) command(tag byte, run string, i int) kafka.Message {
	if e.Mix {
		return Valid(string(tag)+run, i)
	}
	return E2ECommand(tag, run, i, e.Merchants)
}

// e2eRun is one run's world.
type e2eRun struct {
	e                     *E2E
	id                    string
	dsn                   string
	commands, events, dlq string
	sandbox, consumer     *proc
	sandboxURL            string
	col                   *collector
	stopReaders           func()
	cleanups              []func()
	probeN                int
}

func (r *e2eRun) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// start creates the database and topics, starts the sandbox and the
// consumer, and the readers of the events topic.
func (e *E2E) start(ctx context.Context) (_ *e2eRun, err error) {
	r := &e2eRun{e: e, id: RandomHex(4), probeN: 20}
	defer func() {
		if err != nil {
			r.cleanup()
		}
	}()
	r.dsn, err = e.freshDB(ctx, r)
	if err != nil {
		return nil, err
	}
	r.commands, r.events, r.dlq = "bench.e2e.commands."+r.id, "bench.e2e.events."+r.id, "bench.e2e.dlq."+r.id
	if err := CreateTopics(ctx, e.Brokers, map[string]int{r.commands: e.Partitions, r.events: e.Partitions, r.dlq: 1}); err != nil {
		return nil, err
	}
	if !e.Keep {
		r.cleanups = append(r.cleanups, func() { DeleteTopics(e.Brokers, r.commands, r.events, r.dlq) })
	}

	// The sandbox, with the benchmark's WeChat merchant and Allinpay app.
	env := config.WithoutSettings(os.Environ())
	r.sandbox, r.sandboxURL, err = startProc("sandbox", e.SandboxBin, append([]string{
		"--addr", "127.0.0.1:0", "--final-delay", "1h", "--log-level", "info",
	}, e.keys.SandboxArgs(e2eIdentity)...), env, "sandbox listening", "addr", time.Minute)
	if err != nil {
		return nil, err
	}
	r.cleanups = append(r.cleanups, r.sandbox.kill)
	r.sandboxURL = "http://" + r.sandboxURL
	cfgFile, err := e.providersConfig(ctx, r)
	if err != nil {
		return nil, err
	}

	// The consumer: intake + dispatcher + relay.
	r.consumer, _, err = startProc("consumer", e.ConsumerBin, nil, append(env, e.consumerEnv(r, cfgFile)...),
		"consumer started", "http", time.Minute)
	if err != nil {
		return nil, err
	}
	r.cleanups = append(r.cleanups, r.consumer.kill)

	r.col = newCollector()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for p := range e.Partitions {
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: e.Brokers, Topic: r.events, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, ReadLagInterval: -1})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer rd.Close()
			for {
				m, err := rd.ReadMessage(rctx)
				if err != nil {
					if rctx.Err() == nil {
						r.col.fail(fmt.Errorf("read %s[%d]: %w", r.events, p, err))
					}
					return
				}
				r.col.add(m, time.Now())
			}
		}()
	}
	r.stopReaders = func() { cancel(); wg.Wait() }
	r.cleanups = append(r.cleanups, r.stopReaders)
	return r, nil
}

func (e *E2E) freshDB(ctx context.Context, r *e2eRun) (string, error) {
	dsn, drop, err := FreshDatabase(ctx, e.DSN, "withdraw_bench_"+r.id+"_e2e")
	if err != nil {
		return "", err
	}
	if !e.Keep {
		r.cleanups = append(r.cleanups, drop)
	}
	return dsn, nil
}

// consumerEnv configures the consumer as deployed, except: fresh topics,
// group and database; the accelerated schedule (the sandbox's timings);
// and no provider rate limit (DISPATCH_RATE is a per-contract guard, not
// a property of the product: the benchmark measures the product).
func (e *E2E) consumerEnv(r *e2eRun, cfgFile string) []string {
	return append([]string{
		"WITHDRAW_MYSQL_DSN=" + r.dsn,
		"WITHDRAW_KAFKA_BROKERS=" + strings.Join(e.Brokers, ","),
		"WITHDRAW_COMMANDS_TOPIC=" + r.commands,
		"WITHDRAW_EVENTS_TOPIC=" + r.events,
		"WITHDRAW_DLQ_TOPIC=" + r.dlq,
		"WITHDRAW_CONSUMER_GROUP=bench.e2e.group." + r.id,
		"WITHDRAW_PII_KEYS_FILE=" + e.keys.PIIKeys,
		"WITHDRAW_CONFIG=" + cfgFile,
		"WITHDRAW_HTTP_ADDR=127.0.0.1:0",
		"WITHDRAW_INSTANCE_ID=bench-" + r.id,
		"WITHDRAW_DISPATCH=true",
		"WITHDRAW_RELAY=true",
		"WITHDRAW_SCHEDULE=accelerated",
		"WITHDRAW_DISPATCH_RATE=1000000",
		"WITHDRAW_DISPATCH_BURST=1000",
		"WITHDRAW_LOG_LEVEL=info",
	}, e.ConsumerEnv...)
}

// providersConfig writes the consumer's provider accounts for the
// sandbox of r (its keys from GET /_sandbox/keys) into the run's directory.
func (e *E2E) providersConfig(ctx context.Context, r *e2eRun) (string, error) {
	dir := filepath.Join(e.dir, "run-"+r.id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// 10s: the deployed default (provider.DefaultTimeout); no callbacks,
	// the benchmark ends at the submitted events.
	return sandboxstack.HarnessConfig(ctx, r.sandboxURL, dir, "withdraw.yaml", e.keys, sandboxstack.Settings{
		Identity: e2eIdentity, Timeout: 10 * time.Second,
	})
}

// probe sends a few commands through the whole pipeline and waits for
// their submitted events: the consumer group has joined, the connections
// are open and the relay holds its lanes before anything is measured.
func (r *e2eRun) probe(ctx context.Context) error {
	msgs := make([]kafka.Message, r.probeN)
	for i := range msgs {
		msgs[i] = r.e.command('P', r.id, i)
		r.col.expect(string(msgs[i].Key), 0)
	}
	w := kafkautil.NewWriter(r.e.Brokers, r.commands)
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("produce probe: %w", err)
	}
	return r.wait(ctx, 0, r.probeN)
}

// wait returns once n commands of batch have their submitted event; it
// fails if nothing progresses for 60s or a process dies.
func (r *e2eRun) wait(ctx context.Context, batch, n int) error {
	last, lastAt := -1, time.Now()
	for {
		got, err := r.col.progress(batch)
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if got != last {
			last, lastAt = got, time.Now()
		}
		for _, p := range []*proc{r.consumer, r.sandbox} {
			if err := p.alive(); err != nil {
				return err
			}
		}
		if time.Since(lastAt) > 60*time.Second {
			counts, _ := r.stateCounts(ctx)
			return fmt.Errorf("%w for 60s: %d of %d submitted events consumed; withdrawals by state %v\n%s",
				errStalled, got, n, counts, r.consumer.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *e2eRun) stateCounts(ctx context.Context) (map[string]int, error) {
	db, err := sql.Open("mysql", r.dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT state, COUNT(*) FROM withdrawals GROUP BY state")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// finish proves that every command is accounted for, reads the peak RSS
// of both processes and stops them (each must exit cleanly on SIGTERM).
func (r *e2eRun) finish(ctx context.Context, res *E2EResult) error {
	res.RSSMB, res.CPUmsPerCommand = map[string]float64{}, map[string]float64{}
	for _, p := range []*proc{r.consumer, r.sandbox} {
		mb, err := PeakRSSMB(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		res.RSSMB[p.name] = mb
		cpu, err := CPUTime(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		res.CPUmsPerCommand[p.name] = float64(cpu.Microseconds()) / 1000 / float64(r.col.expected())
	}
	checked, err := r.check(ctx)
	if err != nil {
		return err
	}
	res.Checked = checked
	if err := r.consumer.stop(30 * time.Second); err != nil {
		return err
	}
	if err := r.sandbox.stop(10 * time.Second); err != nil {
		return err
	}
	for _, p := range []*proc{r.consumer, r.sandbox} {
		if n, lines := p.errorLines(); n > 0 {
			return fmt.Errorf("%s logged %d errors during the run, first:\n  %s", p.name, n, strings.Join(lines, "\n  "))
		}
	}
	return nil
}

// check: every command produced is one withdrawal, SUBMITTED after exactly
// one submission, with its accepted and submitted events in the outbox and
// its submitted event consumed from the topic (in version order, no event
// of an unknown command); no rejection and no dead letter; the sandbox
// created each order exactly once and saw no other.
func (r *e2eRun) check(ctx context.Context) (string, error) {
	want := r.col.expected()
	var errs []error
	if err := r.col.verify(); err != nil {
		errs = append(errs, err)
	}
	db, err := sql.Open("mysql", r.dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	count := func(q string) int {
		var n int
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", q, err))
		}
		return n
	}
	withdrawals := count("SELECT COUNT(*) FROM withdrawals")
	clean := count("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED' AND version = 2 AND submissions = 1")
	accepted := count("SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.accepted'")
	submitted := count("SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.submitted'")
	others := count("SELECT COUNT(*) FROM outbox WHERE event_type NOT IN ('withdrawal.accepted', 'withdrawal.submitted')")
	unpublished := count("SELECT COUNT(*) FROM outbox WHERE published_at = '1970-01-01 00:00:00'") // store.NotPublished
	dead, err := TopicMessages(ctx, r.e.Brokers, r.dlq, 1)
	if err != nil {
		errs = append(errs, err)
	}
	for name, got := range map[string]int{"withdrawals": withdrawals, "SUBMITTED at version 2 after one submission": clean,
		"accepted events": accepted, "submitted events": submitted} {
		if got != want {
			errs = append(errs, fmt.Errorf("%s: %d, want %d", name, got, want))
		}
	}
	if others != 0 || dead != 0 || unpublished != 0 {
		errs = append(errs, fmt.Errorf("%d other events, %d dead letters, %d unpublished outbox rows: want none", others, dead, unpublished))
	}
	ledger, err := r.ledger(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	resent := 0
	for _, o := range ledger.Orders {
		if o.Created != 1 {
			errs = append(errs, fmt.Errorf("sandbox: %s %s created %d times", o.Channel, o.OutRequestNo, o.Created))
		}
		if !r.col.known(o.OutRequestNo) {
			errs = append(errs, fmt.Errorf("sandbox: order %s of no command of this run", o.OutRequestNo))
		}
		if o.Submissions > 1 {
			resent++
		}
	}
	if len(ledger.Orders) != want {
		errs = append(errs, fmt.Errorf("sandbox: %d orders, want %d", len(ledger.Orders), want))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("e2e check failed:\n%w", err)
	}
	return fmt.Sprintf("checked: %d commands (%d probe) = %d withdrawals SUBMITTED once, %d accepted + %d submitted events in the outbox, all published; "+
		"every submitted event consumed in version order; sandbox: %d orders each created once (%d re-sent identically); no rejection, no dead letter",
		want, r.probeN, withdrawals, accepted, submitted, len(ledger.Orders), resent), nil
}

func (r *e2eRun) ledger(ctx context.Context) (sandbox.Ledger, error) {
	var l sandbox.Ledger
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.sandboxURL+"/_sandbox/ledger", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return l, fmt.Errorf("sandbox ledger: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return l, fmt.Errorf("sandbox ledger: %w", err)
	}
	return l, nil
}

// collector records the events read from the events topic.
type collector struct {
	mu        sync.Mutex
	batchOf   map[string]int       // out_request_no → batch (0 probe, 1 measured)
	submitted map[string]time.Time // out_request_no → first submitted event consumed
	perBatch  map[int]int          // submitted commands per batch
	lastAt    map[int]time.Time    // latest first-submitted time per batch
	version   map[string]int       // withdrawal id → highest version seen
	errs      []error
}

func newCollector() *collector {
	return &collector{batchOf: map[string]int{}, submitted: map[string]time.Time{}, perBatch: map[int]int{},
		lastAt: map[int]time.Time{}, version: map[string]int{}}
}

func (c *collector) expect(no string, batch int) {
	c.mu.Lock()
	c.batchOf[no] = batch
	c.mu.Unlock()
}

func (c *collector) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}

func (c *collector) add(m kafka.Message, at time.Time) {
	var ev withdrawal.Event
	if err := json.Unmarshal(m.Value, &ev); err != nil {
		c.fail(fmt.Errorf("event at partition %d offset %d is not JSON: %w", m.Partition, m.Offset, err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	batch, ok := c.batchOf[ev.OutRequestNo]
	if !ok {
		c.errs = append(c.errs, fmt.Errorf("event %s of an unknown command %q", ev.Type, ev.OutRequestNo))
		return
	}
	if string(m.Key) != ev.WithdrawalID {
		c.errs = append(c.errs, fmt.Errorf("event key %q, withdrawal %q", m.Key, ev.WithdrawalID))
	}
	switch prev := c.version[ev.WithdrawalID]; {
	case ev.Version <= prev: // a redelivery (at least once)
	case ev.Version == prev+1:
		c.version[ev.WithdrawalID] = ev.Version
	default:
		c.errs = append(c.errs, fmt.Errorf("withdrawal %s: version %d after %d", ev.WithdrawalID, ev.Version, prev))
	}
	if ev.Type != withdrawal.EventSubmitted {
		return
	}
	if _, seen := c.submitted[ev.OutRequestNo]; seen {
		return
	}
	c.submitted[ev.OutRequestNo] = at
	c.perBatch[batch]++
	if at.After(c.lastAt[batch]) {
		c.lastAt[batch] = at
	}
}

func (c *collector) progress(batch int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		return 0, fmt.Errorf("events: %w", errors.Join(c.errs...))
	}
	return c.perBatch[batch], nil
}

func (c *collector) lastOf(batch int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastAt[batch]
}

func (c *collector) submittedAt(no string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.submitted[no]
}

func (c *collector) known(no string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.batchOf[no]
	return ok
}

func (c *collector) expected() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.batchOf)
}

// verify: no error, and every expected command's submitted event arrived.
func (c *collector) verify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := slices.Clone(c.errs)
	missing := 0
	for no := range c.batchOf {
		if _, ok := c.submitted[no]; !ok {
			missing++
		}
	}
	if missing > 0 {
		errs = append(errs, fmt.Errorf("events: %d commands without a consumed submitted event", missing))
	}
	return errors.Join(errs...)
}
