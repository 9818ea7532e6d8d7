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
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var ctx = context.Background()

const (
	evAccepted  = "withdrawal.accepted"
	evSubmitted = "withdrawal.submitted"
	evSucceeded = "withdrawal.succeeded"
	evFailed    = "withdrawal.failed"
	evReversed  = "withdrawal.reversed"
	evUnknown   = "withdrawal.unknown"
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

// TestEveryStatusMapsToStateAndEvent: every provider status of every
// channel, found by the poller's queries, ends in the right state with the
// right events, versions 1..n without gaps.
func TestEveryStatusMapsToStateAndEvent(t *testing.T) {
	cases := mappingCases()
	plans := map[string]string{}
	var cmds []*withdrawal.Command
	for i, c := range cases {
		no := fmt.Sprintf("M%02d%s", i, c.plan)
		plans[no] = c.plan
		cmds = append(cmds, providertest.Command(c.ch, no, int64(100+i)))
	}
	r := newRig(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: 500 * time.Millisecond, RefundDelay: 2 * time.Second,
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
	r.env.AssertPaidAtMostOnce()
	if n := metric(t, reg, "withdraw_poll_resubmits_requested_total"); n < 2 {
		t.Errorf("resubmits requested %v, want ≥ 2", n)
	}
}

// metric sums the samples of a metric family, optionally only those whose
// labels include every name=value of match.
func metric(t *testing.T, reg *prometheus.Registry, name string, match ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for _, kv := range match {
				k, v, _ := strings.Cut(kv, "=")
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
