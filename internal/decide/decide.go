// Package decide is the one place that turns a provider's answer into what
// happens to a withdrawal. The dispatcher (submissions, re-sends, the query
// that settles an UNKNOWN withdrawal), the poller (status queries) and the
// callback handler all call it, so a reviewer reads one file beside the
// provider documents:
//
//   - what an answer means per channel and operation is the table in
//     package provider (provider.Table, docs/providers.md);
//   - Sent decides after a submission or a re-send;
//   - Observed decides after a query answer or a callback;
//   - Check refuses an answer that is not about the stored order.
//
// The money rules they keep: FAILED only from a documented refusal of a
// first send on a channel whose documents allow concluding from it, or from
// a query that proves the order failed or never existed; no answer to a
// re-send and no answer that does not match the stored order (number,
// amount, provider id, merchant) moves a state; a conclusive "not found"
// leads to the byte-identical request unless the last send was refused.
package decide

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Source says where an observed provider status came from.
type Source string

// The sources of a status.
const (
	SourceQuery    Source = "query"
	SourceCallback Source = "callback"
)

// Step is what happens next, beside the change to record.
type Step string

// The steps.
const (
	// StepNone: the change says everything (including when to look again).
	StepNone Step = ""
	// StepResend: send the stored request again now, byte for byte.
	StepResend Step = "resend"
)

// FarFuture is the next_attempt_at of a withdrawal no sweep should take
// again: final, past the refund follow-up, or past the query window.
var FarFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Decision is what to record after a provider answer.
type Decision struct {
	Change transition.Change
	// Write is false when the observation tells nothing new and nothing
	// must be written (a repeated callback).
	Write bool
	Step  Step
	// Alert, when set, is logged at error level with alert=true.
	Alert string
	// Info, when set, is logged at info level: expected, nothing to do.
	Info string
}

// Decider decides with a set of timing rules.
type Decider struct {
	Rules schedule.Rules
}

// Sent decides after a submission (op OpSubmit) or a re-send (OpResend) of
// the claimed withdrawal w, whose resting state is the one it was claimed
// from.
func (d Decider) Sent(w *store.Withdrawal, op provider.Op, out provider.Outcome, now time.Time) Decision {
	resting := transition.Resting(w)
	if resting == withdrawal.StateSubmitted {
		return d.redriven(w, out, now)
	}
	switch out.Kind {
	case provider.KindAccepted:
		to := withdrawal.StateSubmitted
		if out.State != "" {
			to = out.State
		}
		if op == provider.OpResend && to.Final() {
			// An answer to a re-send concludes nothing: the query decides.
			return Decision{Write: true, Change: transition.Change{To: withdrawal.StateUnknown,
				ProviderRef: out.ProviderRef, ProviderStatus: out.ProviderStatus, ReasonCode: CodeResendFinal,
				Reason: "a re-send was answered with a final status: confirming it by query", NextAttemptAt: now}}
		}
		return Decision{Write: true, Change: transition.Change{To: to, ProviderStatus: out.ProviderStatus, ProviderRef: out.ProviderRef,
			ReasonCode: reasonCodeOf(to, out.ProviderStatus), Reason: out.Message, NextAttemptAt: d.nextAfterFound(w, to, now)}}
	case provider.KindRejected:
		if op != provider.OpSubmit {
			// The table never says Rejected for a re-send; should a row
			// ever do, a query still decides.
			return d.unknown(out, now, true)
		}
		return Decision{Write: true, Change: transition.Change{To: withdrawal.StateFailed, ReasonCode: out.Code,
			Reason: out.Message, NextAttemptAt: now}}
	case provider.KindRetryLater:
		// Not processed (429, our own configuration): the same request
		// later, from where the withdrawal was.
		delay := out.RetryAfter
		if delay <= 0 {
			delay = time.Second
		}
		return Decision{Write: true, Change: PutBack(w, now.Add(delay))}
	default: // Ambiguous: maybe created.
		return d.unknown(out, now, out.QueryNow)
	}
}

// CodeResendFinal is the reason code of an UNKNOWN withdrawal whose re-send
// was answered with a final status, until a query confirms it.
const CodeResendFinal = "RESEND_ANSWER_FINAL"

