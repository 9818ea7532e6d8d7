package poll_test

import (
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestPollerMoneySafety: the money-safety system tests, the dispatcher and
// the poller against the sandbox over HTTP, with real signatures and
// MariaDB. An answer that proves nothing never ends a withdrawal and never
// sends it twice: each subtest shows the audit trail (withdrawal_attempts)
// and the sandbox's ledger (created ≤ 1).
func TestPollerMoneySafety(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and sandbox, started with
	// opts, and the withdrawals of cmds, seeded as the intake would.
	setup := func(t *testing.T, opts sandbox.Options, cmds ...*withdrawal.Command) (*rig, map[string]string) {
		t.Helper()
		r := newRig(t, opts)
		return r, r.seed(cmds...)
	}

	// The cancelled-merchant withdraw's document says that on any error the
	// number is kept and the status query decides. NO_AUTH, PARAM_ERROR and
	// NOTENOUGH end the withdrawal only after a conclusive query found no
	// application.
	t.Run("CancelSubmitErrorIsQueriedBeforeFailing", func(t *testing.T) {
		t.Parallel()
		for _, code := range []string{"NO_AUTH", "PARAM_ERROR", "NOTENOUGH"} {
			t.Run(code, func(t *testing.T) {
				t.Parallel()
				r, ids := setup(t, sandbox.Options{Faults: map[string]sandbox.Fault{
					sandbox.EndpointCancelSubmit: {Errors: map[string]float64{code: 1}}}},
					providertest.Command(withdrawal.ChannelWeChatCancel, "CQ"+code[:2], 100))
				id := ids["CQ"+code[:2]]
				r.startDispatcher("d1")
				r.waitState(30*time.Second, map[string]withdrawal.State{id: withdrawal.StateFailed})

				trail := r.trail(id)
				if len(trail) < 2 || trail[0] != "submit:"+code || trail[len(trail)-1] != "query:NOT_FOUND" {
					t.Errorf("audit %v: want submit:%s, then queries, the last one NOT_FOUND", trail, code)
				}
				if w := r.row(id); w.ReasonCode != code {
					t.Errorf("reason %q, want %s", w.ReasonCode, code)
				}
				if got := strings.Join(types(r.events(id)), ","); got != "withdrawal.accepted,withdrawal.unknown,withdrawal.failed" {
					t.Errorf("events %s", got)
				}
				if n := r.created(withdrawal.ChannelWeChatCancel, "CQ"+code[:2]); n != 0 {
					t.Errorf("created %d", n)
				}
			})
		}
	})

	// A platform withdrawal whose first send failed ambiguously is re-sent
	// after a conclusive "not found"; the re-send is refused (NOT_ENOUGH),
	// which proves nothing for a request that may have arrived before: a
	// query decides, and only then FAILED.
	t.Run("ResendRefusalIsQueriedBeforeFailing", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, sandbox.Options{Balances: map[string]int64{providertest.MchID: 1},
			Faults: map[string]sandbox.Fault{sandbox.EndpointPlatformSubmit: {Errors: map[string]float64{"SYSTEM_ERROR": 1}}}},
			providertest.Command(withdrawal.ChannelWeChatPlatform, "RS1", 100))
		id := ids["RS1"]
		r.startDispatcher("d1")
		r.waitAttempt(id)
		r.env.ClearFaults()
		r.waitState(30*time.Second, map[string]withdrawal.State{id: withdrawal.StateFailed})

		trail := strings.Join(r.trail(id), " ")
		if !strings.HasPrefix(trail, "submit:SYSTEM_ERROR query:ORDER_NOT_EXISTS") ||
			!strings.HasSuffix(trail, "resubmit:NOT_ENOUGH query:ORDER_NOT_EXISTS") {
			t.Errorf("audit %s: want the refused re-send followed by a query before FAILED", trail)
		}
		if w := r.row(id); w.ReasonCode != "NOT_ENOUGH" {
			t.Errorf("reason %q", w.ReasonCode)
		}
		if n := r.created(withdrawal.ChannelWeChatPlatform, "RS1"); n != 0 {
			t.Errorf("created %d", n)
		}
		r.events(id)
	})

	// A cancel application whose submission got no answer is queried;
	// WeChat's 404 NOT_FOUND is a conclusive "no application", so the
	// identical request goes again and the withdrawal is submitted once.
	t.Run("CancelUnknownIsResolvedByNotFound", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour},
			Faults: map[string]sandbox.Fault{sandbox.EndpointCancelSubmit: {Rate5xx: 1}}},
			providertest.Command(withdrawal.ChannelWeChatCancel, "CU1", 100))
		id := ids["CU1"]
		r.startDispatcher("d1")
		r.waitAttempt(id)
		r.env.ClearFaults()
		r.waitState(30*time.Second, map[string]withdrawal.State{id: withdrawal.StateSubmitted})
		trail := strings.Join(r.trail(id), " ")
		if !strings.Contains(trail, "query:NOT_FOUND resubmit:") {
			t.Errorf("audit %s: want NOT_FOUND, then the identical request", trail)
		}
		if n := r.created(withdrawal.ChannelWeChatCancel, "CU1"); n != 1 {
			t.Errorf("created %d", n)
		}
		r.env.AssertPaidAtMostOnce()
	})

	// The provider answers every query with a correctly signed body about
	// another order (no out_request_no, another amount and id); the poller
	// keeps the state and alerts, and applies the genuine answer once it
	// comes.
	t.Run("ForgedQueryAnswerNeverMovesAState", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: 100 * time.Millisecond,
			Plan: func(sandbox.OrderInfo) string { return sandbox.PlanFail }}},
			providertest.Command(withdrawal.ChannelWeChatPlatform, "FQ1", 100),
			providertest.Command(withdrawal.ChannelWeChatCancel, "FQ2", 100))
		r.runDispatcher("d1", testRules())
		r.waitState(30*time.Second, map[string]withdrawal.State{ids["FQ1"]: withdrawal.StateSubmitted, ids["FQ2"]: withdrawal.StateSubmitted})
		forged := sandbox.Fault{ForgedAnswer: 1}
		r.env.SetFaults(sandbox.EndpointPlatformQuery, forged)
		r.env.SetFaults(sandbox.EndpointCancelQuery, forged)
		logs := &logBuffer{}
		p, _ := r.poller("p1", poll.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		time.Sleep(400 * time.Millisecond) // past the first query time and the order's FAIL
		for range 3 {
			if _, err := p.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(350 * time.Millisecond)
		}
		for no, id := range ids {
			if w := r.row(id); w.State != string(withdrawal.StateSubmitted) {
				t.Errorf("%s: a forged answer moved it to %s", no, w.State)
			}
		}
		if !strings.Contains(logs.String(), "does not match the stored withdrawal") {
			t.Error("forged answers were not reported")
		}
		r.env.ClearFaults()
		stop := r.sweepLoop(p, 100*time.Millisecond)
		r.waitState(30*time.Second, map[string]withdrawal.State{ids["FQ1"]: withdrawal.StateFailed, ids["FQ2"]: withdrawal.StateFailed})
		stop()
		r.env.AssertPaidAtMostOnce()
	})
}

