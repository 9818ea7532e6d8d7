// Package chaos is the chaos suite (cmd/chaos): the real binaries of the
// orchestrator against the provider sandbox with injected faults, on a
// MariaDB and a Kafka of the suite's own, while the harness SIGKILLs
// consumers, the poller, Kafka and MariaDB; afterwards it checks the
// invariants the product promises (docs/chaos.md).
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/bench"
	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/kafkautil"
)

// Options of a run; Full and Quick are the two presets.
type Options struct {
	Root string // repository root
	Env  Env

	Commands    int           // valid commands
	DupPct      float64       // identical redeliveries per 100 commands
	ConflictPct float64       // conflicting resends per 100 commands
	Produce     time.Duration // the commands are spread over this window
	Partitions  int

	Consumers     int
	ConsumerKills int
	PollerKills   int
	KafkaKills    int // in a cluster: one node per kill
	MySQLKills    int
	ProcDown      time.Duration // how long a killed consumer/poller stays down
	ServerDown    time.Duration // how long a killed server stays down

	Faults       []string // sandbox --fault values
	SandboxFlags []string // more sandbox flags
	Drain        time.Duration
	Seed         uint64

	KeepEnv  bool // leave the servers running afterwards
	KeepData bool // keep the run's database and topics
	WorkDir  string
	Log      io.Writer
}

// DefaultFaults: about 20 % of submit and query requests fail in one of
// the ways a provider does.
var DefaultFaults = []string{
	"*:5xx=0.04,429=0.04,SYSTEM_ERROR=0.04,timeout_after_commit=0.04,forged_answer=0.02,bad_signature=0.02",
	// Allinpay knows no SYSTEM_ERROR: its generic failure is code 3 on a
	// query, and a submit's 3 is a documented refusal (FAILED), which would
	// hide nothing. Its own faults replace the "*" ones.
	"allinpay.withdraw:5xx=0.06,429=0.04,timeout_after_commit=0.06,bad_signature=0.04",
	"allinpay.query:5xx=0.06,429=0.06,timeout_after_commit=0.04,bad_signature=0.04",
}

// Full is the preset of `make chaos`.
func Full() Options {
	return Options{Commands: 3000, DupPct: 5, ConflictPct: 2, Produce: 150 * time.Second, Partitions: 6,
		Consumers: 2, ConsumerKills: 4, PollerKills: 1, KafkaKills: 1, MySQLKills: 1,
		ProcDown: 3 * time.Second, ServerDown: 6 * time.Second,
		Faults: DefaultFaults, Drain: 3 * time.Minute, Seed: 1}
}

// Quick is the preset of `make test`: a few hundred commands, one consumer
// kill.
func Quick() Options {
	o := Full()
	o.Commands, o.Produce, o.ConflictPct = 300, 25*time.Second, 3
	o.ConsumerKills, o.PollerKills, o.KafkaKills, o.MySQLKills = 1, 0, 0, 0
	o.Drain = 90 * time.Second
	return o
}

// outage is a window in which a dependency was down (killed until ready).
type outage struct {
	What       string
	From, To   time.Time
	Err        error
	restartDur time.Duration
}

// run is one run's world.
type run struct {
	o       Options
	id      string
	dir     string
	logf    func(string, ...any)
	dbName  string
	dsn     string
	brokers []string
	topics  struct{ commands, events, dlq, group string }

	sandbox   *Proc
	consumers []*Proc
	poller    *Proc
	sbURL     string

	mu       sync.Mutex
	outages  []outage
	kills    []string
	produced struct {
		msgs, retries int
		start, end    time.Time
		err           error
	}
	wl *Workload
}

