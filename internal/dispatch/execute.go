package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/paycore/withdraw/internal/decide"
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
		change = decide.PutBack(&c.row, d.opts.Now())
	case lease != nil && d.opts.Now().After(lease.Add(-d.opts.LeaseTTL/2)):
		// Half the lease went waiting for a slot (every slot stuck in slow
		// calls): put it back rather than risk the lease running out during
		// the call.
		change = decide.PutBack(&c.row, d.opts.Now())
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

// call makes the provider call(s) for one claimed withdrawal and returns
// the change they showed, to be recorded by finish. What each answer means
// is decided by package decide.
func (d *Dispatcher) call(ctx context.Context, c claimed) transition.Change {
	from := withdrawal.State(c.row.ClaimedFrom)
	if from == withdrawal.StateUnknown {
		return d.settleUnknown(ctx, c)
	}
	// A first send, or (from SUBMITTED) the identical request of an order
	// the provider wants driven again (WeChat INIT).
	op := provider.OpSubmit
	if from == withdrawal.StateSubmitted || c.row.Submissions > 0 {
		op = provider.OpResend
	}
	out, att := d.send(ctx, c, op)
	change := d.decider.Sent(&c.row, op, out, d.opts.Now()).Change
	change.Attempts = append(change.Attempts, att)
	return change
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
// provider: ask first, then do what the answer decides — record it, or
// re-send the identical request when "not found" is conclusive.
func (d *Dispatcher) settleUnknown(ctx context.Context, c claimed) transition.Change {
	q, att := d.query(ctx, c)
	now := d.opts.Now()
	dec := d.decider.Observed(&c.row, decide.SourceQuery, q, now, func() time.Time { return decide.FirstSent(&c.row, now) })
	if dec.Alert != "" {
		d.log.Error(dec.Alert, "withdrawal_id", c.row.ID, "out_request_no", c.row.OutRequestNo, "outcome", q.Outcome, "alert", true)
	}
	if dec.Step != decide.StepResend {
		dec.Change.Attempts = append(dec.Change.Attempts, att)
		return dec.Change
	}
	out, sendAtt := d.send(ctx, c, provider.OpResend)
	change := d.decider.Sent(&c.row, provider.OpResend, out, d.opts.Now()).Change
	change.Attempts = append(change.Attempts, att, sendAtt)
	return change
}

// send sends the stored request after waiting for the account's rate limit.
func (d *Dispatcher) send(ctx context.Context, c claimed, op provider.Op) (provider.Outcome, store.Attempt) {
	audit := OpSubmit
	if op == provider.OpResend {
		audit = OpResubmit
	}
	if err := d.waitRate(ctx, c); err != nil {
		return provider.Outcome{Kind: provider.KindRetryLater, Code: "RATE_LIMIT_WAIT", RetryAfter: time.Second, Err: err}, d.attempt(audit, time.Now(), 0, provider.Outcome{Kind: provider.KindRetryLater, Err: err})
	}
	req := c.req
	// A request that may already have arrived is read as a re-send: no
	// answer to it concludes anything (see provider.OpResend).
	req.Resend = op == provider.OpResend
	start := time.Now()
	out := c.prov.Send(ctx, req)
	d.observe(c, audit, out, time.Since(start))
	return out, d.attempt(audit, start, time.Since(start), out)
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
	series := d.opts.Metrics.call(callLabels{c.row.Channel, op, string(out.Kind), provider.CodeLabel(out.Code)})
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
