package main

// `bench scale` (make bench-scale): what months of history cost. It fills
// one fresh database with 90 days of finished withdrawals (internal/bench/
// scale), keeps another nearly empty, and measures on both, phase by phase
// and alternating, what should not grow with the history: intake,
// dispatcher and relay throughput, an idle poller sweep and an idle
// dispatcher (index rows read), admin lookups, and the 08:00 burst of
// status queries through the real poller. It prints a table of the
// figures, their ratios (history ÷ empty) and the targets, and writes
// bench/results/scale.json (docs/bench.md).

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/bench"
	"github.com/paycore/withdraw/internal/bench/scale"
	"github.com/paycore/withdraw/internal/dispatch/dispatchbench"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/outbox/relay/relaybench"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
)

type scaleOptions struct {
	rows, emptyRows, merchants int
	burst, followUps           int
	rate                       float64
	intakeN, dispatchN, relayN int
	lookups, sweeps, runs      int
	quick, keep, verbose       bool
	out                        string
	budget                     time.Duration
	idleDispatcher             time.Duration
}

// ScaleReport is bench/results/scale.json.
type ScaleReport struct {
	Machine
	Volumes  map[string]any `json:"volumes"`
	Fill     map[string]any `json:"fill"`
	Figures  []ScaleFigure  `json:"figures"`
	Burst    map[string]any `json:"burst"`
	Examined map[string]any `json:"rows_examined"`
	Targets  []Target       `json:"targets"`
	Checks   []string       `json:"checks"`
	// Samples are every run's values of each figure (the figures are
	// their medians).
	Samples map[string]map[string][]float64 `json:"samples"`
}

// ScaleFigure is one figure on both databases (medians over the runs).
// Ratio is history ÷ empty: the median of the runs' pairs, each measured
// back to back;
// CostRatio is the history's cost relative to the empty database's: the
// ratio itself for times, counts and statements, its inverse for rates
// (a lower rate is a higher cost). The target is CostRatio ≤ 1.1.
type ScaleFigure struct {
	Name      string   `json:"name"`
	Unit      string   `json:"unit"`
	Empty     float64  `json:"empty"`
	History   float64  `json:"history"`
	Ratio     *float64 `json:"ratio,omitempty"`
	CostRatio *float64 `json:"cost_ratio,omitempty"`
	Met       *bool    `json:"met,omitempty"`
	Note      string   `json:"note,omitempty"`
}

