package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/bench"
	"github.com/paycore/withdraw/internal/dispatch/dispatchbench"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/outbox/relay/relaybench"
	"github.com/paycore/withdraw/internal/store"
)

// allOptions are the flags of `bench all`. Volumes left at 0 take the
// mode's default (volumes below).
type allOptions struct {
	quick, keep, verbose, mix bool
	runs                      int
	only, out, dispatchProf   string
	intakeN, naiveN           int
	dispatchN, relayN, e2eN   int
	rate                      int
	warmup, measure           time.Duration
	consumerEnv               multi
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// volumes of the full and the quick mode.
var (
	fullVolumes  = allOptions{runs: 3, intakeN: 100_000, naiveN: 5_000, dispatchN: 5_000, relayN: 200_000, e2eN: 10_000, rate: 500, warmup: 5 * time.Second, measure: 20 * time.Second}
	quickVolumes = allOptions{runs: 1, intakeN: 20_000, naiveN: 1_000, dispatchN: 1_500, relayN: 20_000, e2eN: 2_000, rate: 500, warmup: 2 * time.Second, measure: 8 * time.Second}
)

var phases = []string{"sign", "intake", "dispatch", "relay", "e2e"}

// Latest is bench/results/latest.json. The figures are medians over Runs
// runs (one in quick mode); Samples has every run's value.
type Latest struct {
	Machine
	Runs int `json:"runs"`

	IntakePerSec   *float64 `json:"intake_commands_per_sec,omitempty"`
	NaivePerSec    *float64 `json:"naive_intake_commands_per_sec,omitempty"`
	IntakeSpeedup  *float64 `json:"intake_speedup,omitempty"`
	DispatchPerSec *float64 `json:"dispatch_submissions_per_sec,omitempty"`
	DispatchCPUms  *float64 `json:"dispatch_cpu_ms_per_submission,omitempty"`
	// DispatchOwnUS is the dispatcher's CPU per submission beyond its RSA
	// work, from a CPU profile of the run (dispatchbench.CPUSplit.Own);
	// DispatchOwnGCUS adds all unattributed GC/runtime CPU to it.
	DispatchOwnUS   *float64 `json:"dispatch_own_cpu_us_per_submission,omitempty"`
	DispatchOwnGCUS *float64 `json:"dispatch_own_cpu_with_gc_us_per_submission,omitempty"`
	// The floor of DispatchOwnUS on this machine (dispatchbench.Floor):
	// the bare provider POST and database round trips a submission needs,
	// measured the same way with none of our logic; DispatchOwnBeyondUS is
	// what our logic adds to it.
	DispatchStatements  *float64           `json:"dispatch_statements_per_submission,omitempty"`
	FloorHTTPPostUS     *float64           `json:"floor_http_post_cpu_us,omitempty"`
	FloorSQLRoundUS     *float64           `json:"floor_sql_round_trip_cpu_us,omitempty"`
	DispatchFloorUS     *float64           `json:"dispatch_floor_cpu_us_per_submission,omitempty"`
	DispatchOwnBeyondUS *float64           `json:"dispatch_own_cpu_beyond_floor_us_per_submission,omitempty"`
	SignMs              *float64           `json:"rsa_sign_ms,omitempty"`
	VerifyMs            *float64           `json:"rsa_verify_ms,omitempty"`
	SigningBound        *float64           `json:"signing_bound_per_sec,omitempty"`
	RelayPerSec         *float64           `json:"relay_events_per_sec,omitempty"`
	E2EPerSec           *float64           `json:"e2e_withdrawals_per_sec,omitempty"`
	E2EP50ms            *float64           `json:"e2e_p50_ms,omitempty"`
	E2EP99ms            *float64           `json:"e2e_p99_ms,omitempty"`
	E2EOfferedPerSec    *float64           `json:"e2e_offered_per_sec,omitempty"`
	E2ECompletedPerSec  *float64           `json:"e2e_open_loop_completed_per_sec,omitempty"`
	MaxRSSMB            map[string]float64 `json:"max_rss_mb,omitempty"`

	Volumes map[string]any       `json:"volumes"`
	Samples map[string][]float64 `json:"samples"`
	Targets []Target             `json:"targets"`
	Checks  []string             `json:"checks"`
}

// Target is one performance target and whether this run met it.
type Target struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Met    bool    `json:"met"`
}