// unknown is the UNKNOWN change after an ambiguous answer. Its reason code
// is the answer's code: a refusal there lets a later conclusive "not found"
// end the withdrawal as FAILED instead of re-sending (see Observed).
func (d Decider) unknown(out provider.Outcome, now time.Time, queryNow bool) Decision {
	next := d.Rules.NextUnknownRetry(now, 0)
	if queryNow {
		next = now
	}
	code := out.Code
	if code == "" {
		code = provider.CodeTransport
	}
	return Decision{Write: true, Change: transition.Change{To: withdrawal.StateUnknown, ReasonCode: code,
		Reason: out.Message, NextAttemptAt: next}}
}

// redriven decides after the identical request of an order the provider has
// but wants driven again (WeChat INIT) was re-sent. The order exists, so no
// answer to the re-send can fail it: anything but acceptance leaves it
// SUBMITTED with the request still pending, and the poller keeps following.
func (d Decider) redriven(w *store.Withdrawal, out provider.Outcome, now time.Time) Decision {
	done := out.Kind == provider.KindAccepted
	next := now.Add(d.Rules.PollMin)
	if !done {
		next = d.Rules.NextUnknownRetry(now, now.Sub(FirstSent(w, now)))
	}
	pending := !done
	c := transition.Change{To: withdrawal.StateSubmitted, Resubmit: &pending, NextAttemptAt: next}
	if done {
		c.ProviderRef = out.ProviderRef
	}
	return Decision{Write: true, Change: c}
}

// PutBack is the change that returns a claim the provider did not process
// (nothing sent, or a 429) to where it came from, due at `at`, without an
// event.
func PutBack(w *store.Withdrawal, at time.Time) transition.Change {
	return transition.Change{To: transition.Resting(w), NextAttemptAt: at}
}

// ErrMismatch is wrapped by Check's errors.
var ErrMismatch = errors.New("answer does not match the stored order")

// Check reports whether a found order (a query answer or a callback) is the
// stored withdrawal w: out_request_no present and equal; the amount equal
// where the channel's answer carries one (WeChat withdraw queries and
// callbacks must carry it; Allinpay's details are compared when present;
// the cancel application's answer has none); the provider's id equal when
// we know it; the sub-merchant equal when the answer names one. Only then
// may the answer move a state. The error names fields, never values.
func Check(w *store.Withdrawal, q provider.QueryResult) error {
	ch := withdrawal.Channel(w.Channel)
	var bad []string
	if q.OutRequestNo != w.OutRequestNo {
		bad = append(bad, "out_request_no")
	}
	switch ch {
	case withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform:
		if q.Amount != w.Amount {
			bad = append(bad, "amount")
		}
	case withdrawal.ChannelAllinpayShopoint:
		if q.Amount != 0 && q.Amount != w.Amount {
			bad = append(bad, "amount")
		}
	}
	if w.ProviderRef != "" && q.ProviderRef != w.ProviderRef &&
		!(ch == withdrawal.ChannelAllinpayShopoint && q.ProviderRef == "") {
		bad = append(bad, "provider_ref")
	}
	if q.SubMchID != "" && ch == withdrawal.ChannelWeChatEcommerce {
		if sub := SubMchID(w); sub != "" && sub != q.SubMchID {
			bad = append(bad, "sub_mchid")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrMismatch, bad)
	}
	return nil
}

// SubMchID is the sub-merchant of a stored withdrawal's command, "" when it
// has none.
func SubMchID(w *store.Withdrawal) string {
	var c struct {
		SubMchID string `json:"sub_mchid"`
	}
	if err := json.Unmarshal(w.Params, &c); err != nil {
		return ""
	}
	return c.SubMchID
}

