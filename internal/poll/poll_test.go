package poll_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// mapCase is one provider status path of one channel.
type mapCase struct {
	ch         withdrawal.Channel
	plan       string
	state      withdrawal.State
	status     string // final provider status
	reasonCode string
	events     []string
}

func mappingCases() []mapCase {
	var cs []mapCase
	for _, ch := range []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform} {
		cs = append(cs,
			mapCase{ch, sandbox.PlanSuccess, withdrawal.StateSucceeded, "SUCCESS", "", []string{evAccepted, evSubmitted, evSucceeded}},
			mapCase{ch, sandbox.PlanFail, withdrawal.StateFailed, "FAIL", "FAIL", []string{evAccepted, evSubmitted, evFailed}},
			mapCase{ch, sandbox.PlanClose, withdrawal.StateFailed, "CLOSE", "CLOSE", []string{evAccepted, evSubmitted, evFailed}},
			mapCase{ch, sandbox.PlanRefund, withdrawal.StateReversed, "REFUND", "REFUND", []string{evAccepted, evSubmitted, evSucceeded, evReversed}},
			// INIT: the poller asks for the identical request, the
			// dispatcher re-sends it, the order proceeds.
			mapCase{ch, sandbox.PlanInit, withdrawal.StateSucceeded, "SUCCESS", "", []string{evAccepted, evSubmitted, evSucceeded}},
		)
	}
	c := withdrawal.ChannelWeChatCancel
	cs = append(cs,
		mapCase{c, sandbox.PlanSuccess, withdrawal.StateSucceeded, "PAY_SUCCEED", "", []string{evAccepted, evSubmitted, evSucceeded}},
		mapCase{c, sandbox.PlanFail, withdrawal.StateFailed, "PAY_FAIL", "PAY_FAIL", []string{evAccepted, evSubmitted, evFailed}},
		mapCase{c, sandbox.PlanClose, withdrawal.StateFailed, "REJECTED", "REJECTED", []string{evAccepted, evSubmitted, evFailed}},
		mapCase{c, sandbox.PlanRefund, withdrawal.StateReversed, "BANK_REFUNDED", "BANK_REFUNDED", []string{evAccepted, evSubmitted, evSucceeded, evReversed}},
	)
	a := withdrawal.ChannelAllinpayShopoint
	cs = append(cs,
		mapCase{a, sandbox.PlanSuccess, withdrawal.StateSucceeded, "2", "", []string{evAccepted, evSubmitted, evSucceeded}},
		mapCase{a, sandbox.PlanFail, withdrawal.StateFailed, "3", "3", []string{evAccepted, evSubmitted, evFailed}},
	)
	return cs
}

