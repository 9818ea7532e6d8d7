package dispatch_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestDispatcherRidesOutADatabaseOutage runs a dispatcher whose database
// connection goes through a proxy and cuts it: Run keeps going, its failed
// claims are retried with a growing pause (a handful of log lines, not one
// per poll tick), and once the database is back it submits again.
func TestDispatcherRidesOutADatabaseOutage(t *testing.T) {
	r := newRig(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
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
}