// Run runs the suite and returns its report (Report.OK tells whether every
// invariant held). An error means the harness could not do its job.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	r := &run{o: o, id: bench.RandomHex(3)}
	r.logf = func(f string, a ...any) {
		fmt.Fprintf(o.Log, "[chaos %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(f, a...))
	}
	r.dir = filepath.Join(o.WorkDir, "run-"+time.Now().Format("20060102-150405")+"-"+r.id)
	if err := os.MkdirAll(filepath.Join(r.dir, "bin"), 0o700); err != nil {
		return nil, err
	}
	o.Env.LogFile = filepath.Join(r.dir, "env.log")
	r.o.Env = o.Env
	started := time.Now()
	r.logf("run %s, logs in %s", r.id, r.dir)

	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	// Build while the servers start: both take a while on 2 cores.
	type built struct {
		bins map[string]string
		err  error
	}
	bc := make(chan built, 1)
	go func() {
		b, err := buildBinaries(ctx, o.Root, filepath.Join(r.dir, "bin"))
		bc <- built{b, err}
	}()
	r.logf("starting MariaDB and %d Kafka node(s) (deploy/local/chaos-env.sh)", o.Env.KafkaNodes)
	if err := r.o.Env.Up(ctx); err != nil {
		<-bc
		return nil, err
	}
	if !o.KeepEnv {
		cleanups = append(cleanups, func() {
			r.logf("stopping the suite's servers")
			if err := r.o.Env.Down(context.WithoutCancel(ctx)); err != nil {
				r.logf("%v", err)
			}
		})
	}
	b := <-bc
	if b.err != nil {
		return nil, b.err
	}
	r.brokers = o.Env.Brokers()

	// A fresh database and fresh topics: nothing of an earlier run counts.
	var err error
	r.dbName = "withdraw_chaos_" + r.id
	var drop func()
	r.dsn, drop, err = bench.FreshDatabase(ctx, o.Env.DSN("withdraw"), r.dbName)
	if err != nil {
		return nil, err
	}
	pfx := "chaos." + r.id + "."
	r.topics.commands, r.topics.events, r.topics.dlq, r.topics.group = pfx+"commands", pfx+"events", pfx+"dlq", pfx+"intake"
	rf := min(3, o.Env.KafkaNodes)
	if err := kafkautil.EnsureTopics(ctx, r.brokers, []kafkautil.TopicSpec{
		// Room for the 1,048,400-byte command (over Kafka's default).
		{Name: r.topics.commands, Partitions: o.Partitions, ReplicationFactor: rf, MaxMessageBytes: commandsMaxMessageBytes},
		{Name: r.topics.events, Partitions: o.Partitions, ReplicationFactor: rf},
		{Name: r.topics.dlq, Partitions: 3, ReplicationFactor: rf, MaxMessageBytes: kafkautil.DefaultMaxMessageBytes},
	}); err != nil {
		drop()
		return nil, err
	}
	if !o.KeepData {
		cleanups = append(cleanups, func() {
			drop()
			bench.DeleteTopics(r.brokers, r.topics.commands, r.topics.events, r.topics.dlq)
		})
	}

	if err := r.startProcs(ctx, b.bins); err != nil {
		r.stopProcs()
		if r.sandbox != nil {
			_ = r.sandbox.Stop(5 * time.Second)
		}
		return nil, err
	}
	cleanups = append(cleanups, func() {
		r.stopProcs()
		_ = r.sandbox.Stop(5 * time.Second)
	})

	r.wl, err = NewWorkload(r.id, o.Commands, o.DupPct, o.ConflictPct, o.Seed)
	if err != nil {
		return nil, err
	}
	r.logf("producing %d messages over %s (%v) while killing things", len(r.wl.Msgs), o.Produce, r.wl.Counts)
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		r.chaos(ctx)
	}()
	r.produce(ctx)
	<-chaosDone
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.logf("produced in %s; draining (at most %s)", r.produced.end.Sub(r.produced.start).Round(time.Second), o.Drain)
	drainStart := time.Now()
	drained := r.drain(ctx)
	drainTook := time.Since(drainStart)
	r.logf("drain: %s after %s", map[bool]string{true: "done", false: "timed out"}[drained], drainTook.Round(time.Second))

	// Stop the product before reading its results: nothing moves any more,
	// and a clean SIGTERM exit is part of what is checked.
	stopErrs := r.stopProcs()
	rep, err := r.check(ctx, drained, drainTook, stopErrs)
	if err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(started)
	return rep, nil
}

// commandsMaxMessageBytes is the commands topic's max.message.bytes.
const commandsMaxMessageBytes = 2 << 20