func scaleMain(args []string) error {
	o := scaleOptions{}
	fs := flag.NewFlagSet("bench scale", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: go run ./cmd/bench scale [flags]

Fills a fresh database with months of withdrawal history (INSERT … SELECT over
MariaDB's sequence engine), keeps another one nearly empty, and measures on
both: intake, dispatch and relay throughput, an idle poller sweep and an idle
dispatcher (index rows read), admin lookups, and the 08:00 burst of status
queries drained by the real poller against the provider sandbox. Prints the
figures, their ratios (history ÷ empty) and the targets; writes --out.
Needs the local env: eval "$(deploy/local/env.sh env)". See docs/bench.md.

flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.rows, "rows", 0, "withdrawals of history (default 2000000, quick 100000)")
	fs.IntVar(&o.emptyRows, "empty-rows", 10_000, "rows of the same history in the \"empty\" database (for the lookups to find)")
	fs.IntVar(&o.merchants, "merchants", 5000, "e-commerce sub-merchants of the history")
	fs.BoolVar(&o.quick, "quick", false, "small volumes (100k rows of history): a smoke test, not a figure")
	fs.IntVar(&o.burst, "burst", 0, "SUBMITTED withdrawals due at once at 08:00 (default 20000, quick 2000)")
	fs.IntVar(&o.followUps, "follow-ups", -1, "SUCCEEDED follow-ups due at the same time (default burst/10)")
	fs.Float64Var(&o.rate, "rate", 300, "the poller's --poll-query-rate in the burst, queries/s (each query costs two RSA signatures on these cores)")
	fs.IntVar(&o.intakeN, "intake-n", 0, "commands for the intake (default 100000, quick 20000)")
	fs.IntVar(&o.dispatchN, "dispatch-n", 0, "withdrawals for the dispatcher (default 5000, quick 1500)")
	fs.IntVar(&o.relayN, "relay-n", 0, "outbox backlog rows for the relay (default 200000, quick 20000)")
	fs.IntVar(&o.lookups, "lookups", 0, "admin lookups of each kind (default 1000, quick 200)")
	fs.IntVar(&o.sweeps, "sweeps", 200, "idle sweeps timed")
	fs.IntVar(&o.runs, "runs", 0, "runs of each phase but the burst, alternating the databases; the figure is their median (default 5, quick 1)")
	fs.DurationVar(&o.idleDispatcher, "idle-dispatcher", 2*time.Second, "how long the idle dispatcher runs")
	fs.DurationVar(&o.budget, "budget", 15*time.Minute, "the whole run's target time")
	fs.StringVar(&o.out, "out", "bench/results/scale.json", "where to write the results (empty: nowhere)")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases and topics")
	fs.BoolVar(&o.verbose, "v", false, "show warnings of the in-process components")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	def := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.rows, 2_000_000, 100_000)
	def(&o.burst, 20_000, 2_000)
	def(&o.intakeN, 100_000, 20_000)
	def(&o.dispatchN, 5_000, 1_500)
	def(&o.relayN, 200_000, 20_000)
	def(&o.lookups, 1000, 200)
	def(&o.runs, 5, 1)
	if o.followUps < 0 {
		o.followUps = o.burst / 10
	}
	setLogLevel(o.verbose)
	return runScale(context.Background(), o)
}

// scaleDB is one of the two databases.
type scaleDB struct {
	name string
	dsn  string
	db   *store.DB
	fill scale.FillOptions
	st   scale.FillStats
}

