package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
)

// TestConsumerDispatches runs the consumer with its dispatcher against the
// provider sandbox over HTTP: every command produced is stored once and
// submitted once, on every channel.
func TestConsumerDispatches(t *testing.T) {
	s := newSystem(t, 3)
	env := providertest.Start(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
	cfg, err := yaml.Marshal(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "withdraw.yaml")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 200
	s.produce(0, n)
	c := s.start("dispatching", "WITHDRAW_DISPATCH=true", "WITHDRAW_CONFIG="+cfgFile, "WITHDRAW_SCHEDULE=accelerated")

	deadline := time.Now().Add(2 * time.Minute)
	for s.count("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED'") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d submitted after 2 minutes", s.count("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUBMITTED'"), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.checkSubmittedOnce(n)
	env.AssertPaidAtMostOnce()
	if got := len(env.Ledger().Orders); got != n {
		t.Errorf("the sandbox saw %d orders, want %d", got, n)
	}
	if m := c.metric(t, `withdraw_dispatch_claims_total`); m < n {
		t.Errorf("claims metric %v, want at least %d", m, n)
	}
	c.signal(t, syscall.SIGTERM)
	if err := c.wait(t, 20*time.Second); err != nil {
		t.Errorf("consumer exit: %v", err)
	}
}

// checkSubmittedOnce asserts each withdrawal has exactly its accepted and
// submitted events.
func (s *system) checkSubmittedOnce(n int) {
	s.t.Helper()
	if got := s.count("SELECT COUNT(*) FROM outbox WHERE event_type = 'withdrawal.submitted'"); got != int64(n) {
		s.t.Errorf("%d submitted events, want %d", got, n)
	}
	if got := s.count("SELECT COUNT(*) FROM withdrawals WHERE version <> 2 OR submissions <> 1"); got != 0 {
		s.t.Errorf("%d withdrawals not at version 2 after exactly one submission", got)
	}
}