// Observed decides after the provider told the status of w (locked): a
// query answer or a callback. lastSent returns when the request last left
// for the provider (asked only for WeChat INIT).
func (d Decider) Observed(w *store.Withdrawal, src Source, q provider.QueryResult, now time.Time, lastSent func() time.Time) Decision {
	r := d.Rules
	ch := withdrawal.Channel(w.Channel)
	resting := transition.Resting(w)
	keep := func(next time.Time) Decision {
		if src == SourceCallback {
			next = w.NextAttemptAt // a callback does not disturb the polling schedule
		}
		c := transition.Change{To: resting, NextAttemptAt: next}
		if q.Kind == provider.KindAccepted {
			c.ProviderStatus, c.ProviderRef = q.ProviderStatus, q.ProviderRef
		}
		write := src == SourceQuery ||
			(c.ProviderStatus != "" && c.ProviderStatus != w.ProviderStatus) ||
			(c.ProviderRef != "" && c.ProviderRef != w.ProviderRef)
		return Decision{Change: c, Write: write}
	}

	if q.Kind == provider.KindAccepted {
		if err := Check(w, q); err != nil {
			// Same number, another order, or a forged answer: never apply
			// it, keep asking, and have an operator look.
			dec := keep(d.again(w, now))
			dec.Change.ProviderStatus, dec.Change.ProviderRef = "", ""
			dec.Write = src == SourceQuery
			dec.Alert = "provider answer does not match the stored withdrawal (" + err.Error() + "): not applied"
			return dec
		}
	}

	switch q.Kind {
	case provider.KindAccepted:
		to := q.State
		switch {
		case to == "":
			dec := keep(d.again(w, now))
			dec.Alert = "provider status not in the status table: state kept, raw status recorded"
			return dec
		case to == resting && q.Resubmit && resting == withdrawal.StateSubmitted:
			// WeChat INIT: 业务单已创建, 需要重入驱动到受理成功. The order exists;
			// the identical request drives it on. The dispatcher sends it,
			// under the per-merchant cap.
			dec := keep(d.nextPoll(w, now))
			if src == SourceCallback {
				return dec // callbacks are not sent for INIT; follow it by query
			}
			if age := now.Sub(FirstSent(w, now)); age >= r.InitAlertAfter {
				dec.Alert = "withdrawal still INIT beyond the provider's limit: stuck, an operator must look"
			}
			sent := lastSent()
			if due := sent.Add(r.InitResubmitAfter); !now.Before(due) {
				yes := true
				dec.Change.Resubmit = &yes
				dec.Change.NextAttemptAt = now // due for the dispatcher at once
			} else if due.Before(dec.Change.NextAttemptAt) {
				dec.Change.NextAttemptAt = due
			}
			return dec
		case to == resting:
			return keep(d.again(w, now))
		case !withdrawal.CanTransition(resting, to) && src == SourceCallback && withdrawal.State(w.State) == withdrawal.StateSubmitting:
			// The callback overtook the submission's own answer (the
			// dispatcher is recording it): expected, and the dispatcher's
			// answer or the next query settles it.
			return Decision{Info: "callback arrived while the submission is being recorded: left to the dispatcher and the next query"}
		case !withdrawal.CanTransition(resting, to):
			// E.g. FAIL after SUCCESS, or a status for a withdrawal never
			// sent: the provider contradicts what we recorded. Never
			// rewrite history on it; an operator decides.
			dec := keep(d.again(w, now))
			dec.Change.ProviderStatus, dec.Change.ProviderRef = "", ""
			dec.Write = src == SourceQuery
			dec.Alert = "provider status contradicts the recorded state: not applied"
			return dec
		}
		c := transition.Change{To: to, ProviderStatus: q.ProviderStatus, ProviderRef: q.ProviderRef,
			ReasonCode: reasonCodeOf(to, q.ProviderStatus), Reason: q.Reason, NextAttemptAt: d.nextAfterFound(w, to, now)}
		if w.ResubmitRequested {
			no := false
			c.Resubmit = &no
		}
		return Decision{Change: c, Write: true}

	case provider.KindNotFound:
		conclusiveAt := r.QueryableAt(ch, FirstSent(w, now))
		switch resting {
		case withdrawal.StateUnknown:
			if now.Before(conclusiveAt) {
				// "查询无单据并不代表没有发起提现": wait for the day's answer.
				return keep(conclusiveAt)
			}
			if provider.IsRefusal(ch, w.ReasonCode) {
				// The last send was refused, and a conclusive query finds
				// no order: nothing was ever created.
				return Decision{Write: true, Change: transition.Change{To: withdrawal.StateFailed, ReasonCode: w.ReasonCode,
					Reason: "refused by the provider and not found by a conclusive query", NextAttemptAt: now}}
			}
			// Maybe never arrived: the identical request, same number.
			return Decision{Step: StepResend}
		case withdrawal.StateSubmitted:
			if now.Before(conclusiveAt) {
				next := d.nextPoll(w, now)
				if conclusiveAt.Before(next) {
					next = conclusiveAt
				}
				return keep(next)
			}
			// The provider acknowledged the order, and now that its answer
			// is meaningful it does not know it. Not a failure: UNKNOWN, so
			// that the dispatcher settles it the one safe way (query, then
			// the byte-identical request under the same out_request_no).
			no := false
			return Decision{Write: true, Alert: "acknowledged withdrawal not found by the provider after its query time: now UNKNOWN",
				Change: transition.Change{To: withdrawal.StateUnknown, ReasonCode: "ORDER_NOT_EXISTS",
					Reason:        "acknowledged by the provider but not found by its query; the dispatcher confirms it by query or the identical request",
					NextAttemptAt: now, Resubmit: &no}}
		default:
			dec := keep(d.again(w, now))
			dec.Alert = "provider does not find a withdrawal it reported before: state kept"
			return dec
		}

	default: // Ambiguous or RetryLater: the query itself failed; ask again later.
		next := d.retryQuery(w, now)
		if q.RetryAfter > 0 && now.Add(q.RetryAfter).After(next) {
			next = now.Add(q.RetryAfter)
		}
		dec := keep(next)
		if q.Alert {
			dec.Alert = "status query needs an operator (signature, permission or an unverifiable answer)"
		}
		return dec
	}
}

