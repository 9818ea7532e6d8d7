package config

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/recon"
	"github.com/paycore/withdraw/internal/store"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedence(t *testing.T) {
	var out bytes.Buffer
	c, err := Parse("consumer", "x", []string{"--intake-batch-size", "7"}, env(map[string]string{
		"WITHDRAW_MYSQL_DSN":         "u:p@tcp(h:1)/d",
		"WITHDRAW_KAFKA_BROKERS":     "a:1, b:2",
		"WITHDRAW_INTAKE_BATCH_SIZE": "99",
		"WITHDRAW_INTAKE_BATCH_WAIT": "5ms",
	}), &out)
	if err != nil {
		t.Fatal(err)
	}
	if c.IntakeBatchSize != 7 {
		t.Errorf("flag must win over env: %d", c.IntakeBatchSize)
	}
	if c.IntakeBatchWait != 5*time.Millisecond || strings.Join(c.KafkaBrokers, "|") != "a:1|b:2" {
		t.Errorf("env not applied: %+v", c)
	}
	if c.CommandsTopic != "withdraw.commands" || c.EventsTopic != "withdraw.events" || c.DLQTopic != "withdraw.commands.dlq" {
		t.Errorf("topic defaults: %+v", c)
	}
}

func TestErrors(t *testing.T) {
	var out bytes.Buffer
	if _, err := Parse("consumer", "x", nil, env(nil), &out); err == nil || !strings.Contains(err.Error(), "WITHDRAW_MYSQL_DSN") {
		t.Errorf("missing DSN: %v", err)
	}
	if _, err := Parse("consumer", "x", []string{"--intake-batch-wait", "soon"}, env(map[string]string{"WITHDRAW_MYSQL_DSN": "x"}), &out); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("bad duration: %v", err)
	}
	if _, err := Parse("consumer", "x", []string{"--shutdown-timeout", "-1s"}, env(map[string]string{"WITHDRAW_MYSQL_DSN": "x"}), &out); err == nil || !strings.Contains(err.Error(), "--shutdown-timeout") {
		t.Errorf("negative duration: %v", err)
	}
	if _, err := Parse("consumer", "x", []string{"--help"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("help: %v", err)
	}
	if !strings.Contains(out.String(), "WITHDRAW_KAFKA_BROKERS") {
		t.Error("usage does not name the environment variables")
	}
}

// TestDefaults: every default parses, Defaults is what Parse gives without
// flags or variables, and the defaults are the components' own.
func TestDefaults(t *testing.T) {
	for _, s := range (&Config{}).settings() {
		if err := s.set(s.def); err != nil {
			t.Errorf("--%s: default %q: %v", s.flag, s.def, err)
		}
	}
	d := Defaults()
	var out bytes.Buffer
	c, err := Parse("consumer", "x", nil, env(map[string]string{"WITHDRAW_MYSQL_DSN": "u:p@tcp(h:1)/d"}), &out)
	if err != nil {
		t.Fatal(err)
	}
	c.MySQLDSN = ""
	if !reflect.DeepEqual(c, d) {
		t.Errorf("Defaults() = %+v\nParse without settings = %+v", d, c)
	}
	if d.IntakeBatchSize != intake.BatchSizeDefault || d.IntakeBatchWait != intake.BatchWaitDefault ||
		d.DLQTopic != intake.DLQTopicDefault || d.DLQMaxMessageBytes != intake.DLQMaxMessageBytesDefault ||
		d.DispatchMaxInFlight != dispatch.MaxInFlightDefault || d.DispatchPerMerchant != dispatch.PerMerchantDefault ||
		d.DispatchLeaseTTL != dispatch.LeaseTTLDefault || d.DispatchPollInterval != dispatch.PollIntervalDefault ||
		d.DispatchRate != dispatch.RatePerSecondDefault || d.DispatchBurst != dispatch.RateBurstDefault ||
		d.PollInterval != poll.SweepIntervalDefault || d.PollDailySpec != poll.DailySpecDefault ||
		d.PollBatchSize != poll.BatchSizeDefault || d.PollConcurrency != poll.ConcurrencyDefault ||
		d.PollQueryRate != poll.QueryRateDefault || d.PollFollowUpShare != poll.FollowUpShareDefault ||
		d.AttemptsRetention != poll.AttemptsRetentionDefault || d.OutboxRetention != relay.RetentionDefault ||
		d.ReconSpec != recon.SpecDefault || d.DBMaxOpen != store.MaxOpenDefault {
		t.Errorf("a default differs from its component's: %+v", d)
	}
	for d, want := range map[time.Duration]string{168 * time.Hour: "168h", 60 * time.Second: "60s", 250 * time.Millisecond: "250ms", 1500 * time.Microsecond: "1.5ms"} {
		if got := dur(d); got != want {
			t.Errorf("dur(%v) = %q, want %q", d, got, want)
		}
	}
}