func runScale(ctx context.Context, o scaleOptions) error {
	br, err := startRun(ctx, o.quick, false)
	if err != nil {
		return err
	}
	dsn, brokers, started, step := br.dsn, br.brokers, br.started, br.step
	rep := &ScaleReport{Machine: br.machine,
		Volumes: map[string]any{"history_rows": o.rows, "empty_rows": o.emptyRows, "merchants": o.merchants, "burst_submitted": o.burst,
			"burst_follow_ups": o.followUps, "burst_query_rate": o.rate, "intake_commands": o.intakeN, "dispatch_withdrawals": o.dispatchN,
			"relay_events": o.relayN, "lookups": o.lookups, "runs": o.runs, "idle_sweeps": o.sweeps, "idle_dispatcher_seconds": o.idleDispatcher.Seconds()},
		Fill: map[string]any{}, Burst: map[string]any{}, Examined: map[string]any{}}
	step("bench scale (%s): %d rows of history, %d cores, load average %s, MariaDB %s, commit %s",
		rep.Mode, o.rows, rep.CPUCores, rep.LoadAvgStart, rep.MariaDBVersion, rep.GitCommit)

	id := bench.RandomHex(4)
	now := time.Now().UTC()
	dbs := []*scaleDB{
		{name: "empty", fill: scale.FillOptions{Rows: o.emptyRows, Merchants: o.merchants, Now: now}},
		{name: "history", fill: scale.FillOptions{Rows: o.rows, Merchants: o.merchants, Now: now}},
	}
	for _, d := range dbs {
		fresh, drop, err := bench.FreshDatabase(ctx, dsn, "withdraw_bench_"+id+"_"+d.name)
		if err != nil {
			return err
		}
		if !o.keep {
			defer drop()
		}
		d.dsn = fresh
		if d.db, err = store.OpenMySQL(ctx, fresh, store.PoolOptions{MaxOpen: 40}); err != nil {
			return err
		}
		defer d.db.Close()
		if _, err := d.db.Migrate(ctx); err != nil {
			return err
		}
		if d.fill.Rows == 0 {
			continue
		}
		step("fill %s: %d withdrawals over 90 days ...", d.name, d.fill.Rows)
		f := d.fill
		last := time.Now()
		f.Progress = func(done, total int, took time.Duration) {
			if time.Since(last) > 10*time.Second || done == total {
				step("  %d/%d rows (%.0f s)", done, total, took.Seconds())
				last = time.Now()
			}
		}
		if d.st, err = scale.Fill(ctx, d.db, f); err != nil {
			return err
		}
		step("  filled in %.1f s: %d withdrawals %v, %d in their refund follow-up, %d merchant keys, %d outbox rows, %d audit rows",
			d.st.Seconds, d.st.Withdrawals, d.st.ByState, d.st.FollowUps, d.st.Merchants, d.st.Outbox, d.st.Attempts)
		rep.Fill[d.name] = d.st
	}
	fillSecs := time.Since(started).Seconds()
	rep.Fill["seconds_both"] = fillSecs
	if h := dbs[1].st; h.Seconds > 0 {
		rep.Fill["history_rows_per_sec"] = float64(h.Withdrawals) / h.Seconds
	}

	figs := map[string]*ScaleFigure{}
	samples := map[string][2][]float64{}
	var order []string
	record := func(name, unit string, which int, v float64) {
		if figs[name] == nil {
			figs[name] = &ScaleFigure{Name: name, Unit: unit}
			order = append(order, name)
		}
		xs := samples[name]
		xs[which] = append(xs[which], v)
		samples[name] = xs
	}

	// Every phase but the burst runs o.runs times, alternating the two
	// databases, and its figure is the median: the host's speed drifts by
	// 10–20 % within minutes (docs/bench.md), more than the effects looked
	// for. Nothing is due in either database until the burst.
	for run := range o.runs {
		sweeps, err := scale.IdleSweeps(ctx, []string{dbs[0].dsn, dbs[1].dsn}, o.sweeps)
		if err != nil {
			return err
		}
		for i, r := range sweeps {
			d := dbs[i]
			if r.Claimed != 0 {
				return fmt.Errorf("idle sweep on %s claimed %d rows: the fill left rows due", d.name, r.Claimed)
			}
			step("idle poller sweep on %s (%d/%d): %.2f ms per sweep, %.1f index rows read per sweep (%d sweeps, alternating with the other database's)",
				d.name, run+1, o.runs, ms(r.PerSweep), r.IndexRowsRead, o.sweeps)
			record("idle_sweep_ms", "ms", i, ms(r.PerSweep))
			record("idle_sweep_index_rows", "rows/sweep", i, r.IndexRowsRead)
		}
		for i, d := range dbs {
			perSec, err := scale.IdleDispatcher(ctx, d.dsn, o.idleDispatcher)
			if err != nil {
				return err
			}
			step("idle dispatcher on %s (%d/%d): %.1f index rows read per second (%s)", d.name, run+1, o.runs, perSec, o.idleDispatcher)
			record("idle_dispatcher_index_rows", "rows/s", i, perSec)
		}
		for i, d := range dbs {
			r, err := scale.Lookups(ctx, d.db, d.fill, o.lookups, uint64(7+run), 0)
			if err != nil {
				return err
			}
			step("lookups on %s (%d/%d): by id p50 %.2f ms p99 %.2f ms, by out_request_no p50 %.2f ms p99 %.2f ms; again: by id p50 %.2f ms p99 %.2f ms, by out_request_no p50 %.2f ms p99 %.2f ms (%d each)",
				d.name, run+1, o.runs, ms(r.ByIDP50), ms(r.ByIDP99), ms(r.ByKeyP50), ms(r.ByKeyP99),
				ms(r.WarmByIDP50), ms(r.WarmByIDP99), ms(r.WarmByKeyP50), ms(r.WarmByKeyP99), o.lookups)
			record("lookup_by_id_p50_ms", "ms", i, ms(r.ByIDP50))
			record("lookup_by_id_p99_ms", "ms", i, ms(r.ByIDP99))
			record("lookup_by_key_p50_ms", "ms", i, ms(r.ByKeyP50))
			record("lookup_by_key_p99_ms", "ms", i, ms(r.ByKeyP99))
			record("lookup_again_by_id_p50_ms", "ms", i, ms(r.WarmByIDP50))
			record("lookup_again_by_id_p99_ms", "ms", i, ms(r.WarmByIDP99))
			record("lookup_again_by_key_p50_ms", "ms", i, ms(r.WarmByKeyP50))
			record("lookup_again_by_key_p99_ms", "ms", i, ms(r.WarmByKeyP99))
		}
	}
	for i, d := range dbs {
		step("08:00 burst on %s: %d SUBMITTED + %d follow-ups due, poller at %.0f queries/s ...", d.name, o.burst, o.followUps, o.rate)
		r, err := scale.Burst(ctx, d.db, d.dsn, scale.BurstOptions{Submitted: o.burst, FollowUps: o.followUps, Rate: o.rate, Merchants: o.merchants,
			Logger: slog.Default()}, "b01")
		if err != nil {
			return fmt.Errorf("burst on %s: %w", d.name, err)
		}
		step("  drained in %.1f s (%.1f s from the poller's start): %d queries at %.0f/s of %.0f/s configured; %d follow-ups during the burst (share %.2f); %.2f statements per withdrawal; states %v; %d answers not recorded at first",
			r.Drain.Seconds(), r.Wall.Seconds(), r.Queries, r.QueriesPerSec, r.Configured, r.FollowUpsDuringBurst, r.FollowUpShare, r.StatementsPerWithdrawal, r.ByState, r.Unrecorded)
		rep.Burst[d.name] = map[string]any{"drain_seconds": r.Drain.Seconds(), "wall_seconds": r.Wall.Seconds(), "queries": r.Queries,
			"queries_per_sec": r.QueriesPerSec, "configured_per_sec": r.Configured, "follow_ups_during_burst": r.FollowUpsDuringBurst,
			"follow_up_share": r.FollowUpShare, "unrecorded_queries": r.Unrecorded, "statements": r.Statements, "statements_per_withdrawal": r.StatementsPerWithdrawal, "server_statements": r.ServerStatements, "by_state": r.ByState}
		record("burst_drain_s", "s", i, r.Drain.Seconds())
		record("burst_queries_per_sec", "queries/s", i, r.QueriesPerSec)
		record("burst_follow_up_share", "share", i, r.FollowUpShare)
		record("burst_statements_per_withdrawal", "statements", i, r.StatementsPerWithdrawal)
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("burst: every one of the %d withdrawals queried and its answer recorded (the audit), none left due, none UNKNOWN", o.burst+o.followUps))
	for run := range o.runs {
		for i, d := range dbs {
			r, err := dispatchbench.Run(ctx, dispatchbench.Options{DB: d.db, N: o.dispatchN, Merchants: 500, MaxInFlight: 64, Prefix: fmt.Sprintf("B%d", run)})
			if err != nil {
				return fmt.Errorf("dispatch on %s: %w", d.name, err)
			}
			step("dispatch on %s (%d/%d): %d withdrawals, %.0f submissions/s, %.2f statements per submission", d.name, run+1, o.runs, o.dispatchN, r.PerSec, r.StatementsPerSubmission())
			record("dispatch_per_sec", "submissions/s", i, r.PerSec)
			record("dispatch_statements_per_submission", "statements", i, r.StatementsPerSubmission())
		}
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("dispatch: all %d SUBMITTED in each run, each order created once by the sandbox (dispatchbench.Run)", o.dispatchN))
	for run := range o.runs {
		for i, d := range dbs {
			r, check, err := scaleRelay(ctx, d, brokers, fmt.Sprintf("%s.%d", id, run), o)
			if err != nil {
				return fmt.Errorf("relay on %s: %w", d.name, err)
			}
			step("relay on %s (%d/%d): %s", d.name, run+1, o.runs, r)
			record("relay_per_sec", "events/s", i, r.EventsPerSec)
			if i == 1 && run == o.runs-1 {
				rep.Checks = append(rep.Checks, check)
			}
		}
	}
	// The intake last: its ACCEPTED withdrawals would be the dispatcher's.
	for run := range o.runs {
		runID := fmt.Sprintf("%s%d", id, run)
		commands, err := produceWorkload(ctx, brokers, runID, o.intakeN)
		if err != nil {
			return err
		}
		if !o.keep {
			defer bench.DeleteTopics(brokers, commands)
		}
		for i, d := range dbs {
			perSec, check, err := scaleIntake(ctx, d, brokers, commands, runID, o)
			if err != nil {
				return fmt.Errorf("intake on %s: %w", d.name, err)
			}
			step("intake on %s (%d/%d): %d commands, %.0f commands/s", d.name, run+1, o.runs, o.intakeN, perSec)
			record("intake_per_sec", "commands/s", i, perSec)
			if i == 1 && run == o.runs-1 {
				rep.Checks = append(rep.Checks, "intake: "+check)
			}
		}
	}
	rep.Samples = map[string]map[string][]float64{}
	for name, xs := range samples {
		f := figs[name]
		f.Empty, f.History = bench.Median(xs[0]), bench.Median(xs[1])
		rep.Samples[name] = map[string][]float64{"empty": xs[0], "history": xs[1]}
		// The ratio is the median of each run's pair (empty and history
		// measured back to back, on the same host speed), not the ratio of
		// the medians.
		var pairs []float64
		for j := range min(len(xs[0]), len(xs[1])) {
			if xs[0][j] > 0 {
				pairs = append(pairs, xs[1][j]/xs[0][j])
			}
		}
		if len(pairs) > 0 {
			r := bench.Median(pairs)
			f.Ratio = &r
		}
	}

	rep.Machine = br.finish()
	for _, name := range order {
		rep.Figures = append(rep.Figures, *figs[name])
	}
	scaleTargets(rep, o)
	rep.Examined["idle_sweep_index_rows_per_sweep"] = map[string]float64{"empty": figs["idle_sweep_index_rows"].Empty, "history": figs["idle_sweep_index_rows"].History}
	rep.Examined["idle_dispatcher_index_rows_per_sec"] = map[string]float64{"empty": figs["idle_dispatcher_index_rows"].Empty, "history": figs["idle_dispatcher_index_rows"].History}
	rep.Examined["burst_statements_per_withdrawal"] = map[string]float64{"empty": figs["burst_statements_per_withdrawal"].Empty, "history": figs["burst_statements_per_withdrawal"].History}
	rep.Examined["dispatch_statements_per_submission"] = map[string]float64{"empty": figs["dispatch_statements_per_submission"].Empty, "history": figs["dispatch_statements_per_submission"].History}
	fmt.Println()
	printScale(os.Stdout, rep, o)
	if o.out == "" {
		return nil
	}
	return writeReport(o.out, rep)
}

