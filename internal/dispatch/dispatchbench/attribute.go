package dispatchbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// The benchmark runs the dispatcher and the sandbox in one process, so the
// process's CPU time mixes our work with the provider's. Goroutine labels
// tell them apart: each side starts its goroutines under its label, and
// every goroutine they start (net/http's connection loops, database/sql's
// helpers) inherits it.
const (
	sideLabel       = "side"
	sideDispatcher  = "dispatcher"
	sideSandbox     = "sandbox"
	signingPrefixes = "crypto/rsa. crypto/internal/fips140/rsa."
)

// withSide returns ctx carrying the goroutine label of one side. Goroutines
// started while the label is set (pprof.SetGoroutineLabels) inherit it.
func withSide(ctx context.Context, side string) context.Context {
	return pprof.WithLabels(ctx, pprof.Labels(sideLabel, side))
}

// CPUSplit is where a run's CPU went, per submission, from a CPU profile
// of the run (pprof samples every 10 ms of CPU, so each figure is good to
// about ±1 % of the run's CPU).
type CPUSplit struct {
	// Own is the dispatcher's CPU beyond its RSA signing and verifying:
	// claim, state changes, events, audit rows, the HTTP client and
	// the MySQL driver ("own CPU per submission").
	Own time.Duration
	// Signing is the dispatcher's RSA work: the request's signature and
	// the answer's verification.
	Signing time.Duration
	// Sandbox is the provider's side, signatures included.
	Sandbox time.Duration
	// Runtime is CPU no side can be charged with: the garbage collector's
	// background workers (both sides' garbage), the scheduler, and the
	// harness's wait loop. OwnWithRuntime charges all of it to us.
	Runtime time.Duration
}

// OwnWithRuntime is the pessimistic reading of our CPU: Own plus every
// unlabeled sample, as if the sandbox made no garbage.
func (s CPUSplit) OwnWithRuntime() time.Duration { return s.Own + s.Runtime }

func (s CPUSplit) String() string {
	return fmt.Sprintf("own %s (with GC/runtime %s), signing %s, sandbox %s, GC/runtime %s",
		round(s.Own), round(s.OwnWithRuntime()), round(s.Signing), round(s.Sandbox), round(s.Runtime))
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// splitCPU reads a CPU profile and divides its samples by side and, on the
// dispatcher's side, into signing and the rest; n is the submissions the
// profile covers.
func splitCPU(raw []byte, n int) (CPUSplit, error) {
	p, err := profile.ParseData(raw)
	if err != nil {
		return CPUSplit{}, fmt.Errorf("parse CPU profile: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 || n <= 0 {
		return CPUSplit{}, fmt.Errorf("CPU profile has no cpu/nanoseconds samples (%d submissions)", n)
	}
	var sum CPUSplit
	for _, s := range p.Sample {
		d := time.Duration(s.Value[idx])
		switch side := firstLabel(s, sideLabel); {
		case side == sideSandbox:
			sum.Sandbox += d
		case side == sideDispatcher && signs(s):
			sum.Signing += d
		case side == sideDispatcher:
			sum.Own += d
		default:
			sum.Runtime += d
		}
	}
	per := time.Duration(n)
	return CPUSplit{Own: sum.Own / per, Signing: sum.Signing / per, Sandbox: sum.Sandbox / per, Runtime: sum.Runtime / per}, nil
}

func firstLabel(s *profile.Sample, key string) string {
	if v := s.Label[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// signs reports whether a sample's stack is inside RSA signing or
// verification.
func signs(s *profile.Sample) bool {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			for _, prefix := range strings.Fields(signingPrefixes) {
				if strings.HasPrefix(line.Function.Name, prefix) {
					return true
				}
			}
		}
	}
	return false
}

// cpuProfile profiles the process from start until stop is called; stop
// returns the profile and copies it to also, when not nil.
func cpuProfile(also io.Writer) (stop func() ([]byte, error), err error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return nil, fmt.Errorf("start CPU profile (is another one running?): %w", err)
	}
	return func() ([]byte, error) {
		pprof.StopCPUProfile()
		if also != nil {
			if _, err := also.Write(buf.Bytes()); err != nil {
				return nil, fmt.Errorf("write CPU profile: %w", err)
			}
		}
		return buf.Bytes(), nil
	}, nil
}
