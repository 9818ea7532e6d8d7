package dispatch

import (
	"context"
	"errors"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Recording provider answers in batches. At full load a dispatcher finishes
// a provider call every couple of milliseconds; one transaction per answer
// spent more of the database's CPU on BEGIN/COMMIT and single-row inserts
// than on the changes themselves. Answers that finish while a transaction
// is running are written together in the next one: each keeps its own
// guarded UPDATE, and their events and audit rows go in two inserts. No
// answer waits for company: a lone answer is written at once.

const (
	// recorders is how many batch transactions may run at once, so that one
	// waiting on its commit's fsync does not hold up the next batch.
	recorders = 2
	// maxRecordBatch bounds a batch's transaction (and its row locks).
	maxRecordBatch = 64
)

// recordJob is one answer waiting to be written.
type recordJob struct {
	c      claimed
	change transition.Change
	done   chan error
}

// startRecorders runs the batch writers until stop is closed; record sends
// them its answers while they run. The returned function waits for them.
func (d *Dispatcher) startRecorders(ctx context.Context, stop <-chan struct{}) (wait func()) {
	jobs := make(chan recordJob)
	d.mu.Lock()
	d.records = jobs
	d.mu.Unlock()
	exited := make(chan struct{}, recorders)
	for range recorders {
		go func() {
			defer func() { exited <- struct{}{} }()
			for {
				var batch []recordJob
				select {
				case j := <-jobs:
					batch = append(batch, j)
				case <-stop:
					return
				}
			more:
				for len(batch) < maxRecordBatch {
					select {
					case j := <-jobs:
						batch = append(batch, j)
					default:
						break more
					}
				}
				d.recordBatch(ctx, batch)
			}
		}()
	}
	return func() {
		for range recorders {
			<-exited
		}
		d.mu.Lock()
		d.records = nil
		d.mu.Unlock()
	}
}

// record writes the change if this instance still holds the claim, through
// the batch writers when they run (inside Run), else in a transaction of its
// own. If the lease was lost (it expired into UNKNOWN), a definite answer
// still applies where the state machine allows it; otherwise only the audit
// rows are kept.
func (d *Dispatcher) record(ctx context.Context, c claimed, change transition.Change) error {
	for _, a := range change.Attempts {
		if a.Operation != OpQuery {
			change.AddSubmissions++
		}
	}
	d.mu.Lock()
	jobs := d.records
	d.mu.Unlock()
	if jobs == nil {
		return d.recordAlone(ctx, recordJob{c: c, change: change})
	}
	j := recordJob{c: c, change: change, done: make(chan error, 1)}
	jobs <- j
	return <-j.done
}

// recordBatch writes a batch in one transaction and reports to each job. If
// the transaction fails, nothing of it was written, and each answer is
// written again on its own, so that one bad answer never costs the others.
func (d *Dispatcher) recordBatch(ctx context.Context, batch []recordJob) {
	err := d.write(ctx, batch)
	if len(batch) > 1 {
		d.opts.Metrics.recordBatch.Observe(float64(len(batch)))
	}
	for _, j := range batch {
		switch {
		case err == nil:
			j.done <- nil
		case len(batch) == 1:
			j.done <- err
		default:
			j.done <- d.recordAlone(ctx, j)
		}
	}
}

// recordAlone writes one answer in a transaction of its own.
func (d *Dispatcher) recordAlone(ctx context.Context, j recordJob) error {
	return d.write(ctx, []recordJob{j})
}

// write applies the answers of jobs in one transaction. Several answers
// are one guarded UPDATE (transition.ApplyAll); if any of their claims was
// lost meanwhile, the whole batch fails and recordBatch writes each answer
// on its own, through recordIn's handling of a lost claim.
func (d *Dispatcher) write(ctx context.Context, jobs []recordJob) error {
	now := d.opts.Now()
	return d.db.InTx(ctx, func(tx *store.Tx) error {
		var rows transition.Writes
		if len(jobs) == 1 {
			if err := d.recordIn(ctx, tx, jobs[0], now, &rows); err != nil {
				return err
			}
		} else {
			items := make([]transition.Pending, len(jobs))
			for i, j := range jobs {
				// The claim snapshot is the row as long as the lease is
				// ours, which the guarded UPDATE checks.
				w := j.c.row
				items[i] = transition.Pending{W: &w, C: j.change}
			}
			if err := transition.ApplyAll(ctx, tx, items, now, &rows); err != nil {
				return err
			}
		}
		return rows.Flush(ctx, tx)
	})
}

// recordIn applies one answer inside tx, gathering its event and audit rows
// into rows.
func (d *Dispatcher) recordIn(ctx context.Context, tx *store.Tx, j recordJob, now time.Time, rows *transition.Writes) error {
	c, change := j.c, j.change
	// The common case needs no lock: the claim snapshot is the row as long
	// as the lease is ours, which the guarded UPDATE checks.
	w := c.row
	_, err := transition.ApplyDeferred(ctx, tx, &w, change, now, rows)
	if !errors.Is(err, transition.ErrStale) {
		return err
	}
	cur, err := transition.Lock(ctx, tx, c.row.ID)
	if err != nil {
		return err
	}
	lateButDefinite := cur.State != string(withdrawal.StateSubmitting) &&
		change.To != transition.Resting(cur) && withdrawal.CanTransition(withdrawal.State(cur.State), change.To)
	if !lateButDefinite {
		d.log.Warn("claim lost before the answer was recorded; keeping the audit only",
			"withdrawal_id", cur.ID, "out_request_no", cur.OutRequestNo, "state", cur.State, "answer", change.To)
		if change.AddSubmissions > 0 {
			if err := store.AddSubmissions(ctx, tx, cur.ID, change.AddSubmissions, now); err != nil {
				return err
			}
		}
		rows.AddAttempts(cur.ID, change.Attempts)
		return nil
	}
	_, err = transition.ApplyDeferred(ctx, tx, cur, change, now, rows)
	if errors.Is(err, transition.ErrStale) {
		return nil
	}
	return err
}
