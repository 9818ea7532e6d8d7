package main

// The intake benchmark (`bench intake`, and `bench` with no subcommand, as
// make bench-intake runs it): it produces a workload of withdrawal commands
// to a fresh topic of the real broker, consumes it with the real intake
// into a fresh database of the real MariaDB, and, on the same data, with a
// naive one-transaction-per-message consumer; it checks that every command
// is accounted for, prints a table and writes bench/results/intake.json.

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver of check
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/bench"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
)

type options struct {
	n, naive, partitions int
	batchSize, pipeline  int
	batchWait            time.Duration
	cpuProfile, out      string
	keep, verbose        bool
}

// Result is one consumer's figures, as written to intake.json.
type Result struct {
	Consumer    string  `json:"consumer"`
	Messages    int     `json:"messages"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"commands_per_second"`
	Description string  `json:"description"`
}

// Report is bench/results/intake.json.
type Report struct {
	When        string       `json:"when"`
	Machine     string       `json:"machine"`
	Workload    bench.Expect `json:"workload"`
	Partitions  int          `json:"partitions"`
	BatchSize   int          `json:"batch_size"`
	BatchWait   string       `json:"batch_wait"`
	Pipeline    int          `json:"pipeline"`
	ProduceSecs float64      `json:"produce_seconds"`
	Results     []Result     `json:"results"`
	Speedup     float64      `json:"speedup"`
	Checked     string       `json:"checked"`
}

// intakeFlags declares the intake benchmark's flags on fs.
func intakeFlags(fs *flag.FlagSet, o *options) {
	fs.IntVar(&o.n, "n", 100_000, "commands for the intake")
	fs.IntVar(&o.naive, "naive", 5_000, "commands for the naive consumer (the first ones of the same topic)")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the commands topic")
	fs.IntVar(&o.batchSize, "batch-size", 1000, "intake batch size (the consumer's default)")
	fs.IntVar(&o.pipeline, "pipeline", 3, "intake batches in flight (the consumer's default)")
	fs.DurationVar(&o.batchWait, "batch-wait", 20*time.Millisecond, "intake batch wait (the consumer's default)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the intake run to this file")
	fs.StringVar(&o.out, "out", "bench/results/intake.json", "where to write the results")
	fs.BoolVar(&o.keep, "keep", false, "keep the databases and topics")
	fs.BoolVar(&o.verbose, "v", false, "show the intake's warnings (retries)")
}

// intakeMain is `bench intake [flags]`: the intake benchmark alone, its
// report written to -out.
func intakeMain(args []string) error {
	var o options
	fs := flag.NewFlagSet("bench intake", flag.ContinueOnError)
	intakeFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	setLogLevel(o.verbose)
	rep, err := intakeBench(context.Background(), o)
	if err != nil {
		return err
	}
	return writeReport(o.out, rep)
}

