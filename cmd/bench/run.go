package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/paycore/withdraw/internal/bench"
)

// Machine is what a report says about where and when it was measured, so
// that figures from different hosts are compared as ratios, not values.
type Machine struct {
	When           string  `json:"when"`
	Mode           string  `json:"mode"`
	CPUCores       int     `json:"cpu_cores"`
	MariaDBVersion string  `json:"mariadb_version"`
	KafkaVersion   string  `json:"kafka_version,omitempty"`
	GitCommit      string  `json:"git_commit"`
	GoVersion      string  `json:"go_version"`
	LoadAvgStart   string  `json:"load_avg_start"`
	LoadAvgEnd     string  `json:"load_avg_end"`
	Seconds        float64 `json:"seconds"`
}

// benchRun is the set-up every benchmark command shares: the local
// environment's DSN and brokers, the module root, and the report header.
type benchRun struct {
	dsn     string
	brokers []string
	root    string
	started time.Time
	machine Machine
}

// startRun reads the environment and fills the header; kafka asks for
// the broker's version too.
func startRun(ctx context.Context, quick, kafka bool) (*benchRun, error) {
	dsn, brokers, err := brokersAndDSN()
	if err != nil {
		return nil, err
	}
	root, err := bench.ModuleRoot()
	if err != nil {
		return nil, err
	}
	r := &benchRun{dsn: dsn, brokers: brokers, root: root, started: time.Now()}
	r.machine = Machine{When: r.started.UTC().Format(time.RFC3339), Mode: "full", CPUCores: runtime.NumCPU(),
		GitCommit: bench.GitCommit(root), GoVersion: runtime.Version(), LoadAvgStart: bench.LoadAvg()}
	if quick {
		r.machine.Mode = "quick"
	}
	if r.machine.MariaDBVersion, err = bench.MariaDBVersion(ctx, dsn); err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	if kafka {
		if r.machine.KafkaVersion, err = bench.KafkaVersion(root); err != nil {
			r.machine.KafkaVersion = "unknown: " + err.Error()
		}
	}
	return r, nil
}

// step prints one progress line with the time since the start.
func (r *benchRun) step(format string, a ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(r.started).Seconds(), fmt.Sprintf(format, a...))
}

// finish closes the header: the load at the end and the run's length.
func (r *benchRun) finish() Machine {
	r.machine.LoadAvgEnd = bench.LoadAvg()
	r.machine.Seconds = time.Since(r.started).Seconds()
	return r.machine
}

// writeReport writes a report as indented JSON to path, creating its
// directory, and says where.
func writeReport(path string, report any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}
