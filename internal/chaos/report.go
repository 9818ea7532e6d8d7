package chaos

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

type kv struct{ k, v string }

// Invariant is one checked property.
type Invariant struct {
	Name   string
	Held   bool
	Detail string
}

// Report is what a run found.
type Report struct {
	Run        string
	Dir        string
	KafkaNodes int
	Elapsed    time.Duration
	Drained    bool
	DrainTook  time.Duration
	Load       []kv
	Faults     []kv
	Kills      []string
	Procs      []kv
	Exits      []string
	Invariants []Invariant
}

func (r *Report) inv(name string, held bool, detail string) {
	r.Invariants = append(r.Invariants, Invariant{name, held, detail})
}

// OK reports whether every invariant held.
func (r *Report) OK() bool {
	for _, i := range r.Invariants {
		if !i.Held {
			return false
		}
	}
	return true
}

// Violations counts the invariants that did not hold.
func (r *Report) Violations() int {
	n := 0
	for _, i := range r.Invariants {
		if !i.Held {
			n++
		}
	}
	return n
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	section := func(title string, rows []kv) {
		fmt.Fprintln(w, title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, x := range rows {
			fmt.Fprintf(tw, "  %s\t%s\n", x.k, x.v)
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "CHAOS RUN %s: %d Kafka node(s), %s in all; logs in %s\n", r.Run, r.KafkaNodes, r.Elapsed.Round(time.Second), r.Dir)
	section("LOAD", r.Load)
	section("FAULTS INJECTED (sandbox, by fault: total (per endpoint))", r.Faults)
	var kills []kv
	for _, k := range r.Kills {
		kills = append(kills, kv{"kill", k})
	}
	if len(kills) == 0 {
		kills = []kv{{"kill", "none"}}
	}
	section("KILLS", kills)
	procs := append([]kv{}, r.Procs...)
	for _, e := range r.Exits {
		procs = append(procs, kv{"unexpected exit", e})
	}
	section("PROCESSES", procs)
	fmt.Fprintln(w, "INVARIANTS")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, i := range r.Invariants {
		res := "held"
		if !i.Held {
			res = "VIOLATED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", res, i.Name, i.Detail)
	}
	_ = tw.Flush()
	if r.OK() {
		fmt.Fprintf(w, "PASS: all %d invariants held\n", len(r.Invariants))
	} else {
		fmt.Fprintf(w, "FAIL: %d of %d invariants violated\n", r.Violations(), len(r.Invariants))
	}
}
