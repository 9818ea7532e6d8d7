package decide

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var (
	t0  = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	dec = Decider{Rules: schedule.Production()}
)

// claimedRow is a withdrawal claimed by the dispatcher from `from`.
func claimedRow(ch withdrawal.Channel, from withdrawal.State) *store.Withdrawal {
	sent := t0.Add(-time.Minute)
	params, _ := json.Marshal(map[string]any{"sub_mchid": "1900000109"})
	return &store.Withdrawal{ID: "w1", Channel: string(ch), Account: "default", OutRequestNo: "N1", Amount: 100,
		Params: params, State: string(withdrawal.StateSubmitting), ClaimedFrom: string(from), Version: 2,
		FirstSentAt: &sent, CreatedAt: sent}
}

// row is a withdrawal at rest in state.
func row(ch withdrawal.Channel, state withdrawal.State, firstSent time.Time) *store.Withdrawal {
	w := claimedRow(ch, "")
	w.State, w.ClaimedFrom, w.FirstSentAt, w.CreatedAt = string(state), "", &firstSent, firstSent
	return w
}

// TestSentForEveryCode runs every error row of the table, for every channel
// it names, as a first send and as a re-send through Sent: FAILED only from
// a Rejected first send, never on the cancel channel, never from a re-send;
// "not processed" goes back where it was; everything else is UNKNOWN with
// the code kept for the query's conclusion.
func TestSentForEveryCode(t *testing.T) {
	codes := append([]provider.Row(nil), provider.Table...)
	codes = append(codes, provider.Row{Code: "SOMETHING_NEW", HTTPStatus: 403}, provider.Row{Code: "SOMETHING_NEW", HTTPStatus: 500})
	for _, ch := range withdrawal.Channels {
		for _, r := range codes {
			if r.Status {
				continue
			}
			for _, op := range []provider.Op{provider.OpSubmit, provider.OpResend} {
				from := withdrawal.StateAccepted
				if op == provider.OpResend {
					from = withdrawal.StateUnknown
				}
				out := provider.ClassifyError(ch, op, r.HTTPStatus, r.Code, "msg")
				got := dec.Sent(claimedRow(ch, from), op, out, t0).Change
				row, documented := provider.Lookup(ch, op, r.Code)
				switch {
				case out.Kind == provider.KindRejected:
					if op != provider.OpSubmit || ch == withdrawal.ChannelWeChatCancel || !documented || !row.Refusal {
						t.Errorf("%s %s %s: rejected", ch, op, r.Code)
					}
					if got.To != withdrawal.StateFailed || got.ReasonCode != r.Code {
						t.Errorf("%s %s %s: %s (%s), want FAILED with the code", ch, op, r.Code, got.To, got.ReasonCode)
					}
				case out.Kind == provider.KindRetryLater:
					if got.To != from {
						t.Errorf("%s %s %s: %s, want back to %s", ch, op, r.Code, got.To, from)
					}
				default:
					if got.To != withdrawal.StateUnknown || got.ReasonCode != r.Code {
						t.Errorf("%s %s %s: %s (%s), want UNKNOWN keeping the code", ch, op, r.Code, got.To, got.ReasonCode)
					}
					if out.QueryNow && !got.NextAttemptAt.Equal(t0) {
						t.Errorf("%s %s %s: must be queried now", ch, op, r.Code)
					}
				}
			}
		}
	}
}

// TestResendAnswerWithFinalStatusIsQueried: Allinpay answers a withdraw
// with per-line statuses; "3 提现失败" ends a first send, but for a re-send
// only a query may conclude.
func TestResendAnswerWithFinalStatusIsQueried(t *testing.T) {
	out := provider.Outcome{Kind: provider.KindAccepted, State: withdrawal.StateFailed, ProviderStatus: "3", ProviderRef: "77"}
	ch := withdrawal.ChannelAllinpayShopoint
	if got := dec.Sent(claimedRow(ch, withdrawal.StateAccepted), provider.OpSubmit, out, t0).Change; got.To != withdrawal.StateFailed || got.ReasonCode != "3" {
		t.Errorf("first send: %+v", got)
	}
	got := dec.Sent(claimedRow(ch, withdrawal.StateUnknown), provider.OpResend, out, t0).Change
	if got.To != withdrawal.StateUnknown || got.ReasonCode != CodeResendFinal || !got.NextAttemptAt.Equal(t0) {
		t.Errorf("re-send: %+v, want UNKNOWN and a query now", got)
	}
}