func setLogLevel(verbose bool) {
	level := slog.LevelError
	if verbose {
		level = slog.LevelWarn
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}

// brokersAndDSN reads the local env's variables.
func brokersAndDSN() (string, []string, error) {
	dsn, brokersEnv := os.Getenv("WITHDRAW_MYSQL_DSN"), os.Getenv("WITHDRAW_KAFKA_BROKERS")
	if dsn == "" || brokersEnv == "" {
		return "", nil, errors.New(`WITHDRAW_MYSQL_DSN and WITHDRAW_KAFKA_BROKERS must be set: eval "$(deploy/local/env.sh env)"`)
	}
	return dsn, strings.Split(brokersEnv, ","), nil
}

// intakeBench runs the intake and the naive consumer on one workload and
// returns the report (not written).
func intakeBench(ctx context.Context, o options) (Report, error) {
	dsn, brokers, err := brokersAndDSN()
	if err != nil {
		return Report{}, err
	}
	id := bench.RandomHex(4)
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("bench"))
	if err != nil {
		return Report{}, err
	}

	// Topics.
	commands, dlq := "bench.commands."+id, "bench.dlq."+id
	if err := kafkautil.EnsureTopics(ctx, brokers, []kafkautil.TopicSpec{
		{Name: commands, Partitions: o.partitions, ReplicationFactor: 1},
		{Name: dlq, Partitions: 1, ReplicationFactor: 1},
	}); err != nil {
		return Report{}, err
	}
	if !o.keep {
		defer bench.DeleteTopics(brokers, commands, dlq)
	}

	// Produce.
	msgs, want := bench.Workload(id, o.n)
	fmt.Printf("producing %d commands to %s (%d partitions) ...\n", len(msgs), commands, o.partitions)
	started := time.Now()
	w := kafkautil.NewWriter(brokers, commands)
	for i := 0; i < len(msgs); i += 10_000 {
		if err := w.WriteMessages(ctx, msgs[i:min(i+10_000, len(msgs))]...); err != nil {
			w.Close()
			return Report{}, fmt.Errorf("produce: %w", err)
		}
	}
	w.Close()
	produced := time.Since(started)
	fmt.Printf("produced in %s\n", produced.Round(time.Millisecond))

	// The intake.
	intakeDSN, dropIntake, err := bench.FreshDatabase(ctx, dsn, "withdraw_bench_"+id+"_intake")
	if err != nil {
		return Report{}, err
	}
	if !o.keep {
		defer dropIntake()
	}
	elapsed, err := runIntake(ctx, o, intakeDSN, brokers, commands, dlq, id, keys)
	if err != nil {
		return Report{}, err
	}
	checked, err := check(ctx, intakeDSN, brokers, dlq, want, tableCounts{})
	if err != nil {
		return Report{}, err
	}

	// The naive consumer on the first o.naive messages.
	naiveDSN, dropNaive, err := bench.FreshDatabase(ctx, dsn, "withdraw_bench_"+id+"_naive")
	if err != nil {
		return Report{}, err
	}
	if !o.keep {
		defer dropNaive()
	}
	naiveElapsed, err := runNaive(ctx, o, naiveDSN, brokers, commands, dlq, id, keys)
	if err != nil {
		return Report{}, err
	}

	rep := Report{
		When:        time.Now().UTC().Format(time.RFC3339),
		Machine:     fmt.Sprintf("%s/%s, %d CPUs (MariaDB and Kafka on the same machine), %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Workload:    want,
		Partitions:  o.partitions,
		BatchSize:   o.batchSize,
		BatchWait:   o.batchWait.String(),
		Pipeline:    o.pipeline,
		ProduceSecs: produced.Seconds(),
		Checked:     checked,
		Results: []Result{
			{Consumer: "intake", Messages: o.n, Seconds: elapsed.Seconds(), PerSecond: float64(o.n) / elapsed.Seconds(),
				Description: fmt.Sprintf("internal/intake: batches of up to %d in one transaction, one offset commit per batch", o.batchSize)},
			{Consumer: "naive", Messages: o.naive, Seconds: naiveElapsed.Seconds(), PerSecond: float64(o.naive) / naiveElapsed.Seconds(),
				Description: "one transaction (lookup, insert row, insert event) and one offset commit per message"},
		},
	}
	rep.Speedup = rep.Results[0].PerSecond / rep.Results[1].PerSecond

	fmt.Printf("\n%-8s %10s %10s %14s\n", "consumer", "commands", "seconds", "commands/s")
	for _, r := range rep.Results {
		fmt.Printf("%-8s %10d %10.2f %14.0f\n", r.Consumer, r.Messages, r.Seconds, r.PerSecond)
	}
	fmt.Printf("intake / naive: %.1fx\n%s\n", rep.Speedup, checked)

	return rep, nil
}

// runIntake consumes the whole topic with the real intake and returns the
// time from its first fetch to its last offset commit.
func runIntake(ctx context.Context, o options, dsn string, brokers []string, commands, dlq, id string, keys *pii.Keyring) (time.Duration, error) {
	rig, err := newConsumerRig(ctx, dsn, brokers, "bench.intake."+id, commands, o.n)
	if err != nil {
		return 0, err
	}
	defer rig.close()
	reg := prometheus.NewRegistry()
	in, err := intake.New(rig.db, rig.timed, rig.writer, intake.Options{BatchSize: o.batchSize, BatchWait: o.batchWait, Pipeline: o.pipeline, DLQTopic: dlq, Keys: keys,
		Metrics: intake.NewMetrics(reg)})
	if err != nil {
		return 0, err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("intake: consuming %d commands ...\n", o.n)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	select {
	case <-rig.timed.Done():
	case err := <-done:
		cancel()
		return 0, fmt.Errorf("intake stopped early: %v", err)
	case <-time.After(10 * time.Minute):
		cancel()
		return 0, errors.New("intake did not finish within 10 minutes")
	}
	cancel()
	if err := <-done; err != nil {
		return 0, err
	}
	printHistograms(reg)
	return rig.timed.Elapsed(), nil
}

// printHistograms shows the intake's batch sizes and transaction times.
func printHistograms(reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil && h.GetSampleCount() > 0 {
				fmt.Printf("  %s: %d samples, mean %.4g\n", mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(h.GetSampleCount()))
			}
		}
	}
}

