package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
)

// Helpers shared by the benchmarks of cmd/bench: fresh databases and topics
// on the local env's servers, process memory, medians, context.

// RandomHex returns 2n random hex digits (letters and digits only, so they
// fit in every channel's out_request_no).
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreshDatabase creates database name on the server of dsn and returns a
// DSN for it (same user and options) and a function that drops it.
func FreshDatabase(ctx context.Context, dsn, name string) (string, func(), error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", nil, err
	}
	admin := func(stmt string) error {
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, stmt)
		return err
	}
	if err := admin("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	fresh := cfg.Clone()
	fresh.DBName = name
	return fresh.FormatDSN(), func() { _ = admin("DROP DATABASE IF EXISTS `" + name + "`") }, nil
}

// CreateTopics creates each topic with the given partitions (replication
// 1) and waits until every partition has a leader.
func CreateTopics(ctx context.Context, brokers []string, partitions map[string]int) error {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second, Transport: tr}
	req := &kafka.CreateTopicsRequest{}
	var names []string
	for name, p := range partitions {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: name, NumPartitions: p, ReplicationFactor: 1})
		names = append(names, name)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, e := range resp.Errors {
		if e != nil {
			return fmt.Errorf("create topic %s: %w", name, e)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && allLed(md.Topics, partitions) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v have no leaders after 30s (last error: %v)", names, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allLed(topics []kafka.Topic, want map[string]int) bool {
	if len(topics) != len(want) {
		return false
	}
	for _, t := range topics {
		if t.Error != nil || len(t.Partitions) != want[t.Name] {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false
			}
		}
	}
	return true
}

// DeleteTopics deletes topics, best effort.
func DeleteTopics(brokers []string, topics ...string) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second, Transport: tr}
	_, _ = client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: topics})
}

// TopicMessages is the number of messages on every partition of topic
// (last offset − first offset, summed).
func TopicMessages(ctx context.Context, brokers []string, topic string, partitions int) (int, error) {
	total := 0
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			return 0, err
		}
		first, last, err := conn.ReadOffsets()
		conn.Close()
		if err != nil {
			return 0, err
		}
		total += int(last - first)
	}
	return total, nil
}

// PeakRSSMB is VmHWM of process pid (its peak resident set) in MiB.
func PeakRSSMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// CPUTime is the user+system CPU time process pid has used so far (from
// /proc/<pid>/stat, in clock ticks of 10ms).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Median of xs (the mean of the middle two for an even count); 0 if empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Percentile is the nearest-rank p-quantile (0 < p ≤ 1) of sorted ds.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p*float64(len(sorted))+0.999999) - 1 // ceil(p·n) − 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// MariaDBVersion is SELECT VERSION() on the server of dsn.
func MariaDBVersion(ctx context.Context, dsn string) (string, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	err = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v)
	return v, err
}

// KafkaVersion is the version of the local env's broker, read from the name
// of its jar (.localenv/kafka/libs/kafka_<scala>-<version>.jar under root).
func KafkaVersion(root string) (string, error) {
	jars, _ := filepath.Glob(filepath.Join(root, ".localenv", "kafka", "libs", "kafka_*.jar"))
	for _, j := range jars {
		base := filepath.Base(j)
		if strings.Contains(base, "-test") || strings.Contains(base, "-sources") || strings.Contains(base, "-javadoc") {
			continue
		}
		_, v, ok := strings.Cut(strings.TrimSuffix(base, ".jar"), "-")
		if ok {
			return v + " (" + base + ")", nil
		}
	}
	return "", errors.New("no kafka_*.jar under .localenv/kafka/libs (not the local env's broker?)")
}

// GitCommit is HEAD of the work tree at root, with "-dirty" when it has
// uncommitted changes.
func GitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}

// ModuleRoot is the directory of the go.mod of the current module.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the module: run the benchmark from the repository")
	}
	return filepath.Dir(mod), nil
}
