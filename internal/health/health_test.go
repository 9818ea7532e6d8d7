package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReportLogsChangesOnce: the gauge follows every observation, the log
// only the changes (and a reminder a minute into an outage).
func TestReportLogsChangesOnce(t *testing.T) {
	var logs logBuffer
	reg := prometheus.NewRegistry()
	d := New(reg, slog.New(slog.NewJSONHandler(&logs, nil)))
	now := time.Unix(1000, 0)
	d.now = func() time.Time { return now }
	var down error
	d.Add("kafka", func(context.Context) error { return down })
	up := func() float64 { return gauge(t, d, "kafka") }
	if up() != 0 {
		t.Fatalf("gauge %v before any observation, want 0", up())
	}

	check := d.Check("kafka")
	for range 3 {
		_ = check(context.Background())
	}
	if up() != 1 {
		t.Errorf("gauge %v after successful checks, want 1", up())
	}
	down = errors.New("connection refused")
	for i := range 5 {
		now = now.Add(10 * time.Second)
		if err := check(context.Background()); err == nil {
			t.Fatalf("check %d: nil while down", i)
		}
	}
	if up() != 0 {
		t.Errorf("gauge %v while down, want 0", up())
	}
	now = now.Add(20 * time.Second) // a minute into the outage: a reminder
	_ = check(context.Background())
	down = nil
	now = now.Add(10 * time.Second)
	_ = check(context.Background())
	_ = check(context.Background())
	if up() != 1 {
		t.Errorf("gauge %v after recovery, want 1", up())
	}

	got := logs.String()
	for msg, want := range map[string]int{
		`"msg":"dependency reachable"`:         1,
		`"msg":"dependency unreachable"`:       1,
		`"msg":"dependency still unreachable"`: 1,
		`"msg":"dependency reachable again"`:   1,
	} {
		if n := strings.Count(got, msg); n != want {
			t.Errorf("%d lines with %s, want %d:\n%s", n, msg, want, got)
		}
	}
	if !strings.Contains(got, `"down_for":"1m10s"`) {
		t.Errorf("the recovery line does not say it was down 70s:\n%s", got)
	}
}

// TestNotTriedIsNoObservation: a check that has nothing to say yet leaves
// the gauge at 0 and the log quiet; a cancelled probe says nothing either.
func TestNotTriedIsNoObservation(t *testing.T) {
	var logs logBuffer
	d := New(nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	d.Add("mysql", func(context.Context) error { return fmt.Errorf("not connected yet: %w", ErrNotTried) })
	d.ProbeAll(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Add("kafka", func(ctx context.Context) error { return ctx.Err() })
	_ = d.Check("kafka")(ctx)
	if s := logs.String(); s != "" {
		t.Errorf("logged %s", s)
	}
	for _, dep := range []string{"mysql", "kafka"} {
		if v := gauge(t, d, dep); v != 0 {
			t.Errorf("%s gauge %v, want 0", dep, v)
		}
	}
}

func gauge(t *testing.T, d *Dependencies, dep string) float64 {
	t.Helper()
	var m dto.Metric
	if err := d.up.WithLabelValues(dep).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
