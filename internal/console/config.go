package console

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/config"
	"github.com/paycore/withdraw/internal/deadletter"
	"github.com/paycore/withdraw/internal/schedule"
)

// FromConfig are the options of a consumer's or poller's console: its
// timing rules, its brokers and topics, its metrics.
func FromConfig(cfg *config.Config, reg prometheus.Gatherer, log *slog.Logger) Options {
	rules, err := schedule.ByName(cfg.Schedule)
	if err != nil {
		rules = schedule.Production() // config.Parse already refused a bad name
	}
	return Options{
		Rules:       rules,
		DeadLetters: deadletter.Topics{Brokers: cfg.KafkaBrokers, DLQ: cfg.DLQTopic, Commands: cfg.CommandsTopic},
		Gatherer:    reg,
		Logger:      log,
	}
}
