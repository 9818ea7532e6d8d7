// Package relay publishes the outbox's rows to the events topic in each
// withdrawal's order (one relay per lane at a time, leases in the database,
// acks=all), marks them published, and purges old ones. Any number of
// relays may run; they share the lanes.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/store"
)

// Writer publishes to the events topic: a *kafka.Writer with RequiredAcks
// set to RequireAll and its Topic set (see NewWriter). When a call fails,
// the relay reads kafka.WriteErrors to learn which messages were
// acknowledged; any other error counts as "none was".
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Relay publishes outbox rows to Kafka in per-key order; see the package
// documentation in docs/relay.md. Create it with New and call Run.
type Relay struct {
	db     *store.DB
	w      Writer
	opts   Options
	log    *slog.Logger
	m      *Metrics
	leases *leases
	owner  string

	wake    []chan struct{} // one per worker
	running atomic.Bool

	// What Stats reports.
	published    atomic.Int64
	produceCalls atomic.Int64

	mu       sync.Mutex
	workErr  []error // last error of each worker, nil after a success
	leaseErr error
}

// New builds a relay over a migrated database and a writer of the
// events topic. Several relays (in one or many processes) may run against
// the same database; on SQLite run one.
func New(db *store.DB, w Writer, opts Options) (*Relay, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	owner := ownerName(opts.Instance)
	r := &Relay{
		db: db, w: w, opts: opts, m: opts.Metrics, owner: owner,
		log:     opts.Logger.With("component", "outbox-relay", "owner", owner),
		leases:  newLeases(db, owner, opts.LeaseTTL),
		wake:    make([]chan struct{}, opts.Workers),
		workErr: make([]error, opts.Workers),
	}
	for i := range r.wake {
		r.wake[i] = make(chan struct{}, 1)
	}
	return r, nil
}

// ownerName is instance plus a random suffix, within outbox_lanes.owner's 64
// characters.
func ownerName(instance string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := "-" + hex.EncodeToString(b)
	if len(instance) > 64-len(suffix) {
		instance = instance[:64-len(suffix)]
	}
	return instance + suffix
}

// Owner is the name under which this relay leases lanes.
func (r *Relay) Owner() string { return r.owner }

// Stats are counts of one relay's work since New, for a harness that
// drives a relay and watches it (the benchmarks). Its Metrics count the same
// for Prometheus, but may be shared with other relays.
type Stats struct {
	// Published is the number of events the broker acknowledged; an event
	// published again (after a failed mark, a crash) counts again.
	Published int64
	// ProduceCalls is the number of produce calls made, one per round of
	// distinct keys (see relayOnce), acknowledged or not.
	ProduceCalls int64
}

// Stats returns the relay's counts so far. It may be called at any time,
// also while Run runs.
func (r *Relay) Stats() Stats {
	return Stats{Published: r.published.Load(), ProduceCalls: r.produceCalls.Load()}
}

// Notify wakes the workers at once, e.g. after committing outbox rows, so
// that they need not wait for the next poll. It never blocks.
func (r *Relay) Notify() {
	for _, c := range r.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Ready reports why the relay is not making progress: the last failed
// publish (the broker is unreachable or refuses), claim or lease renewal;
// nil once that step has succeeded again. /readyz serves it. A relay with
// nothing to publish does not contact the broker, so pair it with a broker
// ping for an idle process.
func (r *Relay) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leaseErr != nil {
		return fmt.Errorf("outbox relay: %w", r.leaseErr)
	}
	for _, err := range r.workErr {
		if err != nil {
			return fmt.Errorf("outbox relay: %w", err)
		}
	}
	return nil
}

func (r *Relay) setWorkErr(i int, err error) {
	r.mu.Lock()
	r.workErr[i] = err
	r.mu.Unlock()
}

func (r *Relay) setLeaseErr(err error) {
	r.mu.Lock()
	r.leaseErr = err
	r.mu.Unlock()
}

// Run relays until ctx is cancelled, then finishes the batches in flight
// (within ShutdownGrace), hands its lanes back and returns nil. Errors of
// the database or the broker are retried with backoff and reported by
// Ready; Run itself fails only when called twice.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("outbox relay: Run called twice")
	}
	defer r.running.Store(false)

	if err := r.leases.ensureLanes(ctx); err != nil {
		r.log.Warn("lane rows check failed", "err", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.leaseLoop(ctx) })
	if r.opts.StatsInterval > 0 {
		wg.Go(func() { r.statsLoop(ctx) })
	}
	for i := range r.opts.Workers {
		wg.Go(func() { r.worker(ctx, i) })
	}
	wg.Wait()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.leases.releaseAll(rctx); err != nil {
		r.log.Warn("lanes not handed back; they free up when their leases expire", "err", err)
	}
	r.m.lanesHeld.Set(0)
	return nil
}

