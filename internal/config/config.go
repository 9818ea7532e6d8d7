// Package config is the one place where the binaries read their settings:
// every setting is a flag and a WITHDRAW_* environment variable, the flag
// winning, each with a documented default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/recon"
	"github.com/paycore/withdraw/internal/store"
)

// Config holds the settings shared by cmd/consumer and cmd/poller.
type Config struct {
	KafkaBrokers     []string
	MySQLDSN         string
	HTTPAddr         string
	CommandsTopic    string
	EventsTopic      string
	DLQTopic         string
	ConsumerGroup    string
	TopicPartitions  int
	TopicReplication int
	// DLQMaxMessageBytes is the dead-letter topic's max.message.bytes; a
	// dead letter that would not fit is truncated (docs/intake.md).
	DLQMaxMessageBytes int
	// ProvidersFile is the YAML file of provider accounts (WITHDRAW_CONFIG).
	ProvidersFile string
	// PIIKeysFile holds the data keys for payee data at rest (see package pii).
	PIIKeysFile string
	InstanceID  string

	IntakeBatchSize int
	IntakeBatchWait time.Duration

	RelayEnabled    bool
	OutboxRetention time.Duration

	DispatchEnabled      bool
	DispatchMaxInFlight  int
	DispatchPerMerchant  int
	DispatchLeaseTTL     time.Duration
	DispatchPollInterval time.Duration
	DispatchRate         float64
	DispatchBurst        int
	// Schedule selects the provider timing rules: "production" (the
	// providers' documents) or "accelerated" (seconds, for the sandbox).
	Schedule        string
	DBMaxOpen       int
	ShutdownTimeout time.Duration
	LogLevel        string

	// Poller (cmd/poller, package poll).
	PollInterval      time.Duration
	PollDailySpec     string
	PollBatchSize     int
	PollConcurrency   int
	PollQueryRate     float64
	PollFollowUpShare float64
	AttemptsRetention time.Duration
	ReconSpec         string

	// AdminTokenFile holds the bearer token of the admin API (package
	// admin); empty: the admin API is not mounted.
	AdminTokenFile string
	// ConsumerLagInterval is how often the intake's consumer lag is
	// recomputed from the group's committed offsets.
	ConsumerLagInterval time.Duration
}

// Defaults of the settings this package owns; every other setting's
// default is the …Default constant of the package whose option it sets
// (intake.BatchSizeDefault, dispatch.LeaseTTLDefault, poll.QueryRateDefault,
// relay.RetentionDefault, store.MaxOpenDefault, …), so that a component
// built in code and a binary started without the flag agree.
const (
	KafkaBrokersDefault        = "127.0.0.1:9092"
	HTTPAddrDefault            = "127.0.0.1:8080"
	CommandsTopicDefault       = "withdraw.commands"
	EventsTopicDefault         = "withdraw.events"
	ConsumerGroupDefault       = "withdraw-intake"
	TopicPartitionsDefault     = 12
	TopicReplicationDefault    = 1
	ScheduleDefault            = "production"
	ShutdownTimeoutDefault     = 15 * time.Second
	LogLevelDefault            = "info"
	ConsumerLagIntervalDefault = 5 * time.Second
)

// setting describes one flag/variable pair.
type setting struct {
	flag, env, def, help string
	set                  func(string) error
}

