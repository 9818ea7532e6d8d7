package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/testenv"
)

func TestHelp(t *testing.T) {
	if err := run([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
}

// TestBinarySmoke runs the poller in-process against a fresh database and
// the sandbox: it serves health, readiness and the callback route, and
// stops cleanly on SIGTERM.
func TestBinarySmoke(t *testing.T) {
	dsn := testenv.FreshDatabase(t)
	brokers := testenv.KafkaBrokers(t)
	env := providertest.Start(t, sandbox.Options{})
	cfgFile := filepath.Join(t.TempDir(), "withdraw.yaml")
	b, err := yaml.Marshal(map[string]any{"accounts": env.Config.Accounts})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("WITHDRAW_MYSQL_DSN", dsn)
	t.Setenv("WITHDRAW_KAFKA_BROKERS", strings.Join(brokers, ","))
	t.Setenv("WITHDRAW_CONFIG", cfgFile)
	t.Setenv("WITHDRAW_HTTP_ADDR", addr)
	t.Setenv("WITHDRAW_SCHEDULE", "accelerated")
	t.Setenv("WITHDRAW_POLL_INTERVAL", "1s")
	t.Setenv("WITHDRAW_LOG_LEVEL", "error")

	done := make(chan error, 1)
	go func() { done <- run(nil) }()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("poller did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// /healthz answers from the start, /readyz once the database is
	// connected and migrated.
	waitStatus(t, base+"/readyz", http.StatusOK, 20*time.Second)
	resp, err := http.Post(base+"/notify/wechatpay/default", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned callback: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, _ = http.Get(base + "/metrics")
	var sb strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if !strings.Contains(sb.String(), `withdraw_poll_callbacks_total{result="bad_signature"} 1`) {
		t.Error("metrics do not show the rejected callback")
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("poller did not stop on SIGTERM")
	}
}

// waitStatus waits until GET url answers want.
func waitStatus(t *testing.T, url string, want int, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := get(url)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %s after %s, want %d", url, code, body, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(url string) (int, string) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStartsWithDependenciesDown runs the poller in-process while MariaDB
// and Kafka are both unreachable (through cut proxies): it serves /healthz,
// answers /readyz 503 naming both, and the callback route 503; once they
// are reachable it connects, migrates and turns ready without a restart.
// SIGTERM then stops it.
func TestStartsWithDependenciesDown(t *testing.T) {
	dsn := testenv.FreshDatabase(t)
	brokers := testenv.KafkaBrokers(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	mp := testenv.NewDownProxy(t, cfg.Addr)
	cfg.Addr = mp.Addr()
	kp := testenv.NewDownKafkaProxy(t, brokers[0])
	env := providertest.Start(t, sandbox.Options{})
	cfgFile := filepath.Join(t.TempDir(), "withdraw.yaml")
	b, err := yaml.Marshal(map[string]any{"accounts": env.Config.Accounts})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("WITHDRAW_MYSQL_DSN", cfg.FormatDSN())
	t.Setenv("WITHDRAW_KAFKA_BROKERS", kp.Addr())
	t.Setenv("WITHDRAW_CONFIG", cfgFile)
	t.Setenv("WITHDRAW_HTTP_ADDR", addr)
	t.Setenv("WITHDRAW_SCHEDULE", "accelerated")
	t.Setenv("WITHDRAW_POLL_INTERVAL", "1s")
	t.Setenv("WITHDRAW_LOG_LEVEL", "error")

	done := make(chan error, 1)
	go func() { done <- run(nil) }()
	base := "http://" + addr
	waitStatus(t, base+"/healthz", http.StatusOK, 20*time.Second)
	body := waitStatus(t, base+"/readyz", http.StatusServiceUnavailable, 5*time.Second)
	if !strings.Contains(body, `"mysql":"not connected yet`) || strings.Contains(body, `"kafka":"ok"`) {
		t.Errorf("/readyz = %s, want mysql and kafka failing", body)
	}
	if code, body := func() (int, string) {
		resp, err := http.Post(base+"/notify/wechatpay/default", "application/json", strings.NewReader(`{}`))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}(); code != http.StatusServiceUnavailable {
		t.Errorf("callback before the database is connected = %d %s, want 503", code, body)
	}
	select {
	case err := <-done:
		t.Fatalf("poller exited while its dependencies are down: %v", err)
	case <-time.After(2 * time.Second):
	}

	mp.Restore()
	kp.Restore()
	waitStatus(t, base+"/readyz", http.StatusOK, 45*time.Second)
	_, metrics := get(base + "/metrics")
	for _, dep := range []string{"mysql", "kafka"} {
		if !strings.Contains(metrics, `withdraw_dependency_up{dependency="`+dep+`"} 1`) {
			t.Errorf("metrics do not show %s up", dep)
		}
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poller did not stop on SIGTERM within 10s")
	}
}
