package main

import (
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("readyz: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/notify/wechatpay/default", "application/json", strings.NewReader(`{}`))
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