// rates are the figures where more is better: their cost ratio is the
// inverse of the ratio.
var rates = map[string]bool{"dispatch_per_sec": true, "relay_per_sec": true, "intake_per_sec": true, "burst_queries_per_sec": true}

// absolute are the figures judged on their own values, not on a ratio: a
// ratio of two near-zero counts, or of shares, says nothing.
var absolute = map[string]string{
	"idle_sweep_index_rows":      "≈ 0 (≤ 10 per sweep)",
	"idle_dispatcher_index_rows": "≈ 0 (≤ 10 per second)",
	"burst_follow_up_share":      "≥ --poll-follow-up-share (0.25) while both are due",
}

func scaleTargets(rep *ScaleReport, o scaleOptions) {
	for i := range rep.Figures {
		f := &rep.Figures[i]
		if f.Ratio == nil && f.Empty > 0 {
			r := f.History / f.Empty
			f.Ratio = &r
		}
		if f.Ratio != nil {
			r := *f.Ratio
			c := r
			if rates[f.Name] && r > 0 {
				c = 1 / r
			}
			f.CostRatio = &c
		}
		met := true
		switch f.Name {
		case "idle_sweep_index_rows", "idle_dispatcher_index_rows":
			met = f.Empty <= 10 && f.History <= 10
			f.Note = absolute[f.Name]
			rep.Targets = append(rep.Targets, Target{Name: f.Name + " (history)", Target: f.Note, Value: round(f.History, 2), Met: met})
		case "burst_follow_up_share":
			met = f.Empty >= 0.25*0.9 && f.History >= 0.25*0.9
			f.Note = absolute[f.Name]
			rep.Targets = append(rep.Targets, Target{Name: f.Name + " (history)", Target: f.Note, Value: round(f.History, 3), Met: met})
		default:
			met = f.CostRatio != nil && *f.CostRatio <= 1.1
			v := math.NaN()
			if f.CostRatio != nil {
				v = round(*f.CostRatio, 3)
			}
			rep.Targets = append(rep.Targets, Target{Name: f.Name + " cost ratio", Target: "≤ 1.1", Value: v, Met: met})
		}
		f.Met = &met
	}
	for _, f := range rep.Figures {
		if f.Name == "burst_queries_per_sec" {
			for _, v := range []struct {
				which string
				x     float64
			}{{"empty", f.Empty}, {"history", f.History}} {
				rep.Targets = append(rep.Targets, Target{Name: "burst at the configured rate (" + v.which + ")",
					Target: fmt.Sprintf("≥ 0.9 × %.0f/s", o.rate), Value: round(v.x, 1), Met: v.x >= 0.9*o.rate})
			}
		}
	}
	rep.Targets = append(rep.Targets, Target{Name: "whole run", Target: fmt.Sprintf("≤ %.0f s", o.budget.Seconds()),
		Value: round(rep.Seconds, 0), Met: rep.Seconds <= o.budget.Seconds()})
}

