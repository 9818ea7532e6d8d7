package dispatch_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/intake"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestDispatcherOperations: the dispatcher as it is run — through a
// database outage, and with every logger at debug level.
//
// Not parallel: DatabaseOutageIsRiddenOut counts log lines against the
// wall clock and NoPIIInLogs swaps the process-wide default logger, so
// they run one at a time before the parallel tests start.
func TestDispatcherOperations(t *testing.T) {
	// setup gives a subtest its own database and sandbox, started with opts.
	setup := func(t *testing.T, opts sandbox.Options) *rig {
		t.Helper()
		return newRig(t, opts)
	}

	// A dispatcher whose database connection goes through a proxy that is
	// cut keeps going: its failed claims are retried with a growing pause
	// (a handful of log lines, not one per poll tick), and once the
	// database is back it submits again.
	t.Run("DatabaseOutageIsRiddenOut", func(t *testing.T) {
		// Serial: counts the failed claims logged in 2s of wall clock.
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
		cfg, err := mysql.ParseDSN(r.dsn)
		if err != nil {
			t.Fatal(err)
		}
		p := testenv.NewProxy(t, cfg.Addr)
		cfg.Addr = p.Addr()
		db, err := store.OpenMySQL(context.Background(), cfg.FormatDSN(), store.PoolOptions{MaxOpen: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var logs storetest.LogBuffer
		d, err := dispatch.New(db, r.env.Registry(), r.keys, dispatch.Options{Instance: "outage", PollInterval: 20 * time.Millisecond,
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, d)
		defer stop()

		r.seed(providertest.Command(withdrawal.ChannelWeChatEcommerce, "WOUTAGE1", 100))
		r.waitFor(30*time.Second, func(c map[string]int64) bool { return c["SUBMITTED"] == 1 })

		p.Cut()
		time.Sleep(2 * time.Second)
		failures := strings.Count(logs.String(), `"msg":"claim failed`)
		t.Logf("%d failed claims logged in 2s of outage", failures)
		if failures == 0 {
			t.Fatal("no failed claim logged: did the outage reach the dispatcher?")
		}
		// 20ms doubling: 20+40+…+1280ms is the 7th pause.
		if failures > 10 {
			t.Errorf("%d failed claims logged in 2s with a 20ms poll interval: no backoff", failures)
		}

		p.Restore()
		r.seed(providertest.Command(withdrawal.ChannelWeChatEcommerce, "WOUTAGE2", 100))
		r.waitFor(30*time.Second, func(c map[string]int64) bool { return c["SUBMITTED"] == 2 })
	})

	// A cancel-withdraw command with payee data goes through Kafka, the
	// intake, the dispatcher and the provider (with faults, so error paths
	// log too), with every logger at debug level; the captured log holds
	// none of the sensitive values.
	t.Run("NoPIIInLogs", func(t *testing.T) {
		// Serial: makes its logger the process-wide slog default.
		var logs storetest.LogBuffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		prev := slog.Default()
		slog.SetDefault(log) // the provider clients log through the default logger
		t.Cleanup(func() { slog.SetDefault(prev) })

		r := setup(t, sandbox.Options{Seed: 3, Faults: map[string]sandbox.Fault{
			sandbox.EndpointCancelSubmit: {TimeoutAfterCommit: 0.5, Errors: map[string]float64{"SYSTEM_ERROR": 0.3}},
		}})
		brokers := testenv.KafkaBrokers(t)
		topic, dlq := testenv.UniqueTopic(t, "commands"), testenv.UniqueTopic(t, "dlq")
		testenv.CreateTopic(t, topic, 1)
		testenv.CreateTopic(t, dlq, 1)

		var values []kafka.Message
		var secrets []string
		for i := range 5 {
			c := providertest.Command(withdrawal.ChannelWeChatCancel, "PII"+string(rune('A'+i)), 100)
			c.PayeeInfo.BankAccountInfo.AccountNumber = "62220202001122" + strings.Repeat(string(rune('0'+i)), 5)
			c.PayeeInfo.BankAccountInfo.AccountName = "保密公司" + string(rune('甲'+i))
			c.PayeeInfo.IdentityInfo.IdentificationNo = "11010119900307" + strings.Repeat(string(rune('0'+i)), 4)
			c.PayeeInfo.IdentityInfo.IdentificationName = "李四" + string(rune('甲'+i))
			secrets = append(secrets, c.PayeeInfo.BankAccountInfo.AccountNumber, c.PayeeInfo.IdentityInfo.IdentificationNo,
				c.PayeeInfo.BankAccountInfo.AccountName, c.PayeeInfo.IdentityInfo.IdentificationName)
			b, _ := json.Marshal(c)
			values = append(values, kafka.Message{Key: []byte(c.OutRequestNo), Value: b})
		}
		w := kafkautil.NewWriter(brokers, topic)
		if err := w.WriteMessages(context.Background(), values...); err != nil {
			t.Fatal(err)
		}
		w.Close()

		reader := kafkautil.NewGroupReader(brokers, "pii", topic)
		defer reader.Close()
		dlqWriter := kafkautil.NewWriter(brokers, "")
		defer dlqWriter.Close()
		in, err := intake.New(r.db, reader, dlqWriter, intake.Options{DLQTopic: dlq, Keys: r.keys, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go in.Run(ctx)
		stop := run(t, r.dispatcher("pii", dispatch.Options{Logger: log}))
		r.waitFor(time.Minute, func(c map[string]int64) bool { return c["SUBMITTED"]+c["SUCCEEDED"] == 5 })
		stop()
		cancel()

		rows, _ := store.CountByState(context.Background(), r.db)
		out := logs.String()
		if !strings.Contains(out, "PIIA") {
			t.Fatalf("nothing about the withdrawals was logged (states %v): the test would prove nothing", rows)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("the log contains the sensitive value %q", s)
			}
		}
	})
}