// again is when to ask about w again after an answer that changed nothing.
func (d Decider) again(w *store.Withdrawal, now time.Time) time.Time {
	if transition.Resting(w) == withdrawal.StateUnknown {
		return d.Rules.NextUnknownRetry(now, now.Sub(FirstSent(w, now)))
	}
	return d.nextPoll(w, now)
}

// retryQuery is when to ask again after a query that failed: as again,
// except that a failed last query never retires a row (a row leaves the
// sweep only after an answered query).
func (d Decider) retryQuery(w *store.Withdrawal, now time.Time) time.Time {
	next := d.again(w, now)
	if next.Equal(FarFuture) {
		return d.Rules.NextUnknownRetry(now, d.Rules.UnknownRetryMax*4)
	}
	return next
}

// PreQuery decides without asking the provider, for rows no longer worth a
// query: succeeded withdrawals of channels without refunds, and submitted
// ones past the provider's query window. ok is false when the row should be
// queried. A succeeded WeChat withdrawal is never retired unasked: its
// follow-up ends with a last query (see nextPoll).
func (d Decider) PreQuery(w *store.Withdrawal, now time.Time) (Decision, bool) {
	r := d.Rules
	switch withdrawal.State(w.State) {
	case withdrawal.StateSucceeded:
		if !Follows(withdrawal.Channel(w.Channel)) {
			return Decision{Write: true, Change: transition.Change{To: withdrawal.StateSucceeded, NextAttemptAt: FarFuture}}, true
		}
	case withdrawal.StateSubmitted:
		if r.QueryWindow > 0 && !now.Before(FirstSent(w, now).Add(r.QueryWindow)) {
			return Decision{Write: true, Alert: "submitted withdrawal is past the provider's query window: no longer queried, reported daily as stuck",
				Change: transition.Change{To: withdrawal.StateSubmitted, NextAttemptAt: FarFuture}}, true
		}
	}
	return Decision{}, false
}

