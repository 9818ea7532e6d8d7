// Command chaos is the chaos suite (`make chaos`; a quick version runs in
// `make test`): it starts a MariaDB and a Kafka of its own
// (deploy/local/chaos-env.sh), the sandbox with injected faults, two
// consumers and a poller built from this tree, produces a few thousand
// withdrawal commands with redeliveries, conflicts and hostile messages,
// SIGKILLs consumers, the poller, Kafka and MariaDB meanwhile, and then
// checks the product's invariants. It prints a table and exits 1 if any
// invariant was violated, 2 if the harness itself failed. See docs/chaos.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/paycore/withdraw/internal/chaos"
)

const usage = `Usage: chaos [flags]

Runs the chaos suite against the binaries of this tree, on a MariaDB and a
Kafka of its own (never the shared ones of deploy/local/env.sh: it kills
them), and prints load, injected faults, kills and every invariant with
held/VIOLATED. Exit status: 0 all invariants held, 1 some were violated,
2 the harness failed. Logs of every process stay in the run's directory
under --work-dir. Details: docs/chaos.md.

  make chaos                       the full suite (about 8 minutes)
  go run ./cmd/chaos --quick       a few hundred commands, one consumer kill
  go run ./cmd/chaos --kafka-brokers 3   a three-node cluster, one node killed

Flags (--quick changes the defaults of the others; explicit flags win):
`

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	quick := slices.ContainsFunc(args, func(a string) bool {
		return a == "--quick" || a == "-quick" || a == "--quick=true" || a == "-quick=true"
	})
	o := chaos.Full()
	if quick {
		o = chaos.Quick()
	}
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.Bool("quick", false, "the quick preset: 300 commands over 25s, one consumer kill, no server kills, 90s drain (for make test)")
	fs.IntVar(&o.Commands, "commands", o.Commands, "valid withdrawal commands, over all four channels (production mix)")
	fs.Float64Var(&o.DupPct, "dup-pct", o.DupPct, "identical redeliveries (same key and bytes) per 100 commands")
	fs.Float64Var(&o.ConflictPct, "conflict-pct", o.ConflictPct, "conflicting resends (same out_request_no, other amount) per 100 commands")
	fs.DurationVar(&o.Produce, "produce", o.Produce, "the commands are produced evenly over this window; the kills happen inside it")
	fs.IntVar(&o.Partitions, "partitions", o.Partitions, "partitions of the commands and events topics")
	fs.IntVar(&o.Consumers, "consumers", o.Consumers, "consumer processes (intake + dispatcher + relay)")
	fs.IntVar(&o.ConsumerKills, "consumer-kills", o.ConsumerKills, "SIGKILLs of a consumer (alternating), each restarted after --proc-down")
	fs.IntVar(&o.PollerKills, "poller-kills", o.PollerKills, "SIGKILLs of the poller, each restarted after --proc-down")
	fs.IntVar(&o.KafkaKills, "kafka-kills", o.KafkaKills, "SIGKILLs of Kafka (with --kafka-brokers 3: of one node, in turn), each restarted after --server-down")
	fs.IntVar(&o.MySQLKills, "mysql-kills", o.MySQLKills, "SIGKILLs of MariaDB, each restarted after --server-down")
	fs.DurationVar(&o.ProcDown, "proc-down", o.ProcDown, "how long a killed consumer or poller stays down")
	fs.DurationVar(&o.ServerDown, "server-down", o.ServerDown, "how long a killed Kafka or MariaDB stays down before its restart begins")
	fs.IntVar(&o.Env.KafkaNodes, "kafka-brokers", 1, "Kafka KRaft nodes: 1, or 3 (replication factor 3, min.insync.replicas 2)")
	var faults multi
	fs.Var(&faults, "fault", "a sandbox --fault endpoint:key=rate,… (repeatable; replaces the default ~20% mix: "+strings.Join(chaos.DefaultFaults, " ")+")")
	var sbFlags multi
	fs.Var(&sbFlags, "sandbox-flag", "an extra flag of cmd/sandbox, e.g. --sandbox-flag=--p-refund=0.1 (repeatable)")
	fs.DurationVar(&o.Drain, "drain", o.Drain, "longest wait after the last command for the pipeline to settle before the checks")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the workload and of the sandbox's faults")
	fs.BoolVar(&o.KeepEnv, "keep-env", false, "leave the suite's MariaDB and Kafka running afterwards (faster next start)")
	fs.BoolVar(&o.KeepData, "keep-data", false, "keep the run's database and topics for inspection")
	workDir := fs.String("work-dir", ".localenv-chaos/runs", "directory of the runs' logs, keys and binaries (relative to the repository root)")
	fs.StringVar(&o.Env.StateDir, "state-dir", ".localenv-chaos", "state directory of the suite's MariaDB and Kafka (WITHDRAW_ENV_STATE_DIR of env.sh)")
	fs.IntVar(&o.Env.MySQLPort, "mysql-port", 3317, "port of the suite's MariaDB (never the shared 3307)")
	fs.IntVar(&o.Env.KafkaPort, "kafka-port", 19192, "broker port of Kafka node 1; node i uses this + 2*(i-1)")
	fs.IntVar(&o.Env.CtrlPort, "kafka-controller-port", 19193, "controller port of Kafka node 1; node i uses this + 2*(i-1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "chaos: unexpected arguments %v\n", fs.Args())
		return 2
	}
	if len(faults) > 0 {
		o.Faults = faults
	}
	o.SandboxFlags = sbFlags
	if o.Env.KafkaNodes != 1 && o.Env.KafkaNodes != 3 {
		fmt.Fprintln(os.Stderr, "chaos: --kafka-brokers must be 1 or 3")
		return 2
	}
	if o.Env.MySQLPort == 3307 || o.Env.KafkaPort == 19092 {
		fmt.Fprintln(os.Stderr, "chaos: refusing the shared env's ports (3307, 19092): the suite kills its servers")
		return 2
	}
	if o.Consumers < 1 || o.Commands < 1 {
		fmt.Fprintln(os.Stderr, "chaos: need at least one consumer and one command")
		return 2
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	o.Root, o.Env.Root = root, root
	o.WorkDir = *workDir
	if !filepath.IsAbs(o.WorkDir) {
		o.WorkDir = filepath.Join(root, o.WorkDir)
	}
	o.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: harness failed:", err)
		return 2
	}
	rep.Print(os.Stdout)
	if !rep.OK() {
		return 1
	}
	return 0
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the module (no go.mod above the working directory)")
		}
		dir = parent
	}
}