func (c *Config) settings() []setting {
	host, _ := os.Hostname()
	return []setting{
		{"kafka-brokers", "WITHDRAW_KAFKA_BROKERS", KafkaBrokersDefault, "Kafka bootstrap brokers, comma-separated", strList(&c.KafkaBrokers)},
		{"mysql-dsn", "WITHDRAW_MYSQL_DSN", "", "MySQL DSN in go-sql-driver form, e.g. user:pass@tcp(host:3306)/withdraw (required)", str(&c.MySQLDSN)},
		{"http-addr", "WITHDRAW_HTTP_ADDR", HTTPAddrDefault, "listen address for /metrics, /healthz, /readyz (and admin, callbacks)", str(&c.HTTPAddr)},
		{"commands-topic", "WITHDRAW_COMMANDS_TOPIC", CommandsTopicDefault, "topic of withdrawal commands", str(&c.CommandsTopic)},
		{"events-topic", "WITHDRAW_EVENTS_TOPIC", EventsTopicDefault, "topic of withdrawal events", str(&c.EventsTopic)},
		{"dlq-topic", "WITHDRAW_DLQ_TOPIC", intake.DLQTopicDefault, "topic of dead-lettered commands", str(&c.DLQTopic)},
		{"dlq-max-message-bytes", "WITHDRAW_DLQ_MAX_MESSAGE_BYTES", itoa(intake.DLQMaxMessageBytesDefault), "max.message.bytes of the dead-letter topic (set on it when created): dead letters that would not fit are published truncated, with original_size and original_sha256 headers", integer(&c.DLQMaxMessageBytes)},
		{"consumer-group", "WITHDRAW_CONSUMER_GROUP", ConsumerGroupDefault, "Kafka consumer group of the intake", str(&c.ConsumerGroup)},
		{"topic-partitions", "WITHDRAW_TOPIC_PARTITIONS", itoa(TopicPartitionsDefault), "partitions of topics created at start (existing topics are left alone)", integer(&c.TopicPartitions)},
		{"topic-replication", "WITHDRAW_TOPIC_REPLICATION", itoa(TopicReplicationDefault), "replication factor of topics created at start", integer(&c.TopicReplication)},
		{"config", "WITHDRAW_CONFIG", "", "YAML file of provider accounts", str(&c.ProvidersFile)},
		{"pii-keys-file", "WITHDRAW_PII_KEYS_FILE", "", "file of AES-256 data keys for payee data at rest, lines \"<id> <base64>\", current key first", str(&c.PIIKeysFile)},
		{"instance-id", "WITHDRAW_INSTANCE_ID", host, "name of this instance in leases and the audit trail", str(&c.InstanceID)},
		{"intake-batch-size", "WITHDRAW_INTAKE_BATCH_SIZE", itoa(intake.BatchSizeDefault), "most commands stored in one database transaction", integer(&c.IntakeBatchSize)},
		{"intake-batch-wait", "WITHDRAW_INTAKE_BATCH_WAIT", dur(intake.BatchWaitDefault), "longest wait for a batch to fill once its first command arrived", duration(&c.IntakeBatchWait)},
		{"relay", "WITHDRAW_RELAY", "true", "run the outbox relay (events to Kafka) in this process; many instances are safe", boolean(&c.RelayEnabled)},
		{"outbox-retention", "WITHDRAW_OUTBOX_RETENTION", dur(relay.RetentionDefault), "how long published outbox rows are kept before the daily job deletes them", duration(&c.OutboxRetention)},
		{"attempts-retention", "WITHDRAW_ATTEMPTS_RETENTION", dur(poll.AttemptsRetentionDefault), "how long the audit of provider calls (withdrawal_attempts) is kept before the poller's daily job deletes it; negative keeps it forever", duration(&c.AttemptsRetention)},
		{"dispatch", "WITHDRAW_DISPATCH", "true", "run the dispatcher (submissions to the providers) in this process", boolean(&c.DispatchEnabled)},
		{"dispatch-max-in-flight", "WITHDRAW_DISPATCH_MAX_IN_FLIGHT", itoa(dispatch.MaxInFlightDefault), "most concurrent provider calls of this instance", integer(&c.DispatchMaxInFlight)},
		{"dispatch-per-merchant", "WITHDRAW_DISPATCH_PER_MERCHANT", itoa(dispatch.PerMerchantDefault), "most in-flight submissions per merchant across ALL instances (per-account overrides in the config file)", integer(&c.DispatchPerMerchant)},
		{"dispatch-lease-ttl", "WITHDRAW_DISPATCH_LEASE_TTL", dur(dispatch.LeaseTTLDefault), "how long a claim is held before it counts as maybe sent (UNKNOWN); must exceed the provider timeout", duration(&c.DispatchLeaseTTL)},
		{"dispatch-poll-interval", "WITHDRAW_DISPATCH_POLL_INTERVAL", dur(dispatch.PollIntervalDefault), "how often the dispatcher looks for due work when nothing wakes it", duration(&c.DispatchPollInterval)},
		{"dispatch-rate", "WITHDRAW_DISPATCH_RATE", ftoa(dispatch.RatePerSecondDefault), "provider calls per second per provider account (per-account overrides in the config file)", float(&c.DispatchRate)},
		{"dispatch-burst", "WITHDRAW_DISPATCH_BURST", itoa(dispatch.RateBurstDefault), "token-bucket burst of the per-account rate limit", integer(&c.DispatchBurst)},
		{"schedule", "WITHDRAW_SCHEDULE", ScheduleDefault, "provider timing rules: production, or accelerated (seconds instead of days, for the sandbox)", oneOf(&c.Schedule, "production", "accelerated")},
		{"db-max-open", "WITHDRAW_DB_MAX_OPEN", itoa(store.MaxOpenDefault), "most open database connections", integer(&c.DBMaxOpen)},
		{"shutdown-timeout", "WITHDRAW_SHUTDOWN_TIMEOUT", dur(ShutdownTimeoutDefault), "how long a SIGTERM waits for in-flight work", duration(&c.ShutdownTimeout)},
		{"log-level", "WITHDRAW_LOG_LEVEL", LogLevelDefault, "debug, info, warn or error", str(&c.LogLevel)},
		{"poll-interval", "WITHDRAW_POLL_INTERVAL", dur(poll.SweepIntervalDefault), "poller: how often the sweep looks for due status queries (whole seconds, at least 1s)", duration(&c.PollInterval)},
		{"poll-daily-spec", "WITHDRAW_POLL_DAILY_SPEC", poll.DailySpecDefault, "poller: cron spec (Beijing time) of the daily stuck report and retention", str(&c.PollDailySpec)},
		{"recon-spec", "WITHDRAW_RECON_SPEC", recon.SpecDefault, "poller: cron spec (Beijing time) of the reconciliation against WeChat Pay's fund-flow bills: each run reads the bills of the last 3 days not yet reconciled (accounts with a recon block; docs/reconciliation.md)", str(&c.ReconSpec)},
		{"poll-batch-size", "WITHDRAW_POLL_BATCH_SIZE", itoa(poll.BatchSizeDefault), "poller: most withdrawals claimed at a time (a sweep claims again while its claims come back full)", integer(&c.PollBatchSize)},
		{"poll-concurrency", "WITHDRAW_POLL_CONCURRENCY", itoa(poll.ConcurrencyDefault), "poller: most provider queries in flight", integer(&c.PollConcurrency)},
		{"poll-query-rate", "WITHDRAW_POLL_QUERY_RATE", ftoa(poll.QueryRateDefault), "poller: status queries per second per provider account, shared equally by the poller instances alive", float(&c.PollQueryRate)},
		{"poll-follow-up-share", "WITHDRAW_POLL_FOLLOW_UP_SHARE", ftoa(poll.FollowUpShareDefault), "poller: share (0-1] of each sweep, and of the query rate, kept for refund follow-ups of succeeded withdrawals", float(&c.PollFollowUpShare)},
		{"admin-token-file", "WITHDRAW_ADMIN_TOKEN_FILE", "", "file holding the bearer token of the admin API (/v1/withdrawals); empty: the admin API is not served", str(&c.AdminTokenFile)},
		{"consumer-lag-interval", "WITHDRAW_CONSUMER_LAG_INTERVAL", dur(ConsumerLagIntervalDefault), "consumer: how often withdraw_intake_consumer_lag is recomputed from the group's committed offsets", duration(&c.ConsumerLagInterval)},
	}
}