func printScale(w *os.File, rep *ScaleReport, o scaleOptions) {
	fmt.Fprintf(w, "%-36s %-14s %12s %12s %8s %8s  %s\n", "figure ("+rep.Mode+")", "unit", "empty", "history", "ratio", "cost", "target")
	fmt.Fprintln(w, strings.Repeat("-", 118))
	for _, f := range rep.Figures {
		ratio, cost := "-", "-"
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.3f", *f.Ratio)
		}
		if f.CostRatio != nil {
			cost = fmt.Sprintf("%.3f", *f.CostRatio)
		}
		target := "cost ≤ 1.1"
		if f.Note != "" {
			target = f.Note
		}
		mark := "MET"
		if f.Met != nil && !*f.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "%-36s %-14s %12s %12s %8s %8s  %s %s\n", f.Name, f.Unit, num(f.Empty), num(f.History), ratio, cost, mark, target)
	}
	if h, ok := rep.Fill["history"].(scale.FillStats); ok {
		fmt.Fprintf(w, "\nhistory: %d withdrawals %v, %d in their refund follow-up, %d merchant keys, %d outbox rows, %d audit rows; filled in %.1f s (%.0f withdrawals/s)\n",
			h.Withdrawals, h.ByState, h.FollowUps, h.Merchants, h.Outbox, h.Attempts, h.Seconds, float64(h.Withdrawals)/h.Seconds)
	}
	fmt.Fprintf(w, "context: %d cores, MariaDB %s, commit %s, %s; load average %s at start, %s at end; %.0f s in all\n",
		rep.CPUCores, rep.MariaDBVersion, rep.GitCommit, rep.GoVersion, rep.LoadAvgStart, rep.LoadAvgEnd, rep.Seconds)
	fmt.Fprintln(w, "\ntargets:")
	for _, t := range rep.Targets {
		mark := "MET   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s %-46s %10.3f  (%s)\n", mark, t.Name, t.Value, t.Target)
	}
	fmt.Fprintln(w, "\nchecks:")
	for _, c := range rep.Checks {
		fmt.Fprintln(w, "  "+c)
	}
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// scaleRelay drains a backlog in d with one relay. Events the earlier
// phases left unpublished are marked published first, so that the relay
// drains the backlog alone and the check can count it.
func scaleRelay(ctx context.Context, d *scaleDB, brokers []string, id string, o scaleOptions) (relaybench.BacklogResult, string, error) {
	if err := d.db.Gorm().WithContext(ctx).Exec("UPDATE outbox SET published_at = ? WHERE published_at = ?", time.Now().UTC(), store.NotPublished).Error; err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	var before int64
	if err := d.db.Gorm().WithContext(ctx).Raw("SELECT COUNT(*) FROM outbox").Scan(&before).Error; err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	topic := "bench.scale.relay." + id + "." + d.name
	const partitions = 12
	if err := bench.CreateTopics(ctx, brokers, map[string]int{topic: partitions}); err != nil {
		return relaybench.BacklogResult{}, "", err
	}
	if !o.keep {
		defer bench.DeleteTopics(brokers, topic)
	}
	r, err := relaybench.BenchBacklog(ctx, d.db, brokers, topic, o.relayN, relay.Options{})
	if err != nil {
		return r, "", err
	}
	var rows, unpublished int64
	if err := d.db.Gorm().WithContext(ctx).Raw("SELECT COUNT(*), COALESCE(SUM(published_at = ?), 0) FROM outbox", store.NotPublished).Row().Scan(&rows, &unpublished); err != nil {
		return r, "", err
	}
	onTopic, err := bench.TopicMessages(ctx, brokers, topic, partitions)
	if err != nil {
		return r, "", err
	}
	if rows-before != int64(o.relayN) || unpublished != 0 || onTopic < o.relayN {
		return r, "", fmt.Errorf("relay check failed: %d new outbox rows (%d unpublished), %d messages on the topic; want %d, 0, ≥ %d",
			rows-before, unpublished, onTopic, o.relayN, o.relayN)
	}
	return r, fmt.Sprintf("relay: %d backlog rows all marked published next to %d older ones, %d messages on the topic", o.relayN, before, onTopic), nil
}