// nextPoll is when to query a withdrawal again whose status did not change:
// schedule.NextPoll with the round number derived from how long the status
// has been unchanged, so no counter needs storing; a submitted one leaves
// at the end of the query window. A succeeded withdrawal follows
// FollowUpSchedule (nextFollowUp).
func (d Decider) nextPoll(w *store.Withdrawal, now time.Time) time.Time {
	r := d.Rules
	ch := withdrawal.Channel(w.Channel)
	if transition.Resting(w) == withdrawal.StateSucceeded {
		if !Follows(ch) {
			return FarFuture
		}
		return d.nextFollowUp(w, SucceededAt(w), now)
	}
	anchor := r.QueryableAt(ch, FirstSent(w, now))
	var end time.Time
	if r.QueryWindow > 0 {
		end = FirstSent(w, now).Add(r.QueryWindow)
	}
	base := r.PollMin
	if ch == withdrawal.ChannelWeChatCancel && r.CancelPollMin > base {
		base = r.CancelPollMin
	}
	next := r.NextPoll(ch, now, rounds(now.Sub(anchor), base, r.PollMax))
	if !end.IsZero() && !next.Before(end) {
		if !now.Before(end) {
			return FarFuture
		}
		return end
	}
	return next
}

// FollowUpSchedule is when a succeeded WeChat withdrawal is queried for a
// bank refund (退票), as fractions of the follow-up (Rules.FollowSucceeded,
// 30 days: after 1 h, 6 h, 1, 2, 4, 7, 14 and 21 days), then once more at
// its end: dense in the first days, when banks return payments, sparse
// later — nine queries in all instead of one every PollMax. Callbacks
// (e-commerce and platform) report a refund at once; the cancel channel
// has only these queries.
var FollowUpSchedule = []float64{1.0 / 720, 1.0 / 120, 1.0 / 30, 2.0 / 30, 4.0 / 30, 7.0 / 30, 14.0 / 30, 21.0 / 30}

// nextFollowUp is the next refund query of a withdrawal that succeeded at
// `succeeded`: the next point of FollowUpSchedule, else the last query at
// the end of the follow-up — never later than the provider's query window,
// counted from the order's creation, which our first send precedes — and
// FarFuture once that end has passed (after its answered query).
func (d Decider) nextFollowUp(w *store.Withdrawal, succeeded, now time.Time) time.Time {
	r := d.Rules
	end := succeeded.Add(r.FollowSucceeded)
	if r.QueryWindow > 0 {
		if last := FirstSent(w, now).Add(r.QueryWindow); last.Before(end) {
			end = last
		}
	}
	if !now.Before(end) {
		return FarFuture
	}
	for _, f := range FollowUpSchedule {
		if at := succeeded.Add(time.Duration(f * float64(r.FollowSucceeded))); at.After(now) && at.Before(end) {
			return at
		}
	}
	return end
}

// nextAfterFound is the next look at a withdrawal that the provider just
// acknowledged as `to`: a succeeded WeChat withdrawal is followed for
// refunds, a submitted one is queried at the provider's first meaningful
// time, UNKNOWN at once-ish, final ones leave the sweep.
func (d Decider) nextAfterFound(w *store.Withdrawal, to withdrawal.State, now time.Time) time.Time {
	r := d.Rules
	ch := withdrawal.Channel(w.Channel)
	switch to {
	case withdrawal.StateSucceeded:
		if Follows(ch) {
			return d.nextFollowUp(w, now, now)
		}
	case withdrawal.StateSubmitted:
		if at := r.QueryableAt(ch, FirstSent(w, now)); at.After(now) {
			return at
		}
		return now.Add(r.PollMin)
	case withdrawal.StateUnknown:
		return r.NextUnknownRetry(now, now.Sub(FirstSent(w, now)))
	}
	return FarFuture
}

// rounds is the n of schedule.Rules.NextPoll for a status unchanged for
// `elapsed`: the interval doubles from base while it stays below elapsed.
func rounds(elapsed, base, max time.Duration) int {
	n := 1
	if base <= 0 {
		return n
	}
	for d := base; d*2 <= elapsed && d < max && n < 40; d *= 2 {
		n++
	}
	return n
}

// Follows reports whether succeeded withdrawals of a channel can still be
// refunded (退票) and are followed: the WeChat channels. The cancel channel
// sends no callbacks, so its refunds are seen by these queries only.
func Follows(ch withdrawal.Channel) bool { return ch.IsWeChat() }

// reasonCodeOf gives FAILED and REVERSED states the provider status as
// their reason code.
func reasonCodeOf(to withdrawal.State, status string) string {
	if to == withdrawal.StateFailed || to == withdrawal.StateReversed {
		return status
	}
	return ""
}