// runNaive consumes the first o.naive messages with the naive consumer.
func runNaive(ctx context.Context, o options, dsn string, brokers []string, commands, dlq, id string, keys *pii.Keyring) (time.Duration, error) {
	rig, err := newConsumerRig(ctx, dsn, brokers, "bench.naive."+id, commands, o.naive)
	if err != nil {
		return 0, err
	}
	defer rig.close()
	fmt.Printf("naive: consuming %d commands ...\n", o.naive)
	naive := &bench.Naive{DB: rig.db, Reader: rig.timed, DLQ: rig.writer, Topic: dlq + ".naive", Keys: keys}
	if err := kafkautil.EnsureTopics(ctx, brokers, []kafkautil.TopicSpec{{Name: naive.Topic, Partitions: 1, ReplicationFactor: 1}}); err != nil {
		return 0, err
	}
	if !o.keep {
		defer bench.DeleteTopics(brokers, naive.Topic)
	}
	if err := naive.Run(ctx, o.naive); err != nil {
		return 0, err
	}
	return rig.timed.Elapsed(), nil
}

// consumerRig is what one timed consumer run needs: its own migrated
// database, a reader in its own consumer group on the commands topic that
// times the first n messages, and a writer for dead letters.
type consumerRig struct {
	db     *store.DB
	timed  *bench.Timed
	writer *kafka.Writer
	// close releases the writer, the reader and the database, in that order.
	close func()
}

// newConsumerRig opens and migrates the database at dsn and joins group on
// the commands topic.
func newConsumerRig(ctx context.Context, dsn string, brokers []string, group, commands string, n int) (*consumerRig, error) {
	db, err := store.OpenMySQL(ctx, dsn, store.PoolOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: open database: %w", group, err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: migrate: %w", group, err)
	}
	reader := kafkautil.NewGroupReader(brokers, group, commands)
	writer := kafkautil.NewWriter(brokers, "")
	return &consumerRig{
		db:     db,
		timed:  bench.NewTimed(reader, n),
		writer: writer,
		close: func() {
			writer.Close()
			reader.Close()
			db.Close()
		},
	}, nil
}

// tableCounts are the rows check counts, before a run in a database that
// was not empty (bench scale).
type tableCounts struct{ withdrawals, accepted, rejected int }

func countTables(ctx context.Context, dsn string) (tableCounts, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return tableCounts{}, err
	}
	defer db.Close()
	var c tableCounts
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM withdrawals").Scan(&c.withdrawals); err != nil {
		return c, err
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.accepted'").Scan(&c.accepted); err != nil {
		return c, err
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.rejected'").Scan(&c.rejected); err != nil {
		return c, err
	}
	return c, nil
}

// check proves that every produced command is accounted for: the rows
// beyond base (the database's rows before the run).
func check(ctx context.Context, dsn string, brokers []string, dlq string, want bench.Expect, base tableCounts) (string, error) {
	c, err := countTables(ctx, dsn)
	if err != nil {
		return "", err
	}
	withdrawals, accepted, rejected := c.withdrawals-base.withdrawals, c.accepted-base.accepted, c.rejected-base.rejected
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], dlq, 0)
	if err != nil {
		return "", err
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return "", err
	}
	dead := int(last - first)
	sum := withdrawals + rejected + dead + want.Duplicates
	msg := fmt.Sprintf("checked: %d withdrawals (%d accepted events) + %d rejections + %d dead letters + %d identical redeliveries = %d of %d produced",
		withdrawals, accepted, rejected, dead, want.Duplicates, sum, want.Produced)
	if withdrawals != want.Accepted || accepted != want.Accepted || rejected != want.Rejected || dead != want.DeadLettered || sum != want.Produced {
		return "", fmt.Errorf("%s; want %+v", msg, want)
	}
	return msg, nil
}
