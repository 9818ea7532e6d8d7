package poll_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestPollerInstances: several pollers on one database.
func TestPollerInstances(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and a sandbox whose orders
	// behave as lc says.
	setup := func(t *testing.T, lc sandbox.Lifecycle) *rig {
		t.Helper()
		return newRig(t, sandbox.Options{Lifecycle: lc})
	}

	// Two pollers sweep the same rows at once, with a lease so short that
	// they keep re-claiming each other's rows. Every change is applied
	// once: per withdrawal the events have versions 1..n, and the pollers
	// together applied exactly as many changes as there are status events.
	t.Run("TwoPollersApplyEachChangeOnce", func(t *testing.T) {
		t.Parallel()
		const n = 60
		plans := []string{sandbox.PlanSuccess, sandbox.PlanFail, sandbox.PlanClose, sandbox.PlanRefund}
		planOf := map[string]string{}
		var cmds []*withdrawal.Command
		for i := range n {
			ch := withdrawal.Channels[i%len(withdrawal.Channels)]
			plan := plans[(i/len(withdrawal.Channels))%len(plans)]
			if ch == withdrawal.ChannelAllinpayShopoint && plan == sandbox.PlanRefund {
				plan = sandbox.PlanSuccess
			}
			no := fmt.Sprintf("T%03d", i)
			planOf[no] = plan
			c := providertest.Command(ch, no, int64(100+i))
			if c.SubMchID != "" {
				c.SubMchID = fmt.Sprintf("19%08d", i)
				if c.PayeeType == "CONTRIBUTION_MERCHANT" {
					c.PayeeMchID = c.SubMchID
				}
			}
			cmds = append(cmds, c)
		}
		r := setup(t, sandbox.Lifecycle{FinalDelay: 400 * time.Millisecond, RefundDelay: 1500 * time.Millisecond,
			Plan: func(o sandbox.OrderInfo) string { return planOf[o.OutRequestNo] }})
		ids := r.seed(cmds...)
		r.runDispatcher("d1", testRules())
		p1, reg1 := r.poller("p1", poll.Options{BatchSize: 7, Concurrency: 4, Lease: 30 * time.Millisecond})
		p2, reg2 := r.poller("p2", poll.Options{BatchSize: 7, Concurrency: 4, Lease: 30 * time.Millisecond})
		stop1 := r.sweepLoop(p1, 10*time.Millisecond)
		stop2 := r.sweepLoop(p2, 10*time.Millisecond)

		want := map[string]withdrawal.State{}
		for _, c := range cmds {
			st := withdrawal.StateSucceeded
			switch planOf[c.OutRequestNo] {
			case sandbox.PlanFail, sandbox.PlanClose:
				st = withdrawal.StateFailed
			case sandbox.PlanRefund:
				st = withdrawal.StateReversed
			}
			want[ids[c.OutRequestNo]] = st
		}
		r.waitState(60*time.Second, want)
		stop1()
		stop2()

		storetest.AssertVersionsGapFree(t, r.db)
		statusEvents := 0
		for _, id := range ids {
			// r.events checks each version once, 1..n, and the last state.
			for _, e := range r.events(id) {
				if e.Type != evAccepted && e.Type != evSubmitted {
					statusEvents++
				}
			}
		}
		applied := metric(t, reg1, "withdraw_poll_status_changes_total") + metric(t, reg2, "withdraw_poll_status_changes_total")
		if int(applied) != statusEvents {
			t.Errorf("pollers applied %v changes, the outbox holds %d status events", applied, statusEvents)
		}
		both := metric(t, reg1, "withdraw_poll_status_changes_total") > 0 && metric(t, reg2, "withdraw_poll_status_changes_total") > 0
		if !both {
			t.Log("only one poller applied changes (timing); the version checks above still hold")
		}
		t.Logf("status events %d, dropped results p1=%v p2=%v", statusEvents,
			metric(t, reg1, "withdraw_poll_results_dropped_total"), metric(t, reg2, "withdraw_poll_results_dropped_total"))
		r.env.AssertPaidAtMostOnce()
	})
}

