package poll

import (
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Source says where a provider status came from.
type Source string

// The sources of a status.
const (
	SourceQuery    Source = "query"
	SourceCallback Source = "callback"
)

// Audit operations of withdrawal_attempts written by the poller.
const (
	OpQuery = "query"
	// OpCallback audits a callback that changed a withdrawal.
	OpCallback = "callback"
)

// FarFuture is the next_attempt_at of a withdrawal no sweep should take
// again: final, past the refund follow-up, or past the query window.
var FarFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// decision is what to write after a provider status was observed.
type decision struct {
	change transition.Change
	// write is false when the observation tells nothing new and nothing
	// must be written (a repeated callback).
	write bool
	// alert, when set, is logged at error level with alert=true.
	alert string
	// resubmit: a byte-identical re-submission was requested.
	resubmit bool
}

// decide maps what the provider said about w (locked) to the change to
// apply. It is THE status → Change function: query results and callbacks
// both go through it. lastSent returns when the request last left for the
// provider (only asked for WeChat INIT).
func (p *Poller) decide(w *store.Withdrawal, src Source, q provider.QueryResult, now time.Time, lastSent func() time.Time) decision {
	r := p.opts.Rules
	ch := withdrawal.Channel(w.Channel)
	resting := transition.Resting(w)
	keep := func(next time.Time) decision {
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
		return decision{change: c, write: write}
	}

	switch q.Kind {
	case provider.KindAccepted:
		to := q.State
		switch {
		case to == "":
			d := keep(p.nextPoll(w, now))
			d.alert = "provider status not in the status table: state kept, raw status recorded"
			return d
		case to == resting && q.Resubmit && resting == withdrawal.StateSubmitted:
			// WeChat INIT: 业务单已创建, 需要重入驱动到受理成功. The order exists;
			// the identical request drives it on. The dispatcher sends it,
			// under the per-merchant cap.
			d := keep(p.nextPoll(w, now))
			if src == SourceCallback {
				return d // callbacks are not sent for INIT; follow it by query
			}
			if age := now.Sub(firstSent(w)); age >= r.InitAlertAfter {
				d.alert = "withdrawal still INIT beyond the provider's limit: stuck, an operator must look"
			}
			sent := lastSent()
			if due := sent.Add(r.InitResubmitAfter); !now.Before(due) {
				yes := true
				d.change.Resubmit = &yes
				d.change.NextAttemptAt = now // due for the dispatcher at once
				d.resubmit = true
			} else if due.Before(d.change.NextAttemptAt) {
				d.change.NextAttemptAt = due
			}
			return d
		case to == resting:
			return keep(p.nextPoll(w, now))
		case !withdrawal.CanTransition(resting, to):
			// E.g. FAIL after SUCCESS, or a status for a withdrawal never
			// sent: the provider contradicts what we recorded. Never
			// rewrite history on it; an operator decides.
			d := keep(p.nextPoll(w, now))
			d.change.ProviderStatus, d.change.ProviderRef = "", ""
			d.write = src == SourceQuery
			d.alert = "provider status contradicts the recorded state: not applied"
			return d
		}
		c := transition.Change{To: to, ProviderStatus: q.ProviderStatus, ProviderRef: q.ProviderRef,
			ReasonCode: reasonCodeOf(to, q.ProviderStatus), Reason: q.Reason, NextAttemptAt: p.nextAfterChange(w, to, now)}
		if w.ResubmitRequested {
			no := false
			c.Resubmit = &no
		}
		return decision{change: c, write: true}

	case provider.KindNotFound:
		if resting != withdrawal.StateSubmitted {
			d := keep(p.nextPoll(w, now))
			d.alert = "provider does not find a withdrawal it reported before: state kept"
			return d
		}
		qa := r.QueryableAt(ch, firstSent(w))
		if now.Before(qa) {
			// "查询无单据并不代表没有发起提现": proves nothing yet.
			next := p.nextPoll(w, now)
			if qa.Before(next) {
				next = qa
			}
			return keep(next)
		}
		// The provider acknowledged the order, and now that its answer is
		// meaningful it does not know it. Not a failure: UNKNOWN, so that
		// the dispatcher settles it the one safe way (query, then the
		// byte-identical request under the same out_request_no).
		no := false
		return decision{write: true, alert: "acknowledged withdrawal not found by the provider after its query time: now UNKNOWN",
			change: transition.Change{To: withdrawal.StateUnknown, ReasonCode: "ORDER_NOT_EXISTS",
				Reason:        "acknowledged by the provider but not found by its query; the dispatcher confirms it by query or the identical request",
				NextAttemptAt: now, Resubmit: &no}}

	default: // Ambiguous or RetryLater: the query itself failed; ask again later.
		next := p.nextPoll(w, now)
		if q.RetryAfter > 0 && now.Add(q.RetryAfter).After(next) {
			next = now.Add(q.RetryAfter)
		}
		d := keep(next)
		if q.Alert {
			d.alert = "status query needs an operator (signature, permission or an unverifiable answer)"
		}
		return d
	}
}

// preQuery decides without asking the provider, for rows no longer worth a
// query: succeeded withdrawals past the refund follow-up (or of channels
// without refunds), and submitted ones past the provider's query window.
// ok is false when the row should be queried.
func (p *Poller) preQuery(w *store.Withdrawal, now time.Time) (d decision, ok bool) {
	r := p.opts.Rules
	switch withdrawal.State(w.State) {
	case withdrawal.StateSucceeded:
		if !follows(withdrawal.Channel(w.Channel)) || !now.Before(succeededAt(w).Add(r.FollowSucceeded)) {
			return decision{write: true, change: transition.Change{To: withdrawal.StateSucceeded, NextAttemptAt: FarFuture}}, true
		}
	case withdrawal.StateSubmitted:
		if r.QueryWindow > 0 && !now.Before(firstSent(w).Add(r.QueryWindow)) {
			return decision{write: true, alert: "submitted withdrawal is past the provider's query window: no longer queried, reported daily as stuck",
				change: transition.Change{To: withdrawal.StateSubmitted, NextAttemptAt: FarFuture}}, true
		}
	}
	return decision{}, false
}

// nextPoll is when to query a withdrawal again whose status did not change:
// schedule.NextPoll with the round number derived from how long the status
// has been unchanged, so no counter needs storing. A succeeded withdrawal
// leaves the sweep when its follow-up ends, a submitted one at the end of
// the query window.
func (p *Poller) nextPoll(w *store.Withdrawal, now time.Time) time.Time {
	r := p.opts.Rules
	ch := withdrawal.Channel(w.Channel)
	var anchor, end time.Time
	switch transition.Resting(w) {
	case withdrawal.StateSucceeded:
		anchor = succeededAt(w)
		if !follows(ch) {
			return FarFuture
		}
		end = anchor.Add(r.FollowSucceeded)
	default:
		anchor = r.QueryableAt(ch, firstSent(w))
		if r.QueryWindow > 0 {
			end = firstSent(w).Add(r.QueryWindow)
		}
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

// nextAfterChange is the next look at a withdrawal that just changed to
// `to`: a succeeded WeChat withdrawal is followed for refunds, a submitted
// one is queried at the provider's first meaningful time, final ones leave
// the sweep.
func (p *Poller) nextAfterChange(w *store.Withdrawal, to withdrawal.State, now time.Time) time.Time {
	r := p.opts.Rules
	ch := withdrawal.Channel(w.Channel)
	switch to {
	case withdrawal.StateSucceeded:
		if follows(ch) {
			return r.NextPoll(ch, now, 1)
		}
	case withdrawal.StateSubmitted:
		if at := r.QueryableAt(ch, firstSent(w)); at.After(now) {
			return at
		}
		return r.NextPoll(ch, now, 1)
	case withdrawal.StateUnknown:
		return now
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

// follows reports whether succeeded withdrawals of a channel can still be
// refunded (退票) and are followed: the WeChat channels.
func follows(ch withdrawal.Channel) bool { return ch.IsWeChat() }

// reasonCodeOf gives FAILED and REVERSED states the provider status as
// their reason code, like the dispatcher does.
func reasonCodeOf(to withdrawal.State, status string) string {
	if to == withdrawal.StateFailed || to == withdrawal.StateReversed {
		return status
	}
	return ""
}

func firstSent(w *store.Withdrawal) time.Time {
	switch {
	case w.FirstSentAt != nil:
		return *w.FirstSentAt
	case w.SubmittedAt != nil:
		return *w.SubmittedAt
	}
	return w.CreatedAt
}

func succeededAt(w *store.Withdrawal) time.Time {
	if w.FinalAt != nil {
		return *w.FinalAt
	}
	return w.UpdatedAt
}
