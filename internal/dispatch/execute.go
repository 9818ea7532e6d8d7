package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Audit operations of withdrawal_attempts.
const (
	OpSubmit   = "submit"
	OpResubmit = "resubmit"
	OpQuery    = "query"
)

// execute runs one claimed withdrawal: waits for a call slot, makes the
// provider call(s), frees the slot and records the answer. ctx is Run's: once
// it is cancelled no new call starts, but a call under way and every record
// finish (an answer thrown away would leave the claim to expire into
// UNKNOWN and cost a query).
func (d *Dispatcher) execute(ctx context.Context, c claimed) {
	defer d.wg.Done()
	d.sem <- struct{}{}
	d.opts.Metrics.inFlight.Inc()
	bg := context.WithoutCancel(ctx)
	var change transition.Change
	switch lease := c.row.LeaseExpiresAt; {
	case ctx.Err() != nil:
		// Shutting down before its call began: nothing was sent, put it
		// back for whichever instance runs next.
		change = putBack(c, d.opts.Now())
	case lease != nil && d.opts.Now().After(lease.Add(-d.opts.LeaseTTL/2)):
		// Half the lease went waiting for a slot (every slot stuck in slow
		// calls): put it back rather than risk the lease running out during
		// the call.
		change = putBack(c, d.opts.Now())
	default:
		change = d.call(bg, c)
	}
	// The provider call is over: its slot goes to the next withdrawal while
	// the answer is written. The row is SUBMITTING until then, so the
	// merchant's cap still counts it. Answers being written are bounded
	// too: the slot is released only once there is room to record.
	d.recording <- struct{}{}
	<-d.sem
	d.pending.Add(-1)
	d.opts.Metrics.inFlight.Dec()
	d.Notify()
	d.finish(bg, c, change)
	<-d.recording
}

// putBack is the change that returns a claim the provider did not process
// (nothing sent, or a 429) to where it came from, due at at, without an
// event (claimed_from = state).
func putBack(c claimed, at time.Time) transition.Change {
	return transition.Change{To: withdrawal.State(c.row.ClaimedFrom), NextAttemptAt: at}
}

// call makes the provider call(s) for one claimed withdrawal and returns
// the change they showed, to be recorded by finish.
func (d *Dispatcher) call(ctx context.Context, c claimed) transition.Change {
	switch withdrawal.State(c.row.ClaimedFrom) {
	case withdrawal.StateUnknown:
		return d.settleUnknown(ctx, c)
	case withdrawal.StateSubmitted:
		return d.redrive(ctx, c)
	default:
		out, att := d.send(ctx, c, OpSubmit)
		change := d.afterSend(c, out)
		change.Attempts = append(change.Attempts, att)
		return change
	}
}

// finish records what the provider call(s) of a claimed withdrawal showed.
func (d *Dispatcher) finish(ctx context.Context, c claimed, change transition.Change) {
	err := d.record(ctx, c, change)
	if err == nil && d.opts.OnChange != nil {
		d.opts.OnChange()
	}
	if err != nil {
		// The claim stays; its lease expires into UNKNOWN and a query
		// settles it. Nothing is lost, it only costs time.
		d.log.Error("recording the provider answer failed; the lease will expire into UNKNOWN",
			"withdrawal_id", c.row.ID, "out_request_no", c.row.OutRequestNo, "err", err)
	}
}