// TestPollerJobs: Run's cron jobs, the sweep and the daily job.
func TestPollerJobs(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and sandbox, started with opts.
	setup := func(t *testing.T, opts sandbox.Options) *rig {
		t.Helper()
		return newRig(t, opts)
	}

	// Run drives the sweep from its cron schedule and stops on
	// cancellation.
	t.Run("RunOnCron", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: 200 * time.Millisecond}})
		ids := r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "C1", 100))
		r.runDispatcher("d1", testRules())
		p, _ := r.poller("p1", poll.Options{SweepSpec: "@every 1s"})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		r.waitState(15*time.Second, map[string]withdrawal.State{ids["C1"]: withdrawal.StateSucceeded})
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancellation")
		}
		if _, err := poll.New(r.db, r.env.Registry(), poll.Options{DailySpec: "every day"}); err == nil {
			t.Error("an invalid cron spec was accepted")
		}
	})

	// The daily job counts and logs what is stuck beyond its limits, and
	// nothing else, and calls the retention hook.
	t.Run("DailyStuckReport", func(t *testing.T) {
		// Serial: the daily job's lock is a MariaDB named lock, global to the shared server.
		r := setup(t, sandbox.Options{})
		var cmds []*withdrawal.Command
		for i := range 9 {
			cmds = append(cmds, providertest.Command(withdrawal.ChannelWeChatPlatform, fmt.Sprintf("K%d", i), 100))
		}
		ids := r.seed(cmds...)
		now := time.Now().UTC()
		rules := testRules() // InitAlertAfter 1m, QueryWindow 24h
		set := func(no string, v map[string]any) {
			if err := r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", ids[no]).Updates(v).Error; err != nil {
				t.Fatal(err)
			}
		}
		hours := func(h float64) time.Time { return now.Add(-time.Duration(h * float64(time.Hour))) }
		set("K0", map[string]any{"state": "UNKNOWN", "first_sent_at": hours(30)})                                        // stuck
		set("K1", map[string]any{"state": "UNKNOWN", "first_sent_at": hours(1)})                                         // fresh
		set("K2", map[string]any{"state": "SUBMITTED", "provider_status": "INIT", "first_sent_at": hours(2)})            // stuck INIT
		set("K3", map[string]any{"state": "SUBMITTED", "provider_status": "INIT", "first_sent_at": now})                 // fresh INIT
		set("K4", map[string]any{"state": "SUBMITTED", "provider_status": "CREATE_SUCCESS", "first_sent_at": hours(25)}) // past window
		set("K5", map[string]any{"state": "SUBMITTED", "provider_status": "CREATE_SUCCESS", "first_sent_at": hours(2)})  // fine
		set("K6", map[string]any{"created_at": hours(3)})                                                                // ACCEPTED, stuck
		// K7: ACCEPTED just now: fine. K8: succeeded long ago: fine.
		set("K8", map[string]any{"state": "SUCCEEDED", "first_sent_at": hours(50), "created_at": hours(50)})

		var logs logBuffer
		retained := 0
		p, reg := r.poller("p1", poll.Options{Rules: rules, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			Retention: func(context.Context) (int64, error) { retained++; return 42, nil }})
		if err := p.Daily(ctx); err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{
			"UNKNOWN/" + poll.StuckUnknown:        1,
			"SUBMITTED/" + poll.StuckInit:         1,
			"SUBMITTED/" + poll.StuckQueryWindow:  1,
			"ACCEPTED/" + poll.StuckNotDispatched: 1,
		}
		for k, v := range want {
			state, reason, _ := strings.Cut(k, "/")
			if got := metric(t, reg, "withdraw_stuck_withdrawals", "state="+state, "reason="+reason); got != v {
				t.Errorf("gauge %s = %v, want %v", k, got, v)
			}
		}
		if got := metric(t, reg, "withdraw_stuck_withdrawals"); got != 4 {
			t.Errorf("stuck total %v, want 4", got)
		}
		out := logs.String()
		for _, no := range []string{"K0", "K2", "K4", "K6"} {
			if !strings.Contains(out, ids[no]) || !strings.Contains(out, `"out_request_no":"`+no+`"`) {
				t.Errorf("no log line for stuck %s", no)
			}
		}
		for _, no := range []string{"K1", "K3", "K5", "K7", "K8"} {
			if strings.Contains(out, ids[no]) {
				t.Errorf("%s is not stuck but was logged", no)
			}
		}
		if retained != 1 || metric(t, reg, "withdraw_poll_retention_deleted_total") != 42 {
			t.Errorf("retention called %d times", retained)
		}

		// A second instance running the job at the same time refreshes its
		// gauge but leaves logging and retention to the lock holder.
		release := r.holdDailyLock()
		var logs2 logBuffer
		p2, reg2 := r.poller("p2", poll.Options{Rules: rules, Logger: slog.New(slog.NewJSONHandler(&logs2, nil)),
			Retention: func(context.Context) (int64, error) { retained++; return 0, nil }})
		if err := p2.Daily(ctx); err != nil {
			t.Fatal(err)
		}
		release()
		if metric(t, reg2, "withdraw_stuck_withdrawals") != 4 || retained != 1 || strings.Contains(logs2.String(), "stuck withdrawal") {
			t.Errorf("non-leader: gauge %v, retention calls %d, logs %q", metric(t, reg2, "withdraw_stuck_withdrawals"), retained, logs2.String())
		}
	})

	// The daily job deletes audit rows older than the retention, in
	// batches, and keeps the recent ones.
	t.Run("DailyJobPurgesOldAudit", func(t *testing.T) {
		// Serial: the daily job's lock is a MariaDB named lock, global to the shared server.
		r := setup(t, sandbox.Options{})
		id := r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "AU1", 100))["AU1"]
		now := time.Now().UTC()
		var rows []store.Attempt
		for i := range 2500 {
			at := now.Add(-200 * 24 * time.Hour).Add(time.Duration(i) * time.Second)
			if i >= 2400 {
				at = now.Add(-time.Hour)
			}
			rows = append(rows, store.Attempt{WithdrawalID: id, Operation: "query", StartedAt: at, Outcome: "ACCEPTED", Instance: "p"})
		}
		if err := store.InsertAttempts(context.Background(), r.db, rows); err != nil {
			t.Fatal(err)
		}
		p, _ := r.poller("p1", poll.Options{AttemptsRetention: 180 * 24 * time.Hour})
		if err := p.Daily(context.Background()); err != nil {
			t.Fatal(err)
		}
		left, err := store.AttemptsOf(context.Background(), r.db, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 100 {
			t.Errorf("%d audit rows left, want the 100 recent ones", len(left))
		}
		for _, a := range left {
			if a.StartedAt.Before(now.Add(-2 * time.Hour)) {
				t.Errorf("an old audit row survived: %v", a.StartedAt)
			}
		}
	})
}
