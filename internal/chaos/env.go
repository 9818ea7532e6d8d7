package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Env is the suite's own MariaDB + Kafka, run by deploy/local/chaos-env.sh
// (env.sh on other ports and another state directory). The suite kills
// these servers, so it must never be pointed at the shared ones.
type Env struct {
	Root       string // repository root
	StateDir   string // relative to Root unless absolute
	MySQLPort  int
	KafkaPort  int // node 1; node i listens on KafkaPort + 2*(i-1)
	CtrlPort   int
	KafkaNodes int
	// LogFile receives the script's output.
	LogFile string
}

func (e *Env) script() string { return filepath.Join(e.Root, "deploy", "local", "chaos-env.sh") }

// environ is the harness's environment without WITHDRAW_* (a DSN or broker
// list of the shared env must not leak in), plus the chaos settings.
func (e *Env) environ(nodes int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WITHDRAW_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"WITHDRAW_ENV_STATE_DIR="+e.StateDir,
		"WITHDRAW_ENV_MYSQL_PORT="+strconv.Itoa(e.MySQLPort),
		"WITHDRAW_ENV_KAFKA_PORT="+strconv.Itoa(e.KafkaPort),
		"WITHDRAW_ENV_KAFKA_CONTROLLER_PORT="+strconv.Itoa(e.CtrlPort),
		"WITHDRAW_ENV_KAFKA_NODES="+strconv.Itoa(nodes),
	)
}

// run runs chaos-env.sh with args for a cluster of nodes Kafka nodes.
func (e *Env) run(ctx context.Context, nodes int, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{e.script()}, args...)...)
	cmd.Dir = e.Root
	cmd.Env = e.environ(nodes)
	f, err := os.OpenFile(e.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s chaos-env.sh %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chaos-env.sh %s: %v (see %s)", strings.Join(args, " "), err, e.LogFile)
	}
	return nil
}

// Up starts the servers. A cluster of the other size left running by an
// earlier run holds the same ports, so it is stopped first.
func (e *Env) Up(ctx context.Context) error {
	other := 1
	if e.KafkaNodes == 1 {
		other = 3
	}
	if err := e.run(ctx, other, "kafka-stop"); err != nil {
		return err
	}
	return e.run(ctx, e.KafkaNodes, "up")
}

// Down stops the servers (data kept).
func (e *Env) Down(ctx context.Context) error { return e.run(ctx, e.KafkaNodes, "down") }

// KillKafka SIGKILLs node (1-based), or every node when node is 0.
func (e *Env) KillKafka(ctx context.Context, node int) error {
	return e.run(ctx, e.KafkaNodes, nodeArgs("kafka-kill", node)...)
}

// StartKafka starts node, or every node when node is 0, and waits until it
// answers.
func (e *Env) StartKafka(ctx context.Context, node int) error {
	return e.run(ctx, e.KafkaNodes, nodeArgs("kafka-start", node)...)
}

// KillMySQL SIGKILLs MariaDB; StartMySQL starts it and waits until ready.
func (e *Env) KillMySQL(ctx context.Context) error  { return e.run(ctx, e.KafkaNodes, "mariadb-kill") }
func (e *Env) StartMySQL(ctx context.Context) error { return e.run(ctx, e.KafkaNodes, "mariadb-start") }

func nodeArgs(cmd string, node int) []string {
	if node == 0 {
		return []string{cmd}
	}
	return []string{cmd, strconv.Itoa(node)}
}

// DSN of database db on the suite's MariaDB.
func (e *Env) DSN(db string) string {
	return fmt.Sprintf("withdraw:withdraw@tcp(127.0.0.1:%d)/%s?parseTime=true&loc=UTC&multiStatements=true", e.MySQLPort, db)
}

// Brokers are the bootstrap addresses of every node.
func (e *Env) Brokers() []string {
	out := make([]string, e.KafkaNodes)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.1:%d", e.KafkaPort+2*i)
	}
	return out
}