// settleUnknown handles a withdrawal that may or may not exist at the
// provider: ask first; re-send the identical request only when the
// provider's "not found" is conclusive.
func (d *Dispatcher) settleUnknown(ctx context.Context, c claimed) transition.Change {
	now := d.opts.Now()
	age := time.Duration(0)
	if c.row.FirstSentAt != nil {
		age = now.Sub(*c.row.FirstSentAt)
	}
	q, att := d.query(ctx, c)
	attempts := []store.Attempt{att}
	switch q.Kind {
	case provider.KindAccepted:
		to := q.State
		if to == "" {
			// A status we cannot map: keep asking, keep the raw status.
			to = withdrawal.StateUnknown
		}
		return transition.Change{To: to, ProviderStatus: q.ProviderStatus, ProviderRef: q.ProviderRef,
			ReasonCode: reasonCodeOf(to, q.ProviderStatus), Reason: q.Reason,
			NextAttemptAt: d.nextAfterFound(c, to, now), Attempts: attempts}
	case provider.KindNotFound:
		conclusiveAt := d.opts.Rules.QueryableAt(withdrawal.Channel(c.row.Channel), firstSent(c.row, now))
		if now.Before(conclusiveAt) {
			// "查询无单据并不代表没有发起提现": wait for the day's answer.
			return transition.Change{To: withdrawal.StateUnknown, NextAttemptAt: conclusiveAt, Attempts: attempts}
		}
		out, sendAtt := d.send(ctx, c, OpResubmit)
		ch := d.afterSend(c, out)
		ch.Attempts = append(attempts, sendAtt)
		return ch
	default:
		next := d.opts.Rules.NextUnknownRetry(now, age)
		if q.Kind == provider.KindRetryLater && q.RetryAfter > 0 {
			next = now.Add(q.RetryAfter)
		}
		return transition.Change{To: withdrawal.StateUnknown, NextAttemptAt: next, Attempts: attempts}
	}
}

// redrive re-sends the identical request of an order the provider has but
// wants driven again (WeChat INIT). The order exists, so no answer to the
// re-send can fail it: anything but acceptance leaves it SUBMITTED with the
// request still pending, and the poller keeps following it.
func (d *Dispatcher) redrive(ctx context.Context, c claimed) transition.Change {
	now := d.opts.Now()
	out, att := d.send(ctx, c, OpResubmit)
	done := out.Kind == provider.KindAccepted
	next := now.Add(d.opts.Rules.PollMin)
	if !done {
		next = d.opts.Rules.NextUnknownRetry(now, now.Sub(firstSent(c.row, now)))
	}
	pending := !done
	return transition.Change{To: withdrawal.StateSubmitted, ProviderRef: out.ProviderRef, ProviderStatus: out.ProviderStatus,
		Resubmit: &pending, NextAttemptAt: next, Attempts: []store.Attempt{att}}
}

// afterSend maps a submission outcome to the change to record.
func (d *Dispatcher) afterSend(c claimed, out provider.Outcome) transition.Change {
	now := d.opts.Now()
	switch out.Kind {
	case provider.KindAccepted:
		to := withdrawal.StateSubmitted
		if out.State != "" {
			to = out.State
		}
		return transition.Change{To: to, ProviderStatus: out.ProviderStatus, ProviderRef: out.ProviderRef,
			ReasonCode: reasonCodeOf(to, out.Code), Reason: out.Message,
			NextAttemptAt: d.nextAfterFound(c, to, now)}
	case provider.KindRejected:
		return transition.Change{To: withdrawal.StateFailed, ReasonCode: out.Code, Reason: out.Message, NextAttemptAt: now}
	case provider.KindRetryLater:
		// Not processed (429, our own configuration): the same request
		// later, from where the withdrawal was.
		delay := out.RetryAfter
		if delay <= 0 {
			delay = time.Second
		}
		return putBack(c, now.Add(delay))
	default: // Ambiguous: maybe created.
		next := d.opts.Rules.NextUnknownRetry(now, 0)
		if out.Exists {
			next = now // the provider said it exists: ask for it right away
		}
		return transition.Change{To: withdrawal.StateUnknown, ReasonCode: out.Code, Reason: out.Message, NextAttemptAt: next}
	}
}

// nextAfterFound is when the poller should next look at a withdrawal the
// provider has acknowledged: at the provider's first meaningful query time.
func (d *Dispatcher) nextAfterFound(c claimed, to withdrawal.State, now time.Time) time.Time {
	if to == withdrawal.StateUnknown {
		return d.opts.Rules.NextUnknownRetry(now, now.Sub(firstSent(c.row, now)))
	}
	at := d.opts.Rules.QueryableAt(withdrawal.Channel(c.row.Channel), firstSent(c.row, now))
	if at.Before(now) {
		return now.Add(d.opts.Rules.PollMin)
	}
	return at
}