func (r *run) startProcs(ctx context.Context, bins map[string]string) error {
	k, err := writeKeys(r.dir)
	if err != nil {
		return err
	}
	env := config.WithoutSettings(os.Environ())
	sbArgs := append([]string{"--addr", "127.0.0.1:0", "--log-level", "info",
		"--seed", strconv.FormatUint(r.o.Seed, 10), "--final-delay", "2s", "--p-fail", "0.05", "--p-close", "0.02"},
		k.SandboxArgs(identity)...)
	for _, f := range r.o.Faults {
		sbArgs = append(sbArgs, "--fault", f)
	}
	sbArgs = append(sbArgs, r.o.SandboxFlags...)
	// The sandbox is not under test: it is never killed.
	r.sandbox = &Proc{Name: "sandbox", Bin: bins["sandbox"], Args: sbArgs, Env: env,
		LogPath: filepath.Join(r.dir, "sandbox.log"), ReadyMsg: "sandbox listening"}
	addr, err := r.sandbox.Start(time.Minute, "addr")
	if err != nil {
		return err
	}
	r.sbURL = "http://" + addr
	pollerPort, err := freePort()
	if err != nil {
		return err
	}
	cfgFile, err := providersConfig(ctx, r.dir, k, r.sbURL, fmt.Sprintf("http://127.0.0.1:%d/notify/wechatpay/default", pollerPort))
	if err != nil {
		return err
	}
	common := []string{
		"WITHDRAW_MYSQL_DSN=" + r.dsn,
		"WITHDRAW_KAFKA_BROKERS=" + strings.Join(r.brokers, ","),
		"WITHDRAW_COMMANDS_TOPIC=" + r.topics.commands,
		"WITHDRAW_EVENTS_TOPIC=" + r.topics.events,
		"WITHDRAW_DLQ_TOPIC=" + r.topics.dlq,
		"WITHDRAW_CONSUMER_GROUP=" + r.topics.group,
		"WITHDRAW_PII_KEYS_FILE=" + k.PIIKeys,
		"WITHDRAW_CONFIG=" + cfgFile,
		"WITHDRAW_SCHEDULE=accelerated",
		"WITHDRAW_RELAY=true",
		"WITHDRAW_LOG_LEVEL=info",
		"WITHDRAW_TOPIC_PARTITIONS=" + strconv.Itoa(r.o.Partitions),
		"WITHDRAW_TOPIC_REPLICATION=" + strconv.Itoa(min(3, r.o.Env.KafkaNodes)),
		"WITHDRAW_SHUTDOWN_TIMEOUT=5s",
	}
	for i := range r.o.Consumers {
		port, err := freePort()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("consumer-%d", i+1)
		p := &Proc{Name: name, Bin: bins["consumer"], Env: append(append(append([]string{}, env...), common...),
			fmt.Sprintf("WITHDRAW_HTTP_ADDR=127.0.0.1:%d", port),
			"WITHDRAW_INSTANCE_ID=chaos-"+name,
			"WITHDRAW_DISPATCH=true",
			// Shorter than the default 60s so that a killed consumer's
			// claims are taken over within the run; above the 5s provider
			// timeout, as it must be.
			"WITHDRAW_DISPATCH_LEASE_TTL=15s",
		), LogPath: filepath.Join(r.dir, name+".log"), ReadyMsg: "consumer started", Restart: true, RestartDelay: 2 * time.Second}
		if _, err := p.Start(2*time.Minute, ""); err != nil {
			return err
		}
		r.consumers = append(r.consumers, p)
	}
	r.poller = &Proc{Name: "poller", Bin: bins["poller"], Env: append(append(append([]string{}, env...), common...),
		fmt.Sprintf("WITHDRAW_HTTP_ADDR=127.0.0.1:%d", pollerPort),
		"WITHDRAW_INSTANCE_ID=chaos-poller",
		"WITHDRAW_POLL_INTERVAL=1s",
	), LogPath: filepath.Join(r.dir, "poller.log"), ReadyMsg: "poller started", Restart: true, RestartDelay: 2 * time.Second}
	if _, err := r.poller.Start(2*time.Minute, ""); err != nil {
		return err
	}
	return nil
}

// stopProcs SIGTERMs the product's processes; it returns
// the ones that did not exit cleanly.
func (r *run) stopProcs() []string {
	var bad []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range r.procs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(30 * time.Second); err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(bad)
	return bad
}

// procs are the product's processes.
func (r *run) procs() []*Proc {
	ps := append([]*Proc{}, r.consumers...)
	if r.poller != nil {
		ps = append(ps, r.poller)
	}
	return ps
}

// action is one scheduled kill.
type action struct {
	at   time.Duration
	name string
	do   func(ctx context.Context)
}

// chaos runs the kills, spread over the production window: consumers
// alternately, the poller, Kafka (one node of a cluster) and MariaDB, each
// brought back after a few seconds.
func (r *run) chaos(ctx context.Context) {
	var acts []action
	spread := func(n int, offset float64, name string, do func(ctx context.Context, i int)) {
		for i := range n {
			f := offset + (1-offset)*float64(i)/float64(n)
			f = min(f, 0.9)
			acts = append(acts, action{at: time.Duration(f * float64(r.o.Produce)), name: name, do: func(ctx context.Context) { do(ctx, i) }})
		}
	}
	spread(r.o.ConsumerKills, 0.15, "consumer", func(ctx context.Context, i int) {
		r.killProc(ctx, r.consumers[i%len(r.consumers)])
	})
	spread(r.o.PollerKills, 0.35, "poller", func(ctx context.Context, _ int) { r.killProc(ctx, r.poller) })
	spread(r.o.KafkaKills, 0.45, "kafka", func(ctx context.Context, i int) {
		node := 0 // a single node: all of Kafka
		what := "kafka"
		if r.o.Env.KafkaNodes > 1 {
			node = 1 + i%r.o.Env.KafkaNodes
			what = fmt.Sprintf("kafka node %d", node)
		}
		r.killServer(ctx, what, func(ctx context.Context) error { return r.o.Env.KillKafka(ctx, node) },
			func(ctx context.Context) error { return r.o.Env.StartKafka(ctx, node) })
	})
	spread(r.o.MySQLKills, 0.65, "mariadb", func(ctx context.Context, _ int) {
		r.killServer(ctx, "mariadb", r.o.Env.KillMySQL, r.o.Env.StartMySQL)
	})
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].at < acts[j].at })
	start := time.Now()
	for _, a := range acts {
		if d := time.Until(start.Add(a.at)); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		a.do(ctx)
	}
}

