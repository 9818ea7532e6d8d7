// Command devstack runs the whole withdrawal orchestrator in one process on
// embedded defaults: a Kafka-protocol broker, SQLite, the provider sandbox,
// and intake, dispatcher, relay, poller and callbacks. On a fresh machine,
// with nothing else installed:
//
//	go run ./cmd/devstack              # run it; prints where everything is
//	go run ./cmd/devstack --demo 100   # publish 100 sample commands, watch them finish
//
// Every flag can also be set by an environment variable WITHDRAW_DEVSTACK_<FLAG>
// (upper case, '-' → '_'); the flag wins. See docs/devstack.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/paycore/withdraw/internal/devstack"
	"github.com/paycore/withdraw/internal/provider/sandbox"
)

const envPrefix = "WITHDRAW_DEVSTACK_"

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ";") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// settings are the parsed flags.
type settings struct {
	opts        devstack.Options
	brokers     string
	demo        int
	demoTimeout time.Duration
	logStderr   bool
}

func parse(args []string, stderr io.Writer) (*settings, error) {
	s := &settings{}
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var faults multi
	fs.StringVar(&s.opts.DataDir, "data-dir", ".devstack", "directory of the SQLite database, generated keys, providers file, embedded Kafka data and log; kept across restarts")
	fs.BoolVar(&s.opts.Fresh, "fresh", false, "wipe --data-dir first (only a directory the devstack created)")
	fs.StringVar(&s.opts.KafkaAddr, "kafka-addr", "127.0.0.1:9092", "listen address of the embedded Kafka broker (its advertised address too: use a reachable host, not 0.0.0.0)")
	fs.StringVar(&s.brokers, "kafka-brokers", "", "use this real Kafka cluster (comma-separated bootstrap brokers) instead of the embedded broker")
	fs.IntVar(&s.opts.Partitions, "topic-partitions", 3, "partitions of the topics created at start (existing topics are left alone)")
	fs.StringVar(&s.opts.MySQLDSN, "mysql-dsn", "", "use this MySQL database (go-sql-driver DSN, e.g. user:pass@tcp(127.0.0.1:3306)/withdraw) instead of SQLite in --data-dir")
	fs.StringVar(&s.opts.SandboxAddr, "sandbox-addr", "127.0.0.1:8090", "listen address of the provider sandbox (WeChat Pay v3 + Allinpay; ledger at /_sandbox/ledger)")
	fs.StringVar(&s.opts.HTTPAddr, "http-addr", "127.0.0.1:8080", "listen address of /metrics, /healthz, /readyz, the WeChat callbacks (/notify/wechatpay/default), the admin API and the console (/ui/)")
	fs.StringVar(&s.opts.AdminToken, "admin-token", "", "bearer token of the admin API (default: generated on first start into <data-dir>/admin.token, printed)")
	fs.DurationVar(&s.opts.FinalDelay, "final-delay", 3*time.Second, "how long the sandbox keeps an order processing before its final status")
	fs.DurationVar(&s.opts.RefundDelay, "refund-delay", 2*time.Second, "how long after SUCCESS a refunded order (amount ending in .43 yuan) bounces")
	fs.Var(&faults, "fault", "inject a sandbox fault `endpoint:key=value,…` (repeatable), e.g. '*:5xx=0.05' or 'platform.submit:latency=200ms'; endpoints: * "+
		strings.Join(sandbox.Endpoints, " ")+"; keys: latency 429 5xx timeout_after_commit bad_signature <ERROR_CODE>")
	fs.IntVar(&s.demo, "demo", 0, "publish this many varied sample commands (all channels, some duplicates and invalid ones), show their progress, print a summary and exit")
	fs.DurationVar(&s.demoTimeout, "demo-timeout", 2*time.Minute, "with --demo: give up (exit status 1) if not everything is final by then")
	fs.StringVar(&s.opts.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&s.logStderr, "log-stderr", false, "write the JSON logs to stderr instead of <data-dir>/devstack.log")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `devstack: the whole withdrawal orchestrator in one process, for development.

Usage: devstack [flags]

Runs an embedded Kafka broker (topics %s, %s, %s),
SQLite, the provider sandbox with an account "default" for every channel
(accelerated: withdrawals are final within seconds), and the intake,
dispatcher, outbox relay, poller and WeChat callbacks.

Sandbox magic amounts (the fen part of the amount): .41 yuan FAIL, .42 CLOSE,
.43 paid then refunded (REVERSED, WeChat), .44 INIT until re-sent; anything
else succeeds.

Every flag can also be set as %s<FLAG> (upper case, '-' → '_');
--fault takes ';'-separated values there. The flag wins.

`, devstack.CommandsTopic, devstack.EventsTopic, devstack.DLQTopic, envPrefix)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %v (see --help)", fs.Args())
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return nil, err
	}
	for _, b := range strings.Split(s.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			s.opts.KafkaBrokers = append(s.opts.KafkaBrokers, b)
		}
	}
	if len(faults) > 0 {
		s.opts.Faults = map[string]sandbox.Fault{}
		for _, f := range faults {
			e, v, err := sandbox.ParseFaultFlag(f)
			if err != nil {
				return nil, fmt.Errorf("--fault: %w", err)
			}
			s.opts.Faults[e] = v
		}
	}
	if s.demo < 0 {
		return nil, errors.New("--demo must not be negative")
	}
	return s, nil
}

// applyEnv sets every flag not given on the command line from its
// environment variable.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := lookup(name)
		if !ok || v == "" {
			return
		}
		vals := []string{v}
		if _, repeatable := f.Value.(*multi); repeatable {
			vals = strings.Split(v, ";")
		}
		for _, x := range vals {
			if e := f.Value.Set(x); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
				return
			}
		}
	})
	return err
}

func run(args []string, stdout, stderr io.Writer) error {
	s, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if s.logStderr {
		s.opts.LogOutput = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	stack, err := devstack.Start(ctx, s.opts)
	if err != nil {
		return err
	}
	printBanner(stdout, stack, time.Since(start))

	if s.demo > 0 {
		demoErr := devstack.RunDemo(ctx, stack, devstack.DemoOptions{
			N: s.demo, Timeout: s.demoTimeout, Out: stdout, Progress: stderr, TTY: isTerminal(stderr),
		})
		if ctx.Err() != nil {
			stop() // a second Ctrl-C kills at once
			fmt.Fprintln(stderr, "\ndevstack: interrupted, shutting down…")
			demoErr = nil
		}
		closeErr := stack.Close()
		if demoErr != nil {
			return demoErr
		}
		return closeErr
	}
	select {
	case <-ctx.Done():
		stop() // a second Ctrl-C kills at once
		fmt.Fprintln(stderr, "\ndevstack: shutting down…")
	case <-stack.Done():
	}
	err = stack.Close()
	if err == nil {
		fmt.Fprintln(stderr, "devstack: stopped")
	}
	return err
}

// isTerminal reports whether w is a character device (a terminal): the
// progress bar then redraws one line; otherwise it prints plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