// TestRedriveNeverFails: the INIT re-send of an order the provider has.
func TestRedriveNeverFails(t *testing.T) {
	for _, out := range []provider.Outcome{
		provider.ClassifyError(withdrawal.ChannelWeChatPlatform, provider.OpResend, 403, "NOT_ENOUGH", ""),
		{Kind: provider.KindAmbiguous, Code: provider.CodeTransport},
		{Kind: provider.KindAccepted, State: withdrawal.StateSubmitted, ProviderRef: "W"},
	} {
		got := dec.Sent(claimedRow(withdrawal.ChannelWeChatPlatform, withdrawal.StateSubmitted), provider.OpResend, out, t0).Change
		if got.To != withdrawal.StateSubmitted || got.Resubmit == nil || *got.Resubmit != (out.Kind != provider.KindAccepted) {
			t.Errorf("%s: %+v", out.Kind, got)
		}
	}
}

// TestNotFoundConcludesOnlyAfterRefusal: an UNKNOWN withdrawal whose
// conclusive query finds nothing is FAILED when its last send was refused,
// and re-sent identically otherwise; before the provider's visibility time
// it waits.
func TestNotFoundConcludesOnlyAfterRefusal(t *testing.T) {
	for _, ch := range withdrawal.Channels {
		code := map[withdrawal.Channel]string{withdrawal.ChannelWeChatCancel: "NOTENOUGH", withdrawal.ChannelAllinpayShopoint: "3"}[ch]
		if code == "" {
			code = "NOT_ENOUGH"
		}
		notFound := provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindNotFound}}
		old := t0.Add(-48 * time.Hour)

		w := claimedRow(ch, withdrawal.StateUnknown)
		w.FirstSentAt, w.ReasonCode = &old, code
		got := dec.Observed(w, SourceQuery, notFound, t0, nil)
		if got.Change.To != withdrawal.StateFailed || got.Change.ReasonCode != code || got.Step != StepNone {
			t.Errorf("%s refused %s, conclusive not found: %+v", ch, code, got)
		}

		w.ReasonCode = provider.CodeTransport
		if got := dec.Observed(w, SourceQuery, notFound, t0, nil); got.Step != StepResend {
			t.Errorf("%s timed out, conclusive not found: %+v, want a re-send", ch, got)
		}

		fresh := t0.Add(-time.Minute)
		w.FirstSentAt, w.ReasonCode = &fresh, code
		got = dec.Observed(w, SourceQuery, notFound, t0, nil)
		if got.Change.To != withdrawal.StateUnknown || got.Step != StepNone || !got.Change.NextAttemptAt.Equal(dec.Rules.QueryableAt(ch, fresh)) {
			t.Errorf("%s refused, not found before the visibility time: %+v", ch, got)
		}
	}
}

// found is a matching query answer for claimedRow/row with a status.
func found(ch withdrawal.Channel, status string) provider.QueryResult {
	q := provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindAccepted, ProviderStatus: status, ProviderRef: "W1"},
		OutRequestNo: "N1", Amount: 100}
	if ch == withdrawal.ChannelWeChatCancel {
		q.Amount = 0 // the application's answer has none
	}
	if m, ok := provider.MapStatus(ch, status); ok {
		q.State, q.Resubmit = m.State, m.Resubmit
	}
	return q
}

