package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/withdrawal"
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
	s.checkEventsOnTopic(n, 2)
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

// checkEventsOnTopic reads the events topic until every one of n
// withdrawals has versions 1..versions, and checks that each withdrawal's
// events arrive in version order (duplicates allowed, as delivery is at
// least once) with the CloudEvents headers.
func (s *system) checkEventsOnTopic(n, versions int) {
	s.t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: s.brokers, GroupID: s.group + ".check", Topic: s.events,
		StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	last := map[string]int{}
	complete := 0
	for complete < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			s.t.Fatalf("read events: %d of %d withdrawals complete: %v", complete, n, err)
		}
		var ev withdrawal.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			s.t.Fatalf("event is not JSON: %v", err)
		}
		if string(m.Key) != ev.WithdrawalID {
			s.t.Errorf("event key %q, withdrawal %q", m.Key, ev.WithdrawalID)
		}
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers["ce_id"] != ev.EventID || headers["ce_type"] != string(ev.Type) || headers["event_id"] != ev.EventID {
			s.t.Errorf("headers %v do not match event %s %s", headers, ev.EventID, ev.Type)
		}
		prev := last[ev.WithdrawalID]
		switch {
		case ev.Version <= prev: // a duplicate of an event already seen
		case ev.Version == prev+1:
			last[ev.WithdrawalID] = ev.Version
			if ev.Version == versions {
				complete++
			}
		default:
			s.t.Fatalf("withdrawal %s: version %d after %d", ev.WithdrawalID, ev.Version, prev)
		}
	}
}