// TestPollerStatuses: what an answer of the provider does to a withdrawal
// — which state and events each status makes, what an unchanged status or
// a "not found" writes, when a row leaves the sweep, how an answer's code
// is recorded.
func TestPollerStatuses(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and sandbox, started with opts.
	setup := func(t *testing.T, opts sandbox.Options) *rig {
		t.Helper()
		return newRig(t, opts)
	}

	// Every provider status of every channel, found by the poller's
	// queries, ends in the right state with the right events, versions 1..n
	// without gaps.
	t.Run("EveryStatusMapsToStateAndEvent", func(t *testing.T) {
		t.Parallel()
		cases := mappingCases()
		plans := map[string]string{}
		var cmds []*withdrawal.Command
		for i, c := range cases {
			no := fmt.Sprintf("M%02d%s", i, c.plan)
			plans[no] = c.plan
			cmds = append(cmds, providertest.Command(c.ch, no, int64(100+i)))
		}
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: 500 * time.Millisecond, RefundDelay: 2 * time.Second,
			Plan: func(o sandbox.OrderInfo) string { return plans[o.OutRequestNo] }}})
		ids := r.seed(cmds...)
		r.runDispatcher("d1", testRules())
		p, reg := r.poller("p1", poll.Options{})
		r.sweepLoop(p, 50*time.Millisecond)

		want := map[string]withdrawal.State{}
		for i, c := range cases {
			want[ids[cmds[i].OutRequestNo]] = c.state
		}
		r.waitState(30*time.Second, want)

		for i, c := range cases {
			t.Run(fmt.Sprintf("%s/%s", c.ch, c.plan), func(t *testing.T) {
				id := ids[cmds[i].OutRequestNo]
				w := r.row(id)
				if w.ProviderStatus != c.status || w.ReasonCode != c.reasonCode {
					t.Errorf("provider_status %q reason_code %q, want %q %q", w.ProviderStatus, w.ReasonCode, c.status, c.reasonCode)
				}
				if got := types(r.events(id)); !slices.Equal(got, c.events) {
					t.Errorf("events %v, want %v", got, c.events)
				}
				if w.ResubmitRequested {
					t.Error("resubmit_requested left set")
				}
				if c.plan == sandbox.PlanInit {
					atts, _ := store.AttemptsOf(ctx, r.db, id)
					var ops []string
					for _, a := range atts {
						ops = append(ops, a.Operation)
					}
					if !slices.Contains(ops, "resubmit") {
						t.Errorf("INIT withdrawal was not re-sent: %v", ops)
					}
				}
				switch {
				case c.state == withdrawal.StateSucceeded && c.ch.IsWeChat():
					if !w.NextAttemptAt.Before(decide.FarFuture) {
						t.Error("succeeded WeChat withdrawal no longer followed for refunds")
					}
				case c.state != withdrawal.StateSubmitted && !c.ch.IsWeChat() || c.state.Final():
					if w.NextAttemptAt.Before(decide.FarFuture) {
						t.Errorf("finished withdrawal still due at %v", w.NextAttemptAt)
					}
				}
			})
		}
		storetest.AssertVersionsGapFree(t, r.db)
		r.env.AssertPaidAtMostOnce()
		if n := metric(t, reg, "withdraw_poll_resubmits_requested_total"); n < 2 {
			t.Errorf("resubmits requested %v, want ≥ 2", n)
		}
	})

	// CREATE_SUCCESS for a SUBMITTED withdrawal writes no event; it records
	// the provider status, an audit row, and the next query time.
	t.Run("UnchangedStatusOnlyMovesNextAttempt", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
		ids := r.submitAll(providertest.Command(withdrawal.ChannelWeChatPlatform, "U1", 100))
		id := ids["U1"]
		// Make it due now.
		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", id).Update("next_attempt_at", time.Now().UTC())
		before := r.row(id)
		p, _ := r.poller("p1", poll.Options{})
		st, err := p.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Claimed != 1 || st.Queried != 1 || st.Changed != 0 {
			t.Fatalf("sweep %+v", st)
		}
		w := r.row(id)
		if w.State != "SUBMITTED" || w.Version != before.Version || w.ProviderStatus != "CREATE_SUCCESS" {
			t.Errorf("row %s v%d %q", w.State, w.Version, w.ProviderStatus)
		}
		if !w.NextAttemptAt.After(time.Now().UTC()) || !w.NextAttemptAt.Before(time.Now().Add(time.Minute)) {
			t.Errorf("next_attempt_at %v not moved by the backoff", w.NextAttemptAt)
		}
		if evs := r.events(id); len(evs) != 2 {
			t.Errorf("%d events, want 2", len(evs))
		}
		atts, _ := store.AttemptsOf(ctx, r.db, id)
		last := atts[len(atts)-1]
		if last.Operation != poll.OpQuery || last.Outcome != "ACCEPTED" || last.Instance != "p1" {
			t.Errorf("audit %+v", last)
		}
		// Not due again yet: a second sweep claims nothing.
		if st, _ := p.Sweep(ctx); st.Claimed != 0 {
			t.Errorf("second sweep claimed %d", st.Claimed)
		}
	})

	// ORDER_NOT_EXISTS for an acknowledged withdrawal keeps it SUBMITTED
	// until the provider's query time; after it, the withdrawal becomes
	// UNKNOWN for the dispatcher to settle (never FAILED).
	t.Run("NotFoundBeforeQueryableAtProvesNothing", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour, VisibleAfter: time.Hour}})
		ids := r.submitAll(providertest.Command(withdrawal.ChannelWeChatEcommerce, "NF1", 100))
		id := ids["NF1"]
		rules := testRules()
		rules.Fixed = 3 * time.Second
		p, _ := r.poller("p1", poll.Options{Rules: rules})

		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", id).Update("next_attempt_at", time.Now().UTC())
		if st, _ := p.Sweep(ctx); st.Queried != 2 { // by withdraw_id, then by out_request_no
			t.Fatalf("sweep %+v", st)
		}
		w := r.row(id)
		if w.State != "SUBMITTED" || w.Version != 2 {
			t.Fatalf("before QueryableAt: %s v%d", w.State, w.Version)
		}
		qa := rules.QueryableAt(withdrawal.ChannelWeChatEcommerce, *w.FirstSentAt)
		if w.NextAttemptAt.After(qa) {
			t.Errorf("next query %v after the query time %v", w.NextAttemptAt, qa)
		}

		time.Sleep(time.Until(qa) + 50*time.Millisecond)
		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", id).Update("next_attempt_at", time.Now().UTC())
		if _, err := p.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		w = r.row(id)
		if w.State != "UNKNOWN" || w.ReasonCode != "ORDER_NOT_EXISTS" {
			t.Fatalf("after QueryableAt: %s %s", w.State, w.ReasonCode)
		}
		if got := types(r.events(id)); len(got) != 3 || got[2] != evUnknown {
			t.Errorf("events %v", got)
		}
		// UNKNOWN is the dispatcher's: the poller does not claim it.
		if st, _ := p.Sweep(ctx); st.Claimed != 0 {
			t.Errorf("poller claimed an UNKNOWN row")
		}
	})

	// Succeeded withdrawals of channels without refunds and submitted ones
	// past the query window are pushed out of the sweep without a query; a
	// succeeded WeChat withdrawal past its follow-up is queried a last time
	// (a refund may have come) and then leaves.
	t.Run("RowsLeaveTheSweep", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
		ids := r.submitAll(
			providertest.Command(withdrawal.ChannelWeChatPlatform, "L1", 100),
			providertest.Command(withdrawal.ChannelAllinpayShopoint, "L2", 100),
			providertest.Command(withdrawal.ChannelWeChatPlatform, "L3", 100),
			providertest.Command(withdrawal.ChannelWeChatPlatform, "L4", 100),
		)
		now := time.Now().UTC()
		old := now.Add(-48 * time.Hour)
		// L1: succeeded two days ago (follow-up 10s): one last query, then done.
		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", ids["L1"]).Updates(map[string]any{"state": "SUCCEEDED", "final_at": old, "next_attempt_at": now})
		// L2: Allinpay succeeded just now: no refunds to follow.
		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", ids["L2"]).Updates(map[string]any{"state": "SUCCEEDED", "final_at": now, "next_attempt_at": now})
		// L3: sent two days ago, window 24h: past it.
		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", ids["L3"]).Updates(map[string]any{"first_sent_at": old, "next_attempt_at": now})
		// L4: succeeded just now: followed (queried).
		r.db.Gorm().Model(&store.Withdrawal{}).Where("id = ?", ids["L4"]).Updates(map[string]any{"state": "SUCCEEDED", "final_at": now, "next_attempt_at": now})

		p, _ := r.poller("p1", poll.Options{})
		st, err := p.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Claimed != 4 || st.Queried != 2 || st.Changed != 0 {
			t.Errorf("sweep %+v, want 4 claimed, 2 queried (L1's last query, L4)", st)
		}
		for _, no := range []string{"L1", "L2", "L3"} {
			if w := r.row(ids[no]); !w.NextAttemptAt.Equal(decide.FarFuture) {
				t.Errorf("%s: next_attempt_at %v, want far future", no, w.NextAttemptAt)
			}
		}
		if w := r.row(ids["L4"]); !w.NextAttemptAt.Before(decide.FarFuture) || w.State != "SUCCEEDED" {
			t.Errorf("L4: %s next %v", w.State, w.NextAttemptAt)
		}
	})

	// An answer with a code longer than the column is recorded (cut to
	// fit), with its audit row, and the metric label is "other" instead of
	// the code's bytes.
	t.Run("LongProviderCodeIsRecorded", func(t *testing.T) {
		t.Parallel()
		long := "X_" + strings.Repeat("VERY_LONG_CODE_", 10)
		r := setup(t, sandbox.Options{Faults: map[string]sandbox.Fault{
			sandbox.EndpointPlatformSubmit: {Errors: map[string]float64{long: 1}}}})
		id := r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "LC1", 100))["LC1"]
		reg := prometheus.NewRegistry()
		d, err := dispatch.New(r.db, r.env.Registry(), r.keys, dispatch.Options{Instance: "d1", Rules: testRules(),
			PollInterval: 20 * time.Millisecond, Logger: quiet(), Metrics: dispatch.NewMetrics(reg)})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = d.Run(runCtx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		r.waitState(30*time.Second, map[string]withdrawal.State{id: withdrawal.StateUnknown})

		w := r.row(id)
		if w.ReasonCode != long[:store.WidthReasonCode] {
			t.Errorf("reason code %q, want the code cut to %d", w.ReasonCode, store.WidthReasonCode)
		}
		if trail := r.trail(id); len(trail) == 0 || trail[0] != "submit:"+long[:store.WidthProviderCode] {
			t.Errorf("audit %v", trail)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		other := 0.0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if strings.Contains(l.GetValue(), "VERY_LONG") {
						t.Errorf("%s carries the answer's code as a label", mf.GetName())
					}
					if mf.GetName() == "withdraw_provider_requests_total" && l.GetName() == "code" && l.GetValue() == provider.CodeOther {
						other += m.GetCounter().GetValue()
					}
				}
			}
		}
		if other < 1 {
			t.Errorf("the unknown code was not counted under code=%q", provider.CodeOther)
		}
	})
}