// TestForgedAnswersNeverMoveAState: an answer that lacks our number, or
// whose amount, provider id or merchant differ, is kept out, from a query
// and from a callback, whatever status it carries.
func TestForgedAnswersNeverMoveAState(t *testing.T) {
	status := map[withdrawal.Channel]string{withdrawal.ChannelWeChatEcommerce: "REFUND", withdrawal.ChannelWeChatPlatform: "REFUND",
		withdrawal.ChannelWeChatCancel: "BANK_REFUNDED", withdrawal.ChannelAllinpayShopoint: "3"}
	for _, ch := range withdrawal.Channels {
		forgeries := map[string]func(*provider.QueryResult){
			"no out_request_no":    func(q *provider.QueryResult) { q.OutRequestNo = "" },
			"other out_request_no": func(q *provider.QueryResult) { q.OutRequestNo = "N2" },
			"other provider id":    func(q *provider.QueryResult) { q.ProviderRef = "W2" },
		}
		if ch != withdrawal.ChannelWeChatCancel {
			forgeries["other amount"] = func(q *provider.QueryResult) { q.Amount = 101 }
		}
		if ch == withdrawal.ChannelWeChatEcommerce || ch == withdrawal.ChannelWeChatPlatform {
			forgeries["no amount"] = func(q *provider.QueryResult) { q.Amount = 0 }
			forgeries["no provider id"] = func(q *provider.QueryResult) { q.ProviderRef = "" }
		}
		if ch == withdrawal.ChannelWeChatEcommerce {
			forgeries["other sub_mchid"] = func(q *provider.QueryResult) { q.SubMchID = "1900000110" }
		}
		from := withdrawal.StateSucceeded
		if ch == withdrawal.ChannelAllinpayShopoint {
			from = withdrawal.StateSubmitted
		}
		w := row(ch, from, t0.Add(-72*time.Hour))
		w.ProviderRef = "W1"
		if got := dec.Observed(w, SourceCallback, found(ch, status[ch]), t0, nil); got.Change.To == from || got.Alert != "" {
			t.Fatalf("%s: the genuine answer must apply: %+v", ch, got)
		}
		for name, forge := range forgeries {
			for _, src := range []Source{SourceQuery, SourceCallback} {
				q := found(ch, status[ch])
				forge(&q)
				got := dec.Observed(w, src, q, t0, nil)
				if got.Change.To != from || got.Alert == "" || got.Change.ProviderStatus != "" || got.Change.ProviderRef != "" {
					t.Errorf("%s %s %s: %+v, want state kept, nothing recorded, alert", ch, src, name, got)
				}
				if src == SourceCallback && got.Write {
					t.Errorf("%s callback %s: a forged callback writes nothing", ch, name)
				}
			}
		}
	}
}

// TestSucceededIsRetiredOnlyAfterALastQuery: a succeeded WeChat withdrawal
// is queried when its follow-up ends, and leaves the sweep only after that
// query answered; a failed last query is asked again.
func TestSucceededIsRetiredOnlyAfterALastQuery(t *testing.T) {
	ch := withdrawal.ChannelWeChatCancel
	r := dec.Rules
	sent := t0.Add(-r.FollowSucceeded - 48*time.Hour)
	w := row(ch, withdrawal.StateSucceeded, sent)
	succeeded := sent.Add(24 * time.Hour)
	w.FinalAt = &succeeded
	end := succeeded.Add(r.FollowSucceeded)
	now := end.Add(time.Minute)
	if _, skip := dec.PreQuery(w, now); skip {
		t.Fatal("a succeeded withdrawal past its follow-up must be queried once more, not retired unasked")
	}
	if got := dec.Observed(w, SourceQuery, found(ch, "PAY_SUCCEED"), now, nil); !got.Change.NextAttemptAt.Equal(FarFuture) {
		t.Errorf("answered last query: next %v, want retired", got.Change.NextAttemptAt)
	}
	failed := provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindAmbiguous, Code: provider.CodeTransport}}
	if got := dec.Observed(w, SourceQuery, failed, now, nil); got.Change.NextAttemptAt.Equal(FarFuture) {
		t.Error("a failed last query must be asked again, not retire the row")
	}
	if got := dec.Observed(w, SourceQuery, found(ch, "BANK_REFUNDED"), now, nil); got.Change.To != withdrawal.StateReversed {
		t.Errorf("refund found by the last query: %+v", got.Change)
	}
	// Before the follow-up ends, the next query is due at the latest at its end.
	mid := succeeded.Add(r.FollowSucceeded - time.Hour)
	if got := dec.Observed(w, SourceQuery, found(ch, "PAY_SUCCEED"), mid, nil); got.Change.NextAttemptAt.After(end) {
		t.Errorf("next query %v after the follow-up's end %v", got.Change.NextAttemptAt, end)
	}
	// The last query falls inside the provider's 90-day window.
	w2 := row(ch, withdrawal.StateSucceeded, t0.Add(-r.QueryWindow+time.Hour))
	late := t0.Add(-time.Hour)
	w2.FinalAt = &late
	if next := dec.nextPoll(w2, t0); next.After(t0.Add(time.Hour)) {
		t.Errorf("next query %v falls outside the query window", next)
	}
	// Allinpay has no refunds: retired without a query.
	if _, skip := dec.PreQuery(row(withdrawal.ChannelAllinpayShopoint, withdrawal.StateSucceeded, sent), now); !skip {
		t.Error("allinpay succeeded rows leave the sweep unasked")
	}
}

