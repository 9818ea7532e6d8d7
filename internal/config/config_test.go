package config

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
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
	if _, err := Parse("consumer", "x", []string{"--help"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("help: %v", err)
	}
	if !strings.Contains(out.String(), "WITHDRAW_KAFKA_BROKERS") {
		t.Error("usage does not name the environment variables")
	}
}
