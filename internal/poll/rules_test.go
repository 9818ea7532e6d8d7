package poll_test

import (
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// submitAll seeds the commands and runs a dispatcher until every one is
// SUBMITTED; the dispatcher is stopped afterwards.
func (r *rig) submitAll(cmds ...*withdrawal.Command) map[string]string {
	r.t.Helper()
	ids := r.seed(cmds...)
	want := map[string]withdrawal.State{}
	for _, id := range ids {
		want[id] = withdrawal.StateSubmitted
	}
	stop := r.startDispatcher("d-submit")
	r.waitState(20*time.Second, want)
	stop()
	return ids
}

// TestUnchangedStatusOnlyMovesNextAttempt: CREATE_SUCCESS for a SUBMITTED
// withdrawal writes no event; it records the provider status, an audit
// row, and the next query time.
func TestUnchangedStatusOnlyMovesNextAttempt(t *testing.T) {
	r := newRig(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
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
}

// TestNotFoundBeforeQueryableAtProvesNothing: ORDER_NOT_EXISTS for an
// acknowledged withdrawal keeps it SUBMITTED until the provider's query
// time; after it, the withdrawal becomes UNKNOWN for the dispatcher to
// settle (never FAILED).
func TestNotFoundBeforeQueryableAtProvesNothing(t *testing.T) {
	r := newRig(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour, VisibleAfter: time.Hour}})
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
}

// TestRowsLeaveTheSweep: succeeded withdrawals of channels without refunds
// and submitted ones past the query window are pushed out of the sweep
// without a query; a succeeded WeChat withdrawal past its follow-up is
// queried a last time (a refund may have come) and then leaves.
func TestRowsLeaveTheSweep(t *testing.T) {
	r := newRig(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
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
}