func TestCheckNamesFieldsNeverValues(t *testing.T) {
	w := row(withdrawal.ChannelWeChatEcommerce, withdrawal.StateSubmitted, t0)
	q := found(withdrawal.ChannelWeChatEcommerce, "SUCCESS")
	q.OutRequestNo, q.SubMchID = "SECRET-NO", "1234567890"
	err := Check(w, q)
	if err == nil {
		t.Fatal("mismatch accepted")
	}
	for _, v := range []string{"SECRET-NO", "1234567890", "1900000109"} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q quotes a value", err)
		}
	}
}

// TestCallbackDuringSubmissionIsNoAlarm: a callback that overtakes the
// submission's own answer is expected; it is left to the dispatcher and
// raises no alert (it used to page on-call for nothing).
func TestCallbackDuringSubmissionIsNoAlarm(t *testing.T) {
	w := claimedRow(withdrawal.ChannelWeChatPlatform, withdrawal.StateAccepted)
	got := dec.Observed(w, SourceCallback, found(withdrawal.ChannelWeChatPlatform, "SUCCESS"), t0, nil)
	if got.Write || got.Alert != "" || got.Info == "" {
		t.Errorf("%+v, want nothing written, no alert, an info line", got)
	}
	// The same contradiction from a query of a row at rest is an alert.
	q := row(withdrawal.ChannelWeChatPlatform, withdrawal.StateSucceeded, t0.Add(-time.Hour))
	if got := dec.Observed(q, SourceQuery, found(withdrawal.ChannelWeChatPlatform, "FAIL"), t0, nil); got.Alert == "" {
		t.Error("FAIL after SUCCESS must alert")
	}
}

// TestFollowUpIsAHandfulOfQueries: a succeeded WeChat withdrawal is queried
// a handful of times over its 30-day follow-up, densely at first, the last
// time at the end; then it leaves the sweep.
func TestFollowUpIsAHandfulOfQueries(t *testing.T) {
	r := dec.Rules
	succeeded := t0
	w := row(withdrawal.ChannelWeChatPlatform, withdrawal.StateSucceeded, t0.Add(-time.Hour))
	w.FinalAt = &succeeded
	var at []time.Duration
	now := dec.nextAfterFound(w, withdrawal.StateSucceeded, succeeded)
	for i := 0; !now.Equal(FarFuture); i++ {
		if i > 50 {
			t.Fatal("the follow-up never ends")
		}
		at = append(at, now.Sub(succeeded))
		now = dec.Observed(w, SourceQuery, found(withdrawal.ChannelWeChatPlatform, "SUCCESS"), now, nil).Change.NextAttemptAt
	}
	if len(at) < 5 || len(at) > 10 {
		t.Errorf("%d follow-up queries %v, want a handful", len(at), at)
	}
	if at[0] > 2*time.Hour || at[len(at)-1] != r.FollowSucceeded {
		t.Errorf("follow-up queries at %v: want the first within hours, the last at the end (%v)", at, r.FollowSucceeded)
	}
	for i := 1; i < len(at); i++ {
		if at[i] <= at[i-1] {
			t.Errorf("queries not in order: %v", at)
		}
	}
}

// TestExplain: the console's reading of next_attempt_at names the
// provider's timing rule in Beijing time.
func TestExplain(t *testing.T) {
	d := Decider{Rules: schedule.Production()}
	sent := time.Date(2026, 11, 30, 15, 0, 0, 0, withdrawal.Beijing)
	w := &store.Withdrawal{Channel: string(withdrawal.ChannelWeChatPlatform), State: string(withdrawal.StateSubmitted),
		FirstSentAt: &sent, NextAttemptAt: d.Rules.QueryableAt(withdrawal.ChannelWeChatPlatform, sent)}
	at, why := d.Explain(w, sent.Add(time.Minute))
	if !at.Equal(w.NextAttemptAt) || !strings.Contains(why, "query after 08:00 Beijing, 2026-12-01") {
		t.Errorf("submitted: %v %q", at, why)
	}
	w.State, w.NextAttemptAt = string(withdrawal.StateFailed), FarFuture
	if at, why := d.Explain(w, sent); !at.IsZero() || !strings.Contains(why, "final") {
		t.Errorf("failed: %v %q", at, why)
	}
}