// leaseLoop renews and rebalances the lane leases every LeaseTTL/4.
func (r *Relay) leaseLoop(ctx context.Context) {
	every := r.opts.LeaseTTL / 4
	failures := 0
	for {
		before := r.leases.held()
		err := r.leases.tick(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := every
		if err != nil {
			failures++
			r.m.errors.WithLabelValues(OpLease).Inc()
			r.log.Warn("lane lease round failed", "err", err)
			wait = min(every, r.backoff(failures))
		} else {
			failures = 0
		}
		r.setLeaseErr(err)
		held := r.leases.held()
		r.m.lanesHeld.Set(float64(held))
		if held != before {
			r.log.Info("lanes held", "lanes", held, "before", before)
			r.Notify()
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// statsLoop refreshes the pending gauges.
func (r *Relay) statsLoop(ctx context.Context) {
	for {
		count, oldest, err := store.OutboxBacklog(ctx, r.db)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.m.errors.WithLabelValues(OpStats).Inc()
			r.log.Warn("pending outbox stats failed", "err", err)
		} else {
			r.m.pending.Set(float64(count))
			age := 0.0
			if !oldest.IsZero() {
				age = math.Max(0, time.Since(oldest).Seconds())
			}
			r.m.oldestAge.Set(age)
		}
		if !sleep(ctx, r.opts.StatsInterval) {
			return
		}
	}
}

// worker publishes the lanes l with l % Workers == i that this relay holds.
//
// Marking a batch published overlaps with claiming and publishing the next
// one: at most one mark is in flight, and the next claim leaves out the
// rows it is marking (they are acknowledged; sending them again would only
// make duplicates). Rows the broker did not acknowledge are never left out.
func (r *Relay) worker(ctx context.Context, i int) {
	var mine []int
	for lane := i; lane < outbox.Lanes; lane += r.opts.Workers {
		mine = append(mine, lane)
	}
	var marking *markJob
	waitMark := func() error {
		if marking == nil {
			return nil
		}
		err := <-marking.done
		marking = nil
		return err
	}
	defer waitMark() //nolint:errcheck // logged by the job
	failures := 0
	backlog := false // the last batch reported more
	for ctx.Err() == nil {
		lanes, deadline := r.leases.acquire(mine, r.opts.LeaseTTL/2)
		if len(lanes) == 0 {
			if err := waitMark(); err != nil {
				r.setWorkErr(i, err)
			}
			r.idle(ctx, i, r.opts.PollInterval)
			continue
		}
		var exclude map[int][]int64
		if marking != nil {
			exclude = marking.byLane
		}
		acked, more, err := r.relayOnce(ctx, lanes, deadline, exclude, backlog)
		backlog = more && err == nil
		r.leases.release(lanes)
		if merr := waitMark(); merr != nil && err == nil {
			err = merr
		}
		if len(acked) > 0 {
			marking = r.startMark(ctx, acked)
		}
		r.setWorkErr(i, err)
		switch {
		case err != nil:
			failures++
			if ctx.Err() == nil {
				r.log.Warn("outbox relay batch failed; retrying", "lanes", len(lanes), "err", err, "attempt", failures)
			}
			sleep(ctx, r.backoff(failures))
		case more:
			failures = 0 // straight on: a backlog
		default:
			failures = 0
			if err := waitMark(); err != nil {
				r.setWorkErr(i, err)
			}
			r.idle(ctx, i, r.opts.PollInterval)
		}
	}
}

// markJob marks acknowledged rows published in the background.
type markJob struct {
	byLane map[int][]int64
	done   chan error
}

func (r *Relay) startMark(ctx context.Context, acked []store.PendingEvent) *markJob {
	job := &markJob{byLane: map[int][]int64{}, done: make(chan error, 1)}
	ids := make([]int64, len(acked))
	for i, row := range acked {
		ids[i] = row.ID
		job.byLane[row.Lane] = append(job.byLane[row.Lane], row.ID)
	}
	go func() {
		// Marking needs no lease (it only records what the broker holds),
		// and a row left unmarked is published again: it gets its own
		// time, shutdown or not.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err := store.MarkPublished(mctx, r.db, ids, time.Now())
		if err != nil {
			r.m.errors.WithLabelValues(OpMark).Inc()
			// They are on the topic and will be published again: a
			// duplicate, which consumers recognise by event_id.
			r.log.Warn("acknowledged rows not marked published; they will be sent again", "rows", len(ids), "err", err)
		}
		job.done <- err
	}()
	return job
}

func (r *Relay) idle(ctx context.Context, i int, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.wake[i]:
	}
}

// backoff is exponential from 100ms up to MaxBackoff, with jitter.
func (r *Relay) backoff(failures int) time.Duration {
	d := 100 * time.Millisecond << min(failures-1, 10)
	d = min(d, r.opts.MaxBackoff)
	return d/2 + mrand.N(d/2+1)
}

// relayOnce claims pending rows of lanes (leaving out those of exclude,
// being marked) and publishes them; it returns the acknowledged rows, to be
// marked published. more reports that a lane may hold more rows; backlog
// says the previous call reported more (store.PendingOutbox then skips its
// probe).
//
// Publishing goes in rounds: a round takes the first pending row of every
// key (they are in id order, which per key is version order), and the next
// round starts only when the broker has answered the previous one. A key
// whose message failed drops out of the batch: nothing later of it is sent
// until that row is acknowledged, in a later batch. So no event is ever
// sent before its predecessor is on the topic, whatever kafka-go does with
// retries and batches inside one call.
func (r *Relay) relayOnce(ctx context.Context, lanes []int, deadline time.Time, exclude map[int][]int64, backlog bool) (acked []store.PendingEvent, more bool, err error) {
	perLane := max(r.opts.BatchSize/len(lanes), 1)
	rows, more, err := store.PendingOutbox(ctx, r.db, store.PendingRead{Lanes: lanes, PerLane: perLane, Exclude: exclude, Backlog: backlog})
	if err != nil {
		r.m.errors.WithLabelValues(OpClaim).Inc()
		return nil, false, err
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	r.m.batchSize.Observe(float64(len(rows)))

	// The batch finishes even if shutdown begins meanwhile (within
	// ShutdownGrace), and never runs past the lanes' lease.
	work, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(r.opts.ShutdownGrace, cancel) })
	defer stop()

	acked, err = r.publish(work, rows)
	if err != nil {
		return acked, false, err
	}
	return acked, more, nil
}

// publish sends rows in rounds of distinct keys and returns the rows the
// broker acknowledged, and the first error.
func (r *Relay) publish(ctx context.Context, rows []store.PendingEvent) (acked []store.PendingEvent, err error) {
	acked = make([]store.PendingEvent, 0, len(rows))
	failed := map[string]bool{}
	pending := rows
	var round, rest []store.PendingEvent
	var msgs []kafka.Message
	for len(pending) > 0 {
		round, rest = round[:0], rest[:0]
		inRound := make(map[string]bool, len(pending))
		for _, row := range pending {
			switch {
			case failed[row.EventKey]:
				// An earlier event of this key was not acknowledged.
			case inRound[row.EventKey]:
				rest = append(rest, row)
			default:
				inRound[row.EventKey] = true
				round = append(round, row)
			}
		}
		if len(round) == 0 {
			break
		}
		msgs = msgs[:0]
		for i := range round {
			msgs = append(msgs, r.message(&round[i]))
		}
		r.m.publishCalls.Inc()
		r.produceCalls.Add(1)
		werr := r.w.WriteMessages(ctx, msgs...)
		ackedAt := time.Now()
		ok := 0
		var perMsg kafka.WriteErrors
		if werr != nil && !(errors.As(werr, &perMsg) && len(perMsg) == len(msgs)) {
			perMsg = nil // the whole call failed
		}
		cause := werr
		for _, e := range perMsg {
			if e != nil {
				cause = e // one message's error, not the list of them all
				break
			}
		}
		for i := range round {
			if werr == nil || (perMsg != nil && perMsg[i] == nil) {
				ok++
				acked = append(acked, round[i])
				r.m.latency.Observe(math.Max(0, ackedAt.Sub(round[i].CreatedAt).Seconds()))
				continue
			}
			failed[round[i].EventKey] = true
		}
		r.m.published.Add(float64(ok))
		r.published.Add(int64(ok))
		if werr != nil {
			r.m.errors.WithLabelValues(OpPublish).Add(float64(len(round) - ok))
			if err == nil {
				err = fmt.Errorf("publish: %d of %d events not acknowledged: %w", len(round)-ok, len(round), cause)
			}
			if ok == 0 || ctx.Err() != nil {
				break // the broker is not taking anything now
			}
		}
		pending, rest = rest, pending
	}
	return acked, err
}

// message is the Kafka message of a row: key = event_key, value = payload,
// CloudEvents binary-mode headers plus event_id.
func (r *Relay) message(row *store.PendingEvent) kafka.Message {
	return kafka.Message{
		Key:   []byte(row.EventKey),
		Value: row.Payload,
		Headers: []kafka.Header{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte(row.EventID)},
			{Key: "ce_type", Value: []byte(row.EventType)},
			{Key: "ce_source", Value: []byte(r.opts.Source)},
			{Key: "ce_time", Value: []byte(row.CreatedAt.UTC().Format(time.RFC3339Nano))},
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "event_id", Value: []byte(row.EventID)},
		},
	}
}

// Purge deletes rows published more than olderThan ago (RetentionDefault
// when olderThan <= 0), PurgeBatch rows per statement with a pause between
// statements, and returns how many it deleted. Unpublished rows are never
// deleted. The poller's daily cron job calls it; any relay may, and several
// at once only share the work.
func (r *Relay) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan <= 0 {
		olderThan = RetentionDefault
	}
	cutoff := time.Now().UTC().Add(-olderThan)
	var total int64
	for {
		n, err := store.PurgePublished(ctx, r.db, cutoff, r.opts.PurgeBatch)
		total += n
		r.m.purged.Add(float64(n))
		if err != nil {
			r.m.errors.WithLabelValues(OpPurge).Inc()
			return total, err
		}
		if n == 0 {
			break
		}
		if !sleep(ctx, r.opts.PurgePause) {
			return total, ctx.Err()
		}
	}
	if total > 0 {
		r.log.Info("purged published outbox rows", "rows", total, "older_than", olderThan)
	}
	return total, nil
}

// sleep waits d or until ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