// TestPollerFollowUps: succeeded withdrawals stay followed for refunds,
// which on the cancel channel only queries see.
func TestPollerFollowUps(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and a sandbox whose orders
	// behave as lc says.
	setup := func(t *testing.T, lc sandbox.Lifecycle) *rig {
		t.Helper()
		return newRig(t, sandbox.Options{Lifecycle: lc})
	}

	// The cancel channel sends no callbacks, so a refund (退票) is seen by
	// queries only. A succeeded withdrawal whose follow-up ended while no
	// sweep ran is queried a last time before it leaves the sweep, and the
	// refund is found.
	t.Run("RefundAfterTheFollowUpIsSeen", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Lifecycle{FinalDelay: 100 * time.Millisecond, RefundDelay: time.Second,
			Plan: func(sandbox.OrderInfo) string { return sandbox.PlanRefund }})
		id := r.seed(providertest.Command(withdrawal.ChannelWeChatCancel, "RF1", 100))["RF1"]
		rules := testRules()
		rules.FollowSucceeded = 1500 * time.Millisecond
		r.runDispatcher("d1", rules)
		p, _ := r.poller("p1", poll.Options{Rules: rules})
		stop := r.sweepLoop(p, 50*time.Millisecond)
		r.waitState(30*time.Second, map[string]withdrawal.State{id: withdrawal.StateSucceeded})
		stop()
		time.Sleep(rules.FollowSucceeded + 200*time.Millisecond) // refunded at the provider, follow-up over, no sweep
		if _, err := p.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if w := r.row(id); w.State != string(withdrawal.StateReversed) {
			t.Fatalf("state %s: the refund was missed", w.State)
		}
		trail := r.trail(id)
		if trail[len(trail)-1] != "query:" {
			t.Errorf("audit %v: the last step is the query that found the refund", trail)
		}
	})

	// With more first queries due than a sweep takes, the succeeded
	// withdrawals still get their share.
	t.Run("FollowUpsKeepTheirShareOfTheSweep", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Lifecycle{FinalDelay: time.Hour})
		var cmds []*withdrawal.Command
		for i := range 12 {
			cmds = append(cmds, providertest.Command(withdrawal.ChannelWeChatPlatform, "FS"+string(rune('A'+i)), 100))
		}
		ids := r.seed(cmds...)
		r.runDispatcher("d1", testRules())
		want := map[string]withdrawal.State{}
		for _, id := range ids {
			want[id] = withdrawal.StateSubmitted
		}
		r.waitState(30*time.Second, want)
		now := time.Now().UTC()
		// Four succeeded rows due for a follow-up, eight submitted ones due.
		var succeeded []string
		for i, no := range []string{"FSA", "FSB", "FSC", "FSD"} {
			succeeded = append(succeeded, ids[no])
			r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", ids[no]).Updates(map[string]any{"state": "SUCCEEDED", "final_at": now,
				"next_attempt_at": now.Add(time.Duration(i) * time.Millisecond)})
		}
		r.db.Gorm().Model(&store.Withdrawal{}).Where("state = ?", "SUBMITTED").Update("next_attempt_at", now.Add(-time.Hour))
		// One query at a time, so that the first claim's four rows are
		// queried before the next claim's: the sweep goes on claiming while
		// its claims come back full.
		p, _ := r.poller("p1", poll.Options{BatchSize: 4, FollowUpShare: 0.5, Concurrency: 1})
		st, err := p.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The test rules bring rows back within milliseconds, so the sweep
		// may take some twice; it must at least have taken all twelve.
		if st.Claimed < 12 {
			t.Fatalf("claimed %d of the 12 due rows", st.Claimed)
		}
		isFollowUp := map[string]bool{}
		for _, id := range succeeded {
			isFollowUp[id] = true
		}
		var queries []store.Attempt
		for _, id := range ids {
			as, err := store.AttemptsOf(ctx, r.db, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range as {
				if a.Operation == poll.OpQuery {
					queries = append(queries, a)
				}
			}
		}
		sort.Slice(queries, func(i, j int) bool { return queries[i].StartedAt.Before(queries[j].StartedAt) })
		queried := map[string]bool{}
		for _, a := range queries {
			queried[a.WithdrawalID] = true
		}
		if len(queried) != 12 {
			t.Fatalf("%d of the 12 due rows queried by one sweep", len(queried))
		}
		followed := 0
		for _, a := range queries[:4] {
			if isFollowUp[a.WithdrawalID] {
				followed++
			}
		}
		if followed != 2 {
			t.Errorf("%d follow-ups in the first claim of 4 with share 0.5, want 2", followed)
		}
	})
}