// produceWorkload writes the intake's commands once, to a topic both
// databases' intakes read in their own consumer groups.
func produceWorkload(ctx context.Context, brokers []string, id string, n int) (string, error) {
	commands := "bench.scale.commands." + id
	if err := kafkautil.EnsureTopics(ctx, brokers, []kafkautil.TopicSpec{{Name: commands, Partitions: 6, ReplicationFactor: 1}}); err != nil {
		return "", err
	}
	msgs, _ := bench.Workload(id, n)
	w := kafkautil.NewWriter(brokers, commands)
	defer w.Close()
	for i := 0; i < len(msgs); i += 10_000 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+10_000, len(msgs))]...); err != nil {
			return "", fmt.Errorf("produce: %w", err)
		}
	}
	return commands, nil
}

// scaleIntake consumes the workload into d with the real intake (the
// consumer's defaults) and checks it against d's rows before the run.
func scaleIntake(ctx context.Context, d *scaleDB, brokers []string, commands, id string, o scaleOptions) (float64, string, error) {
	_, want := bench.Workload(id, o.intakeN)
	dlq := "bench.scale.dlq." + id + "." + d.name
	if err := kafkautil.EnsureTopics(ctx, brokers, []kafkautil.TopicSpec{{Name: dlq, Partitions: 1, ReplicationFactor: 1}}); err != nil {
		return 0, "", err
	}
	if !o.keep {
		defer bench.DeleteTopics(brokers, dlq)
	}
	base, err := countTables(ctx, d.dsn)
	if err != nil {
		return 0, "", err
	}
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("bench"))
	if err != nil {
		return 0, "", err
	}
	io := options{n: o.intakeN, partitions: 6, batchSize: 1000, pipeline: 3, batchWait: 20 * time.Millisecond, keep: o.keep}
	elapsed, err := runIntake(ctx, io, d.dsn, brokers, commands, dlq, id+d.name, keys)
	if err != nil {
		return 0, "", err
	}
	checked, err := check(ctx, d.dsn, brokers, dlq, want, base)
	if err != nil {
		return 0, "", err
	}
	return float64(o.intakeN) / elapsed.Seconds(), checked, nil
}
