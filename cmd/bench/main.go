// Command bench measures the orchestrator against the local env (make
// env-up): the real Kafka broker and the real MariaDB of deploy/local, with
// the provider sandbox as provider.
//
// Usage:
//
//	eval "$(deploy/local/env.sh env)"
//	go run ./cmd/bench all [--quick] [--runs 3] [--only e2e,relay] [--out bench/results/latest.json]
//	go run ./cmd/bench scale [--rows 2000000] [--quick] [--out bench/results/scale.json]
//	go run ./cmd/bench [intake] [-n 100000] [-naive 5000] [-cpuprofile intake.pprof]
//
// `all` (make bench, make bench-quick) runs every benchmark against its target in
// one invocation, checks each run's correctness before it counts, prints a
// table and writes bench/results/latest.json; see docs/bench.md. `scale`
// (make bench-scale) measures the same paths against months of history
// and writes bench/results/scale.json. `intake`
// (also the default without a subcommand: make bench-intake) is the intake
// benchmark alone and writes bench/results/intake.json.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "all":
		err = allMain(args[1:])
	case len(args) > 0 && args[0] == "scale":
		err = scaleMain(args[1:])
	case len(args) > 0 && args[0] == "intake":
		err = intakeMain(args[1:])
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		err = intakeMain(args)
	default:
		err = fmt.Errorf("unknown subcommand %q: want all, scale or intake", args[0])
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench: FAILED:", err)
		os.Exit(1)
	}
}