// send sends the stored request after waiting for the account's rate limit.
func (d *Dispatcher) send(ctx context.Context, c claimed, op string) (provider.Outcome, store.Attempt) {
	if err := d.waitRate(ctx, c); err != nil {
		return provider.Outcome{Kind: provider.KindRetryLater, Code: "RATE_LIMIT_WAIT", RetryAfter: time.Second, Err: err}, d.attempt(op, time.Now(), 0, provider.Outcome{Kind: provider.KindRetryLater, Err: err})
	}
	req := c.req
	// PARAM_ERROR to a request that may already have arrived can mean "this
	// number exists with these very parameters": never a rejection then.
	req.Resend = op == OpResubmit || c.row.Submissions > 0
	start := time.Now()
	out := c.prov.Send(ctx, req)
	d.observe(c, op, out, time.Since(start))
	return out, d.attempt(op, start, time.Since(start), out)
}

// query asks the provider for the withdrawal by our request number.
func (d *Dispatcher) query(ctx context.Context, c claimed) (provider.QueryResult, store.Attempt) {
	if err := d.waitRate(ctx, c); err != nil {
		q := provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindRetryLater, RetryAfter: time.Second, Err: err}}
		return q, d.attempt(OpQuery, time.Now(), 0, q.Outcome)
	}
	// The query needs only identity fields, which params holds in clear.
	var cmd withdrawal.Command
	if err := json.Unmarshal(c.row.Params, &cmd); err != nil {
		cmd = withdrawal.Command{OutRequestNo: c.row.OutRequestNo}
	}
	start := time.Now()
	q := c.prov.QueryByOutRequestNo(ctx, provider.QueryKeyOf(&cmd, c.row.ProviderRef))
	d.observe(c, OpQuery, q.Outcome, time.Since(start))
	return q, d.attempt(OpQuery, start, time.Since(start), q.Outcome)
}

// waitRate waits for the provider account's token bucket, at most a third
// of the lease: a claim must be recorded well before its lease expires.
func (d *Dispatcher) waitRate(ctx context.Context, c claimed) error {
	l := d.limiter(c.row.Channel, c.row.Account)
	if l.Allow() {
		// A token is there (the usual case): no deadline, no timer.
		l.waited.Observe(0)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.LeaseTTL/3)
	defer cancel()
	start := time.Now()
	err := l.Wait(ctx)
	l.waited.Observe(time.Since(start).Seconds())
	return err
}

// observe feeds the metrics and the adaptive rate limit.
func (d *Dispatcher) observe(c claimed, op string, out provider.Outcome, took time.Duration) {
	series := d.opts.Metrics.call(callLabels{c.row.Channel, op, string(out.Kind), out.Code})
	series.duration.Observe(took.Seconds())
	series.count.Inc()
	l := d.limiter(c.row.Channel, c.row.Account)
	if out.HTTPStatus == http.StatusTooManyRequests || out.Code == "FREQUENCY_LIMITED" || out.Code == "RATE_LIMITED" {
		l.rate.Set(l.throttled())
	} else if out.Kind == provider.KindAccepted {
		l.rate.Set(l.succeeded())
	}
	if out.Alert {
		d.log.Error("provider answer needs an operator", "withdrawal_id", c.row.ID, "out_request_no", c.row.OutRequestNo,
			"operation", op, "outcome", out, "alert", true)
	}
}

func (d *Dispatcher) attempt(op string, start time.Time, took time.Duration, out provider.Outcome) store.Attempt {
	a := store.Attempt{Operation: op, StartedAt: start.UTC(), LatencyUS: took.Microseconds(), HTTPStatus: out.HTTPStatus,
		ProviderCode: out.Code, Outcome: string(out.Kind), Instance: d.opts.Instance}
	if out.Err != nil {
		a.Error = out.Err.Error()
	}
	return a
}

// reasonCodeOf gives FAILED and REVERSED states found by a query the
// provider status as their reason code.
func reasonCodeOf(to withdrawal.State, code string) string {
	if to == withdrawal.StateFailed || to == withdrawal.StateReversed {
		return code
	}
	return ""
}

func firstSent(w store.Withdrawal, now time.Time) time.Time {
	if w.FirstSentAt != nil {
		return *w.FirstSentAt
	}
	return now
}