func allMain(args []string) error {
	var o allOptions
	fs := flag.NewFlagSet("bench all", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "one run of each, smaller volumes (under 2 minutes)")
	fs.IntVar(&o.runs, "runs", 0, "runs of each benchmark; the figure is their median (default 3, quick 1)")
	fs.StringVar(&o.only, "only", "", "comma-separated subset of "+strings.Join(phases, ",")+" (then -out defaults to none)")
	fs.StringVar(&o.out, "out", "", "where to write the results (default bench/results/latest.json)")
	fs.IntVar(&o.intakeN, "intake-n", 0, "commands for the intake (default 100000, quick 20000)")
	fs.IntVar(&o.naiveN, "naive-n", 0, "commands for the naive consumer (default 5000, quick 1000)")
	fs.IntVar(&o.dispatchN, "dispatch-n", 0, "withdrawals for the dispatcher (default 5000, quick 1500)")
	fs.IntVar(&o.relayN, "relay-n", 0, "outbox backlog rows for the relay (default 200000, quick 20000)")
	fs.IntVar(&o.e2eN, "e2e-n", 0, "commands of a saturated end-to-end run (default 10000, quick 2000)")
	fs.IntVar(&o.rate, "e2e-rate", 0, "open-loop offered load, commands/s (default 500)")
	fs.DurationVar(&o.warmup, "e2e-warmup", 0, "open-loop warm-up, excluded from the latencies (default 5s, quick 2s)")
	fs.DurationVar(&o.measure, "e2e-measure", 0, "open-loop measured period (default 20s, quick 8s)")
	fs.BoolVar(&o.mix, "e2e-mix", false, "end-to-end with the production channel mix instead of e-commerce only")
	fs.Var(&o.consumerEnv, "consumer-env", "extra WITHDRAW_X=v setting of the consumer in the end-to-end runs (repeatable)")
	fs.StringVar(&o.dispatchProf, "dispatch-cpuprofile", "", "write a CPU profile of the (last) dispatch run, dispatcher and sandbox in this process, to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases and topics")
	fs.BoolVar(&o.verbose, "v", false, "show warnings of the in-process components")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	def := fullVolumes
	if o.quick {
		def = quickVolumes
	}
	for _, f := range []struct{ v, d *int }{{&o.runs, &def.runs}, {&o.intakeN, &def.intakeN}, {&o.naiveN, &def.naiveN},
		{&o.dispatchN, &def.dispatchN}, {&o.relayN, &def.relayN}, {&o.e2eN, &def.e2eN}, {&o.rate, &def.rate}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if o.warmup == 0 {
		o.warmup = def.warmup
	}
	if o.measure == 0 {
		o.measure = def.measure
	}
	run := map[string]bool{}
	if o.only == "" {
		for _, p := range phases {
			run[p] = true
		}
		if o.out == "" {
			o.out = "bench/results/latest.json"
		}
	} else {
		for _, p := range strings.Split(o.only, ",") {
			if !slices.Contains(phases, p) {
				return fmt.Errorf("-only: unknown %q, want some of %v", p, phases)
			}
			run[p] = true
		}
	}
	setLogLevel(o.verbose)
	return all(context.Background(), o, run)
}

// all runs the benchmarks selected by run, each o.runs times.
func all(ctx context.Context, o allOptions, run map[string]bool) error {
	br, err := startRun(ctx, o.quick, true)
	if err != nil {
		return err
	}
	dsn, brokers, step := br.dsn, br.brokers, br.step
	res := &Latest{Machine: br.machine, Runs: o.runs, Volumes: map[string]any{}, Samples: map[string][]float64{}}
	step("bench all (%s mode, %d run(s) each): %d cores, load average %s, MariaDB %s, Kafka %s, commit %s",
		res.Mode, o.runs, res.CPUCores, res.LoadAvgStart, res.MariaDBVersion, res.KafkaVersion, res.GitCommit)
	sample := func(key string, v float64) { res.Samples[key] = append(res.Samples[key], v) }

	// The binaries first: a build failure should not wait for the rest.
	var e2e *bench.E2E
	if run["e2e"] {
		binDir, err := os.MkdirTemp("", "withdraw-bench-bin")
		if err != nil {
			return err
		}
		defer os.RemoveAll(binDir)
		step("building cmd/consumer and cmd/sandbox ...")
		consumerBin, sandboxBin, err := bench.BuildBinaries(ctx, binDir)
		if err != nil {
			return err
		}
		e2e = &bench.E2E{ConsumerBin: consumerBin, SandboxBin: sandboxBin, DSN: dsn, Brokers: brokers,
			Mix: o.mix, ConsumerEnv: o.consumerEnv, Keep: o.keep, Log: os.Stdout}
		if err := e2e.Setup(); err != nil {
			return err
		}
		defer e2e.Close()
	}

	var signSec float64
	if run["sign"] || run["dispatch"] || run["e2e"] {
		for i := range o.runs {
			sign, verify, err := dispatchbench.SignCost()
			if err != nil {
				return err
			}
			sample("rsa_sign_ms", ms(sign))
			sample("rsa_verify_ms", ms(verify))
			step("sign %d/%d: RSA-2048 sign %.3f ms, verify %.3f ms", i+1, o.runs, ms(sign), ms(verify))
		}
		res.SignMs, res.VerifyMs = med(res.Samples["rsa_sign_ms"]), med(res.Samples["rsa_verify_ms"])
		signSec = *res.SignMs / 1000
		bound := float64(res.CPUCores) / (2 * signSec)
		res.SigningBound = &bound
	}

	if run["intake"] {
		res.Volumes["intake_commands"], res.Volumes["naive_commands"] = o.intakeN, o.naiveN
		var lastCheck string
		for i := range o.runs {
			step("intake %d/%d: %d commands, naive %d ...", i+1, o.runs, o.intakeN, o.naiveN)
			iopts := options{n: o.intakeN, naive: o.naiveN, partitions: 6, batchSize: 1000, pipeline: 3, batchWait: 20 * time.Millisecond, keep: o.keep}
			rep, err := intakeBench(ctx, iopts)
			if err != nil {
				return fmt.Errorf("intake run %d: %w", i+1, err)
			}
			sample("intake_commands_per_sec", rep.Results[0].PerSecond)
			sample("naive_intake_commands_per_sec", rep.Results[1].PerSecond)
			lastCheck = "intake: " + rep.Checked
		}
		res.Checks = append(res.Checks, lastCheck)
		res.IntakePerSec, res.NaivePerSec = med(res.Samples["intake_commands_per_sec"]), med(res.Samples["naive_intake_commands_per_sec"])
		sp := *res.IntakePerSec / *res.NaivePerSec
		res.IntakeSpeedup = &sp
	}

	if run["dispatch"] {
		res.Volumes["dispatch_withdrawals"] = o.dispatchN
		for i := range o.runs {
			step("dispatch %d/%d: %d withdrawals, zero-latency sandbox, one dispatcher ...", i+1, o.runs, o.dispatchN)
			r, floor, err := dispatchRun(ctx, dsn, o)
			if err != nil {
				return fmt.Errorf("dispatch run %d: %w", i+1, err)
			}
			sample("dispatch_submissions_per_sec", r.PerSec)
			sample("dispatch_cpu_ms_per_submission", ms(r.CPUPerSubmission))
			sample("dispatch_own_cpu_us_per_submission", us(r.Split.Own))
			sample("dispatch_own_cpu_with_gc_us_per_submission", us(r.Split.OwnWithRuntime()))
			stmts := r.StatementsPerSubmission()
			sample("dispatch_statements_per_submission", stmts)
			sample("floor_http_post_cpu_us", us(floor.HTTPPost))
			sample("floor_sql_round_trip_cpu_us", us(floor.SQLRoundTrip))
			sample("dispatch_floor_cpu_us_per_submission", us(floor.PerSubmission(stmts)))
			sample("dispatch_own_cpu_beyond_floor_us_per_submission", us(r.Split.Own-floor.PerSubmission(stmts)))
			step("  %.0f submissions/s, CPU %.3f ms per submission: %s", r.PerSec, ms(r.CPUPerSubmission), r.Split)
			step("  floor: %s; %.2f statements per submission → %s per submission", floor, stmts, floor.PerSubmission(stmts).Round(time.Microsecond))
		}
		res.Checks = append(res.Checks, fmt.Sprintf("dispatch: every run's %d withdrawals SUBMITTED, each created once by the sandbox (dispatchbench.Run)", o.dispatchN))
		res.DispatchPerSec, res.DispatchCPUms = med(res.Samples["dispatch_submissions_per_sec"]), med(res.Samples["dispatch_cpu_ms_per_submission"])
		res.DispatchOwnUS, res.DispatchOwnGCUS = med(res.Samples["dispatch_own_cpu_us_per_submission"]), med(res.Samples["dispatch_own_cpu_with_gc_us_per_submission"])
		res.DispatchStatements = med(res.Samples["dispatch_statements_per_submission"])
		res.FloorHTTPPostUS, res.FloorSQLRoundUS = med(res.Samples["floor_http_post_cpu_us"]), med(res.Samples["floor_sql_round_trip_cpu_us"])
		res.DispatchFloorUS = med(res.Samples["dispatch_floor_cpu_us_per_submission"])
		res.DispatchOwnBeyondUS = med(res.Samples["dispatch_own_cpu_beyond_floor_us_per_submission"])
	}

	if run["relay"] {
		res.Volumes["relay_events"] = o.relayN
		var lastCheck string
		for i := range o.runs {
			step("relay %d/%d: %d-row outbox backlog ...", i+1, o.runs, o.relayN)
			r, check, err := relayRun(ctx, dsn, brokers, o)
			if err != nil {
				return fmt.Errorf("relay run %d: %w", i+1, err)
			}
			sample("relay_events_per_sec", r.EventsPerSec)
			step("  %s", r)
			lastCheck = check
		}
		res.Checks = append(res.Checks, lastCheck)
		res.RelayPerSec = med(res.Samples["relay_events_per_sec"])
	}

	if run["e2e"] {
		res.Volumes["e2e_saturated_commands"] = o.e2eN
		res.Volumes["e2e_open_loop"] = fmt.Sprintf("%d/s for %s, first %s excluded", o.rate, o.warmup+o.measure, o.warmup)
		res.Volumes["e2e_workload"] = "wechatpay_ecommerce over 500 sub-merchants"
		if o.mix {
			res.Volumes["e2e_workload"] = "production channel mix (bench.Valid)"
		}
		res.Volumes["e2e_consumer_settings"] = strings.TrimSpace("defaults, except WITHDRAW_SCHEDULE=accelerated WITHDRAW_DISPATCH_RATE=1000000 WITHDRAW_DISPATCH_BURST=1000 " + strings.Join(o.consumerEnv, " "))
		res.MaxRSSMB = map[string]float64{}
		rss := func(r bench.E2EResult) {
			for p, mb := range r.RSSMB {
				res.MaxRSSMB[p] = max(res.MaxRSSMB[p], mb)
				sample("rss_mb_"+p, mb)
			}
		}
		var satCheck, olCheck string
		for i := range o.runs {
			step("e2e saturated %d/%d: %d commands ...", i+1, o.runs, o.e2eN)
			r, err := e2e.Saturated(ctx, o.e2eN)
			if err != nil {
				return fmt.Errorf("e2e saturated run %d: %w", i+1, err)
			}
			sample("e2e_withdrawals_per_sec", r.PerSec)
			rss(r)
			satCheck = "e2e saturated: " + r.Checked
			for p, v := range r.CPUmsPerCommand {
				sample("e2e_cpu_ms_per_withdrawal_"+p, v)
			}
			step("  %.0f withdrawals/s (%d in %.2fs); CPU per withdrawal: consumer %.2f ms, sandbox %.2f ms; peak RSS consumer %.0f MB, sandbox %.0f MB",
				r.PerSec, r.Commands, r.Seconds, r.CPUmsPerCommand["consumer"], r.CPUmsPerCommand["sandbox"], r.RSSMB["consumer"], r.RSSMB["sandbox"])
		}
		for i := range o.runs {
			step("e2e open loop %d/%d: %d commands/s ...", i+1, o.runs, o.rate)
			r, err := e2e.OpenLoop(ctx, o.rate, o.warmup, o.measure)
			if err != nil {
				return fmt.Errorf("e2e open-loop run %d: %w", i+1, err)
			}
			sample("e2e_p50_ms", r.P50ms)
			sample("e2e_p99_ms", r.P99ms)
			sample("e2e_max_ms", r.MaxMs)
			sample("e2e_send_lag_max_ms", r.SendLagMaxMs)
			sample("e2e_open_loop_completed_per_sec", r.CompletedPerSec)
			rss(r)
			olCheck = "e2e open loop: " + r.Checked
			step("  %d measured: p50 %.1f ms, p99 %.1f ms, max %.1f ms; completed %.0f/s (producer lag ≤ %.1f ms); peak RSS consumer %.0f MB, sandbox %.0f MB",
				r.Measured, r.P50ms, r.P99ms, r.MaxMs, r.CompletedPerSec, r.SendLagMaxMs, r.RSSMB["consumer"], r.RSSMB["sandbox"])
		}
		res.Checks = append(res.Checks, satCheck, olCheck)
		res.E2EPerSec, res.E2EP50ms, res.E2EP99ms = med(res.Samples["e2e_withdrawals_per_sec"]), med(res.Samples["e2e_p50_ms"]), med(res.Samples["e2e_p99_ms"])
		offered := float64(o.rate)
		res.E2EOfferedPerSec, res.E2ECompletedPerSec = &offered, med(res.Samples["e2e_open_loop_completed_per_sec"])
	}

	res.Machine = br.finish()
	res.Targets = targets(res, o.rate)
	fmt.Println()
	printTable(os.Stdout, res)
	if o.out == "" {
		return nil
	}
	return writeReport(o.out, res)
}

// dispatchRun is one dispatchbench.Run in a fresh database: zero-latency
// sandbox, one dispatcher (64 in flight), 500 sub-merchants; then the floor
// of its own CPU in the same database (dispatchbench.MeasureFloor, 10,000
// POSTs and round trips).
func dispatchRun(ctx context.Context, dsn string, o allOptions) (dispatchbench.Result, dispatchbench.Floor, error) {
	fresh, drop, err := bench.FreshDatabase(ctx, dsn, "withdraw_bench_"+bench.RandomHex(4)+"_dispatch")
	if err != nil {
		return dispatchbench.Result{}, dispatchbench.Floor{}, err
	}
	if !o.keep {
		defer drop()
	}
	db, err := store.OpenMySQL(ctx, fresh, store.PoolOptions{MaxOpen: 40})
	if err != nil {
		return dispatchbench.Result{}, dispatchbench.Floor{}, err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return dispatchbench.Result{}, dispatchbench.Floor{}, err
	}
	opts := dispatchbench.Options{DB: db, N: o.dispatchN, Merchants: 500, MaxInFlight: 64}
	if o.dispatchProf != "" {
		f, err := os.Create(o.dispatchProf)
		if err != nil {
			return dispatchbench.Result{}, dispatchbench.Floor{}, err
		}
		defer f.Close()
		opts.ProfileTo = f
	}
	r, err := dispatchbench.Run(ctx, opts)
	if err != nil {
		return r, dispatchbench.Floor{}, err
	}
	counts, err := store.CountByState(ctx, db)
	if err != nil {
		return r, dispatchbench.Floor{}, err
	}
	if counts["SUBMITTED"] != int64(o.dispatchN) {
		return r, dispatchbench.Floor{}, fmt.Errorf("withdrawals by state %v, want %d SUBMITTED", counts, o.dispatchN)
	}
	floor, err := dispatchbench.MeasureFloor(ctx, db, 10_000, opts.MaxInFlight)
	return r, floor, err
}

// relayRun is one relaybench.BenchBacklog in a fresh database and topic (12
// partitions, the consumer's default), checked against the topic.
func relayRun(ctx context.Context, dsn string, brokers []string, o allOptions) (relaybench.BacklogResult, string, error) {
	id := bench.RandomHex(4)
	fresh, drop, err := bench.FreshDatabase(ctx, dsn, "withdraw_bench_"+id+"_relay")
	if err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	if !o.keep {
		defer drop()
	}
	topic := "bench.relay." + id
	const partitions = 12
	if err := bench.CreateTopics(ctx, brokers, map[string]int{topic: partitions}); err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	if !o.keep {
		defer bench.DeleteTopics(brokers, topic)
	}
	db, err := store.OpenMySQL(ctx, fresh, store.PoolOptions{})
	if err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	r, err := relaybench.BenchBacklog(ctx, db, brokers, topic, o.relayN, relay.Options{})
	if err != nil {
		return r, "", err
	}
	var rows, unpublished int64
	if err := db.Gorm().WithContext(ctx).Raw("SELECT COUNT(*), COALESCE(SUM(published_at = ?), 0) FROM outbox", store.NotPublished).Row().Scan(&rows, &unpublished); err != nil {
		return r, "", err
	}
	onTopic, err := bench.TopicMessages(ctx, brokers, topic, partitions)
	if err != nil {
		return r, "", err
	}
	if rows != int64(o.relayN) || unpublished != 0 || onTopic < o.relayN {
		return r, "", fmt.Errorf("relay check failed: %d outbox rows (%d unpublished), %d messages on the topic; want %d, 0, ≥ %d",
			rows, unpublished, onTopic, o.relayN, o.relayN)
	}
	return r, fmt.Sprintf("relay: %d outbox rows all marked published, %d messages on the topic (%d redelivered)", rows, onTopic, onTopic-o.relayN), nil
}

// targets evaluates the performance targets on the figures measured.
func targets(r *Latest, rate int) []Target {
	var ts []Target
	add := func(name, target string, v *float64, met func(float64) bool) {
		if v != nil {
			ts = append(ts, Target{Name: name, Target: target, Value: round(*v, 2), Met: met(*v)})
		}
	}
	add("intake_commands_per_sec", "≥ 20000", r.IntakePerSec, func(v float64) bool { return v >= 20_000 })
	add("intake_speedup", "≥ 5× naive", r.IntakeSpeedup, func(v float64) bool { return v >= 5 })
	add("relay_events_per_sec", "≥ 30000", r.RelayPerSec, func(v float64) bool { return v >= 30_000 })
	if r.SigningBound != nil {
		b := *r.SigningBound
		frac := func(v *float64) *float64 {
			if v == nil {
				return nil
			}
			f := *v / b
			return &f
		}
		add("dispatch_share_of_signing_bound", "≥ 0.70", frac(r.DispatchPerSec), func(v float64) bool { return v >= 0.70 })
		add("e2e_share_of_signing_bound", "≥ 0.60", frac(r.E2EPerSec), func(v float64) bool { return v >= 0.60 })
	}
	add("dispatch_own_cpu_us_per_submission", "≤ 100", r.DispatchOwnUS, func(v float64) bool { return v <= 100 })
	add("e2e_p99_ms", fmt.Sprintf("< 250 at %d/s", rate), r.E2EP99ms, func(v float64) bool { return v < 250 })
	for _, p := range slices.Sorted(maps.Keys(r.MaxRSSMB)) {
		v := r.MaxRSSMB[p]
		add("max_rss_mb."+p, "< 150", &v, func(v float64) bool { return v < 150 })
	}
	return ts
}

func printTable(w *os.File, r *Latest) {
	row := func(name string, v *float64, unit, format string) {
		if v == nil {
			return
		}
		vals := r.Samples[name]
		runs := ""
		if len(vals) > 1 {
			parts := make([]string, len(vals))
			for i, x := range vals {
				parts[i] = fmt.Sprintf(format, x)
			}
			runs = strings.Join(parts, " / ")
		}
		fmt.Fprintf(w, "%-48s %12s %-14s %s\n", name, fmt.Sprintf(format, *v), unit, runs)
	}
	fmt.Fprintf(w, "%-48s %12s %-14s %s\n", "figure ("+r.Mode+", median of "+fmt.Sprint(r.Runs)+")", "value", "unit", "runs")
	fmt.Fprintln(w, strings.Repeat("-", 94))
	row("intake_commands_per_sec", r.IntakePerSec, "commands/s", "%.0f")
	row("naive_intake_commands_per_sec", r.NaivePerSec, "commands/s", "%.0f")
	row("intake_speedup", r.IntakeSpeedup, "×", "%.1f")
	row("rsa_sign_ms", r.SignMs, "ms", "%.3f")
	row("rsa_verify_ms", r.VerifyMs, "ms", "%.3f")
	row("signing_bound_per_sec", r.SigningBound, "submissions/s", "%.0f")
	row("dispatch_submissions_per_sec", r.DispatchPerSec, "submissions/s", "%.0f")
	row("dispatch_cpu_ms_per_submission", r.DispatchCPUms, "ms", "%.3f")
	row("dispatch_own_cpu_us_per_submission", r.DispatchOwnUS, "µs", "%.0f")
	row("dispatch_own_cpu_with_gc_us_per_submission", r.DispatchOwnGCUS, "µs", "%.0f")
	row("dispatch_statements_per_submission", r.DispatchStatements, "statements", "%.2f")
	row("floor_http_post_cpu_us", r.FloorHTTPPostUS, "µs", "%.0f")
	row("floor_sql_round_trip_cpu_us", r.FloorSQLRoundUS, "µs", "%.0f")
	row("dispatch_floor_cpu_us_per_submission", r.DispatchFloorUS, "µs", "%.0f")
	row("dispatch_own_cpu_beyond_floor_us_per_submission", r.DispatchOwnBeyondUS, "µs", "%.0f")
	row("relay_events_per_sec", r.RelayPerSec, "events/s", "%.0f")
	row("e2e_withdrawals_per_sec", r.E2EPerSec, "withdrawals/s", "%.0f")
	row("e2e_p50_ms", r.E2EP50ms, "ms", "%.1f")
	row("e2e_p99_ms", r.E2EP99ms, "ms", "%.1f")
	row("e2e_open_loop_completed_per_sec", r.E2ECompletedPerSec, "withdrawals/s", "%.0f")
	for _, p := range []string{"consumer", "sandbox"} {
		if xs := r.Samples["e2e_cpu_ms_per_withdrawal_"+p]; len(xs) > 0 {
			row("e2e_cpu_ms_per_withdrawal_"+p, med(xs), "ms (saturated)", "%.2f")
		}
	}
	for _, p := range slices.Sorted(maps.Keys(r.MaxRSSMB)) {
		v := r.MaxRSSMB[p]
		row("rss_mb_"+p, &v, "MB (peak)", "%.0f")
	}
	fmt.Fprintf(w, "\ncontext: %d cores, MariaDB %s, Kafka %s, commit %s, %s; load average %s at start, %s at end; %.0fs\n",
		r.CPUCores, r.MariaDBVersion, r.KafkaVersion, r.GitCommit, r.GoVersion, r.LoadAvgStart, r.LoadAvgEnd, r.Seconds)
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		for _, t := range r.Targets {
			mark := "MET   "
			if !t.Met {
				mark = "MISSED"
			}
			fmt.Fprintf(w, "  %s %-34s %10.2f  (%s)\n", mark, t.Name, t.Value, t.Target)
		}
	}
	fmt.Fprintln(w, "\nchecks:")
	for _, c := range r.Checks {
		fmt.Fprintln(w, "  "+c)
	}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func med(xs []float64) *float64 {
	m := bench.Median(xs)
	return &m
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
