// Command withdrawctl is the operators' tool for the withdrawal
// orchestrator: submit a command to Kafka, show a withdrawal and ask for a
// fresh provider query through the admin API, tail the events, and inspect
// and replay dead letters.
//
// Usage:
//
//	withdrawctl submit  [flags] [--file cmd.json | --channel … --out-request-no … --amount …]
//	withdrawctl show    [flags] <withdrawal id> | --channel C [--account A] --out-request-no N
//	withdrawctl requery [flags] <withdrawal id>
//	withdrawctl events  [flags] [--withdrawal-id ID] [--out-request-no N]
//	withdrawctl dlq list   [flags]
//	withdrawctl dlq replay [flags] --partition P --offset N [--value-file fixed.json] [--force]
//	withdrawctl devkeys --dir DIR      keys for a sandbox set-up (docker-compose.yml)
//	withdrawctl health [URL]           container health check
//	withdrawctl schema [NAME]          print a JSON Schema of the topics' messages (api/schemas)
//	withdrawctl validate FILE|-        check a command offline with the intake's rules
//
// Settings come from flags or the same WITHDRAW_* variables as the
// services (WITHDRAW_KAFKA_BROKERS, WITHDRAW_COMMANDS_TOPIC, …,
// WITHDRAW_ADMIN_TOKEN_FILE), plus WITHDRAW_ADMIN_URL (default
// http://<WITHDRAW_HTTP_ADDR>). Every command has --help.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/paycore/withdraw/internal/config"
)

func main() {
	err := run(os.Args[1:], &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	fmt.Fprintln(os.Stderr, "withdrawctl:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

// cli is the process environment of one invocation (tests replace it).
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// exitError carries a specific exit status: 2 for a command that does not
// validate (validate: 1, and 2 for a usage error), 3 for an admin API error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

const usage = `withdrawctl: operate the withdrawal orchestrator

Usage: withdrawctl <command> [flags]

Commands:
  submit       validate a withdrawal command locally and produce it to the commands topic
  show         show a withdrawal with its events and provider attempts (admin API)
  requery      ask for a fresh provider query of a withdrawal now (admin API)
  recon show   a day's reconciliation against WeChat Pay's fund-flow bills (admin API)
  events       print the events topic as readable lines, optionally for one withdrawal
  dlq list     list dead-lettered commands (offset, error, first bytes)
  dlq replay   re-publish a dead letter (or a fixed version of it) to the commands topic
  devkeys      generate the keys of a development set-up with the provider sandbox (compose)
  schema       print a JSON Schema of the topics' messages (command, command.<channel>, event, …) or the AsyncAPI document
  validate     check a command file offline with the intake's rules (exit 0 valid, 1 invalid, 2 usage)
  health       exit 0 when a URL (default http://127.0.0.1:8080/readyz) answers 200 (container health checks)

Run "withdrawctl <command> --help" for its flags. Settings are flags or the
services' WITHDRAW_* environment variables (WITHDRAW_KAFKA_BROKERS,
WITHDRAW_COMMANDS_TOPIC, WITHDRAW_EVENTS_TOPIC, WITHDRAW_DLQ_TOPIC,
WITHDRAW_ADMIN_TOKEN_FILE), plus WITHDRAW_ADMIN_URL.
`

func run(args []string, c *cli) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return errors.New("a command is required")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(c.stdout, usage)
		return nil
	case "submit":
		return c.submit(rest)
	case "show":
		return c.show(rest)
	case "requery":
		return c.requery(rest)
	case "recon":
		return c.recon(rest)
	case "events":
		return c.events(rest)
	case "devkeys":
		return c.devkeys(rest)
	case "health":
		return c.health(rest)
	case "schema":
		return c.schema(rest)
	case "validate":
		return c.validate(rest)
	case "dlq":
		if len(rest) == 0 {
			return errors.New("dlq: want \"dlq list\" or \"dlq replay\" (see withdrawctl --help)")
		}
		switch rest[0] {
		case "list":
			return c.dlqList(rest[1:])
		case "replay":
			return c.dlqReplay(rest[1:])
		case "-h", "-help", "--help", "help":
			fmt.Fprint(c.stdout, "Usage: withdrawctl dlq list|replay [flags]\n\nRun \"withdrawctl dlq list --help\" or \"withdrawctl dlq replay --help\".\n")
			return nil
		}
		return fmt.Errorf("dlq %s: unknown (want list or replay)", rest[0])
	}
	return fmt.Errorf("unknown command %q (see withdrawctl --help)", cmd)
}

// flags builds a subcommand's flag set with its one-line description.
func (c *cli) flags(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("withdrawctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stdout)
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "Usage: withdrawctl %s %s\n\n%s\n\nFlags (each also its environment variable where one is named):\n", name, synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// setting declares a flag named and defaulted like the services' setting
// of the same name (internal/config), read from its WITHDRAW_* variable.
func (c *cli) setting(fs *flag.FlagSet, name string) *string {
	s, ok := config.Lookup(name)
	if !ok {
		panic("withdrawctl: no setting " + name)
	}
	v := s.Default
	if e := c.getenv(s.Env); e != "" {
		v = e
	}
	return fs.String(name, v, fmt.Sprintf("%s (env %s)", s.Help, s.Env))
}

// brokers splits a comma-separated broker list.
func brokers(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--kafka-brokers / WITHDRAW_KAFKA_BROKERS is empty")
	}
	return out, nil
}

// parse parses flags and returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	// Allow flags after positional arguments (show <id> --json).
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