// Defaults returns the settings as they are when no flag and no variable
// sets them (MySQLDSN empty, InstanceID the host name): the base of a
// Config built in code, like the devstack's. It is not validated.
func Defaults() *Config {
	c := &Config{}
	for _, s := range c.settings() {
		// Every default parses (TestDefaults): no error to handle.
		_ = s.set(s.def)
	}
	return c
}

// Parse reads the settings from args (without the program name) and the
// environment. It returns flag.ErrHelp after printing usage for -h/--help.
func Parse(program, summary string, args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(out)
	settings := c.settings()
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		values[s.flag] = fs.String(s.flag, v, fmt.Sprintf("%s (env %s)", s.help, s.env))
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "%s: %s\n\nUsage: %s [flags]\n\nEvery flag can also be set by its environment variable; the flag wins.\n\n", program, summary, program)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v (see --help)", fs.Args())
	}
	for _, s := range settings {
		if err := s.set(*values[s.flag]); err != nil {
			return nil, fmt.Errorf("--%s / %s: %w", s.flag, s.env, err)
		}
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	var errs []error
	if c.MySQLDSN == "" {
		errs = append(errs, errors.New("--mysql-dsn / WITHDRAW_MYSQL_DSN is required"))
	}
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("--kafka-brokers / WITHDRAW_KAFKA_BROKERS is required"))
	}
	if c.IntakeBatchSize < 1 {
		errs = append(errs, errors.New("--intake-batch-size must be at least 1"))
	}
	if c.DispatchMaxInFlight < 1 || c.DispatchPerMerchant < 1 || c.DispatchBurst < 1 {
		errs = append(errs, errors.New("--dispatch-max-in-flight, --dispatch-per-merchant and --dispatch-burst must be at least 1"))
	}
	if c.DispatchLeaseTTL < 5*time.Second {
		errs = append(errs, errors.New("--dispatch-lease-ttl must be at least 5s"))
	}
	if c.DLQMaxMessageBytes < 16<<10 {
		errs = append(errs, errors.New("--dlq-max-message-bytes must be at least 16384"))
	}
	if c.TopicPartitions < 1 || c.TopicReplication < 1 {
		errs = append(errs, errors.New("--topic-partitions and --topic-replication must be at least 1"))
	}
	if c.PollInterval < time.Second {
		errs = append(errs, errors.New("--poll-interval must be at least 1s"))
	}
	if c.ConsumerLagInterval < 100*time.Millisecond {
		errs = append(errs, errors.New("--consumer-lag-interval must be at least 100ms"))
	}
	if c.PollBatchSize < 1 || c.PollConcurrency < 1 {
		errs = append(errs, errors.New("--poll-batch-size and --poll-concurrency must be at least 1"))
	}
	if c.PollQueryRate <= 0 {
		errs = append(errs, errors.New("--poll-query-rate must be positive"))
	}
	if c.PollFollowUpShare <= 0 || c.PollFollowUpShare > 1 {
		errs = append(errs, errors.New("--poll-follow-up-share must be in (0, 1]"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"intake-batch-wait", c.IntakeBatchWait},
		{"dispatch-poll-interval", c.DispatchPollInterval},
		{"shutdown-timeout", c.ShutdownTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("--%s must not be negative (0 takes the default)", d.flag))
		}
	}
	return errors.Join(errs...)
}

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// dur writes a default duration the way an operator would: "168h", "60s",
// "250ms" rather than time.Duration's "168h0m0s" and "1m0s".
func dur(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d >= time.Millisecond && d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}