// FirstSent is when w's request first left for the provider (its
// submission or creation time when that was not recorded; now for a row
// never sent).
func FirstSent(w *store.Withdrawal, now time.Time) time.Time {
	switch {
	case w.FirstSentAt != nil:
		return *w.FirstSentAt
	case w.SubmittedAt != nil:
		return *w.SubmittedAt
	case !w.CreatedAt.IsZero():
		return w.CreatedAt
	}
	return now
}

// SucceededAt is when w became SUCCEEDED.
func SucceededAt(w *store.Withdrawal) time.Time {
	if w.FinalAt != nil {
		return *w.FinalAt
	}
	return w.UpdatedAt
}

// Explain says what happens next to w and why, in an operator's words, with
// the time it is due (zero when nothing is scheduled): the reading of
// next_attempt_at under the same rules that set it. Times in the text are
// Beijing time.
func (d Decider) Explain(w *store.Withdrawal, now time.Time) (time.Time, string) {
	r := d.Rules
	ch := withdrawal.Channel(w.Channel)
	at := w.NextAttemptAt
	bj := func(t time.Time) string { return t.In(withdrawal.Beijing).Format("15:04 Beijing, 2006-01-02") }
	due := "due now"
	if at.After(now) {
		due = "at " + bj(at)
	}
	if !at.Before(FarFuture) {
		at = time.Time{}
	}
	switch withdrawal.State(w.State) {
	case withdrawal.StateAccepted:
		return at, "submission to the provider " + due + " (the dispatcher, within the merchant's in-flight cap)"
	case withdrawal.StateSubmitting:
		lease := ""
		if w.LeaseExpiresAt != nil {
			lease = " until " + bj(*w.LeaseExpiresAt)
		}
		return at, "a dispatcher (" + w.LeaseOwner + ") holds it" + lease + "; if its lease expires it becomes UNKNOWN and is queried"
	case withdrawal.StateUnknown:
		sent := FirstSent(w, now)
		why := "query " + due + " to settle the ambiguous outcome; a conclusive \"not found\" re-sends the identical request"
		if q := r.QueryableAt(ch, sent); q.After(now) {
			why += "; the provider's \"not found\" proves nothing before " + bj(q) + " (" + queryRule(r, ch) + ")"
		}
		return at, why
	case withdrawal.StateSubmitted:
		if at.IsZero() {
			return at, "no longer queried: past the provider's query window, reported daily as stuck"
		}
		if w.ResubmitRequested {
			return at, "re-send of the identical request " + due + " (the provider asked for it: INIT)"
		}
		sent := FirstSent(w, now)
		if q := r.QueryableAt(ch, sent); !at.After(q) && q.After(now) {
			return at, "query after " + bj(q) + " (" + queryRule(r, ch) + "; a callback may settle it sooner)"
		}
		return at, "status query " + due + " (backoff while the provider reports no change; a callback may settle it sooner)"
	case withdrawal.StateSucceeded:
		if at.IsZero() || !Follows(ch) {
			return time.Time{}, "final on this channel: nothing scheduled"
		}
		succeeded := SucceededAt(w)
		n := 1
		for _, f := range FollowUpSchedule {
			if succeeded.Add(time.Duration(f * float64(r.FollowSucceeded))).Before(at) {
				n++
			}
		}
		return at, fmt.Sprintf("refund (退票) follow-up query %d of %d %s, until %s", min(n, len(FollowUpSchedule)+1),
			len(FollowUpSchedule)+1, due, bj(succeeded.Add(r.FollowSucceeded)))
	}
	return time.Time{}, w.State + " is final: nothing scheduled"
}

// queryRule names the provider's rule behind QueryableAt.
func queryRule(r schedule.Rules, ch withdrawal.Channel) string {
	switch {
	case r.Fixed > 0:
		return fmt.Sprintf("accelerated rules: %s after the first send", r.Fixed)
	case ch == withdrawal.ChannelAllinpayShopoint:
		return fmt.Sprintf("Allinpay answers from minute %d of the next hour", r.AllinpayQueryMinute)
	}
	return fmt.Sprintf("WeChat answers queries from %02d:00 Beijing the day after the first send", r.WeChatQueryHour)
}