func (r *run) killProc(ctx context.Context, p *Proc) {
	if err := p.Kill(); err != nil {
		// Down already (an unexpected exit, counted as such): nothing to kill.
		r.logf("kill %s: %v", p.Name, err)
		return
	}
	r.note(fmt.Sprintf("%s SIGKILL at +%s, restarted after %s", p.Name, r.since(), r.o.ProcDown))
	r.logf("SIGKILL %s", p.Name)
	select {
	case <-ctx.Done():
	case <-time.After(r.o.ProcDown):
	}
	if err := p.Revive(); err != nil {
		r.logf("restart %s: %v", p.Name, err)
	}
}

func (r *run) killServer(ctx context.Context, what string, kill, start func(context.Context) error) {
	from, at := time.Now(), r.since()
	r.logf("SIGKILL %s", what)
	if err := kill(ctx); err != nil {
		r.logf("kill %s: %v", what, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(r.o.ServerDown):
	}
	rs := time.Now()
	err := start(context.WithoutCancel(ctx))
	o := outage{What: what, From: from, To: time.Now(), Err: err, restartDur: time.Since(rs)}
	r.mu.Lock()
	r.outages = append(r.outages, o)
	r.mu.Unlock()
	r.note(fmt.Sprintf("%s SIGKILL at +%s, down %s (restart took %s)", what, at, o.To.Sub(o.From).Round(100*time.Millisecond),
		o.restartDur.Round(100*time.Millisecond)))
	if err != nil {
		r.logf("restart %s: %v", what, err)
	} else {
		r.logf("%s back after %s", what, o.To.Sub(o.From).Round(100*time.Millisecond))
	}
}

func (r *run) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kills = append(r.kills, s)
}

func (r *run) since() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.produced.start.IsZero() {
		return 0
	}
	return time.Since(r.produced.start).Round(time.Second)
}

// produce writes the workload in small batches spread over the window. A
// batch that fails (Kafka away) is written again until it goes through:
// the product must take the resulting redeliveries in its stride.
func (r *run) produce(ctx context.Context) {
	w := kafkautil.NewWriter(r.brokers, r.topics.commands)
	w.BatchBytes = int64(kafkautil.BatchBytesFor(commandsMaxMessageBytes))
	defer w.Close()
	msgs := r.wl.Msgs
	const tick = 250 * time.Millisecond
	ticks := max(1, int(r.o.Produce/tick))
	per := max(1, (len(msgs)+ticks-1)/ticks)
	r.mu.Lock()
	r.produced.start = time.Now()
	r.mu.Unlock()
	start := time.Now()
	for i, t := 0, 0; i < len(msgs); i, t = i+per, t+1 {
		if d := time.Until(start.Add(time.Duration(t) * tick)); d > 0 {
			time.Sleep(d)
		}
		batch := make([]kafka.Message, 0, per)
		for _, m := range msgs[i:min(i+per, len(msgs))] {
			batch = append(batch, m.Message)
		}
		for attempt := 0; ; attempt++ {
			if ctx.Err() != nil {
				r.produced.err = ctx.Err()
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := w.WriteMessages(wctx, batch...)
			cancel()
			if err == nil {
				break
			}
			r.mu.Lock()
			r.produced.retries++
			r.mu.Unlock()
			if attempt%5 == 0 {
				r.logf("produce: %v (retrying)", shortErr(err))
			}
			if attempt > 200 {
				r.produced.err = err
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		r.produced.msgs += len(batch)
	}
	r.mu.Lock()
	r.produced.end = time.Now()
	r.mu.Unlock()
}

func shortErr(err error) string {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		n := 0
		var first error
		for _, e := range we {
			if e != nil {
				n++
				if first == nil {
					first = e
				}
			}
		}
		return fmt.Sprintf("%d of %d messages failed, first: %v", n, len(we), first)
	}
	return shortLine(err.Error())
}