func str(p *string) func(string) error {
	return func(v string) error { *p = v; return nil }
}

func strList(p *[]string) func(string) error {
	return func(v string) error {
		*p = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*p = append(*p, s)
			}
		}
		return nil
	}
}

func integer(p *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*p = n
		return nil
	}
}

func boolean(p *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*p = b
		return nil
	}
}

func float(p *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("%q is not a positive number", v)
		}
		*p = f
		return nil
	}
}

func oneOf(p *string, allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				*p = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %v", v, allowed)
	}
}

func duration(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 20ms or 5s", v)
		}
		*p = d
		return nil
	}
}

// Setting is the public description of one setting: its flag (without
// dashes), environment variable, default and meaning. Tools with their own
// small flag sets (cmd/withdrawctl) and the deployment tests use it so that
// names never drift from what the binaries parse.
type Setting struct {
	Flag, Env, Default, Help string
}

// Settings lists every setting the binaries parse, in --help order.
func Settings() []Setting {
	all := (&Config{}).settings()
	out := make([]Setting, len(all))
	for i, s := range all {
		out[i] = Setting{Flag: s.flag, Env: s.env, Default: s.def, Help: s.help}
	}
	return out
}

// Lookup returns the setting of a flag name (without dashes).
func Lookup(flagName string) (Setting, bool) {
	for _, s := range Settings() {
		if s.Flag == flagName {
			return s, true
		}
	}
	return Setting{}, false
}

// Markdown renders the settings as docs/operations.md's configuration table.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | meaning |\n|---|---|---|---|\n")
	for _, s := range (&Config{}).settings() {
		def := "`" + s.def + "`"
		switch {
		case s.flag == "instance-id":
			def = "host name"
		case s.def == "":
			def = "—"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", s.flag, s.env, def, s.help)
	}
	return b.String()
}
