// Package deadletter reads the intake's dead-letter topic and replays a
// dead letter to the commands topic, by the same rules for every front end
// (withdrawctl dlq, the operator console):
//
//   - a replay re-publishes the original bytes, or a fixed version of them;
//   - bytes that still cannot be identified as a command are refused (they
//     would only be dead-lettered again) unless forced;
//   - a dead letter truncated to fit its topic holds only the start of the
//     original: only a fixed version replays it, never the cut bytes;
//   - the key is the original one (or the fixed command's out_request_no);
//     the intake's error/original_* headers are dropped, the others kept,
//     and replayed_from=<topic>/<partition>@<offset> is added.
//
// Replaying a command that was already stored is harmless: the intake
// recognises the same key and parameters as a duplicate.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// intakeHeaders are the headers the intake adds to a dead letter; a replay
// drops them. The truncated and original_size/original_sha256 ones are only
// on a dead letter cut to fit its topic (docs/intake.md).
var intakeHeaders = map[string]bool{"error": true, "original_topic": true, "original_partition": true, "original_offset": true,
	"truncated": true, "original_size": true, "original_sha256": true,
	"original_key_size": true, "original_key_sha256": true, "original_headers_dropped": true}

// Letter is one dead letter.
type Letter struct {
	kafkautil.Record
}

// Error is the intake's reason for dead-lettering it.
func (l *Letter) Error() string { return l.Header("error") }

// From is where it came from: topic/partition@offset.
func (l *Letter) From() string {
	return l.Header("original_topic") + "/" + l.Header("original_partition") + "@" + l.Header("original_offset")
}

// Truncated reports whether it holds only the start of the original.
func (l *Letter) Truncated() bool { return l.Header("truncated") == "true" }

// Original describes what a truncated dead letter lacks: "-" for a
// complete one.
func (l *Letter) Original() string {
	if !l.Truncated() {
		return "-"
	}
	s := fmt.Sprintf("TRUNCATED: value %s bytes sha256=%s", l.Header("original_size"), l.Header("original_sha256"))
	if k := l.Header("original_key_size"); k != "" {
		s += fmt.Sprintf("; key %s bytes sha256=%s", k, l.Header("original_key_sha256"))
	}
	if n := l.Header("original_headers_dropped"); n != "" {
		s += "; " + n + " header(s) dropped"
	}
	return s
}

// Preview quotes the first n bytes of v.
func Preview(v []byte, n int) string {
	if len(v) <= n {
		return strconv.Quote(string(v))
	}
	return strconv.Quote(string(v[:n])) + fmt.Sprintf("… (%d bytes)", len(v))
}

// Topics names the brokers and the two topics.
type Topics struct {
	Brokers       []string
	DLQ, Commands string
}

// List reads at most the last `limit` dead letters of each partition (0:
// all), partition by partition, oldest first, and the number each
// partition holds in all.
func (t Topics) List(ctx context.Context, limit int) ([]Letter, int64, error) {
	client, done := kafkautil.Client(t.Brokers)
	defer done()
	ps, err := kafkautil.Partitions(ctx, client, t.DLQ)
	if err != nil {
		return nil, 0, err
	}
	bnd, err := kafkautil.Bounds(ctx, client, t.DLQ, ps)
	if err != nil {
		return nil, 0, err
	}
	var out []Letter
	var total int64
	for _, p := range ps {
		first, last := bnd[p][0], bnd[p][1]
		total += last - first
		if limit > 0 && last-first > int64(limit) {
			first = last - int64(limit)
		}
		for off := first; off < last; {
			recs, err := kafkautil.Fetch(ctx, client, t.DLQ, p, off, 100*time.Millisecond)
			if err != nil {
				return out, total, err
			}
			if len(recs) == 0 {
				break // compacted or transactional markers: nothing more to read
			}
			for _, r := range recs {
				if r.Offset >= last {
					break
				}
				out = append(out, Letter{r})
				off = r.Offset + 1
			}
		}
	}
	return out, total, nil
}

// Count is the number of dead letters the topic holds.
func (t Topics) Count(ctx context.Context) (int64, error) {
	client, done := kafkautil.Client(t.Brokers)
	defer done()
	ps, err := kafkautil.Partitions(ctx, client, t.DLQ)
	if err != nil {
		return 0, err
	}
	bnd, err := kafkautil.Bounds(ctx, client, t.DLQ, ps)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, b := range bnd {
		n += b[1] - b[0]
	}
	return n, nil
}

// ErrNotFound: no dead letter at that place.
var ErrNotFound = errors.New("no dead letter")

// Get reads one dead letter; partition < 0 means the only partition.
func (t Topics) Get(ctx context.Context, partition int, offset int64) (*Letter, error) {
	client, done := kafkautil.Client(t.Brokers)
	defer done()
	ps, err := kafkautil.Partitions(ctx, client, t.DLQ)
	if err != nil {
		return nil, err
	}
	if partition < 0 {
		if len(ps) != 1 {
			return nil, fmt.Errorf("%s has %d partitions: the partition is required", t.DLQ, len(ps))
		}
		partition = ps[0]
	}
	bnd, err := kafkautil.Bounds(ctx, client, t.DLQ, []int{partition})
	if err != nil {
		return nil, err
	}
	if b, ok := bnd[partition]; !ok || offset < b[0] || offset >= b[1] {
		return nil, fmt.Errorf("%w at %s/%d@%d (the partition holds offsets %d to %d)", ErrNotFound, t.DLQ, partition, offset, b[0], b[1]-1)
	}
	recs, err := kafkautil.Fetch(ctx, client, t.DLQ, partition, offset, 100*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || recs[0].Offset != offset {
		return nil, fmt.Errorf("%w at %s/%d@%d", ErrNotFound, t.DLQ, partition, offset)
	}
	return &Letter{recs[0]}, nil
}

// Refused is a replay the rules do not allow.
type Refused struct{ Reason string }

func (e *Refused) Error() string { return e.Reason }

// Check applies the replay rules to replaying l, or `fixed` instead of its
// bytes when not nil: a *Refused error when the rules refuse it, and
// otherwise warnings (a command that will be rejected, bytes replayed by
// force).
func Check(l *Letter, fixed []byte, force bool) (warnings []string, err error) {
	if l.Truncated() && fixed == nil {
		return nil, &Refused{fmt.Sprintf("the dead letter holds only the first %d of %s bytes (original_sha256 %s); the original is at %s: replay a fixed or recovered version",
			len(l.Value), l.Header("original_size"), l.Header("original_sha256"), l.From())}
	}
	value := l.Value
	if fixed != nil {
		value = fixed
	}
	cmd, derr := withdrawal.Decode(value)
	var und *withdrawal.Undecodable
	var rej *withdrawal.Rejection
	switch {
	case errors.As(derr, &und) && !force:
		return nil, &Refused{fmt.Sprintf("still not a command (%s); fix it, or force the replay", und.Reason)}
	case errors.As(derr, &und):
		warnings = append(warnings, fmt.Sprintf("replaying bytes that are not a command (%s): forced (--force)", und.Reason))
	case errors.As(derr, &rej):
		warnings = append(warnings, fmt.Sprintf("the command will be rejected (reason_code=%s): %s", rej.Code, rej.Reason))
	case derr == nil:
		if r := withdrawal.Validate(cmd); r != nil {
			warnings = append(warnings, fmt.Sprintf("the command will be rejected (reason_code=%s): %s", r.Code, r.Reason))
		}
	}
	return warnings, nil
}

// Replayed says where a replay landed.
type Replayed struct {
	From      string // dlq-topic/partition@offset
	Topic     string
	Partition int
	Offset    int64
	Warnings  []string
}

// Replay re-publishes l (or `fixed` instead of its bytes) to the commands
// topic when Check allows it.
func (t Topics) Replay(ctx context.Context, l *Letter, fixed []byte, force bool) (*Replayed, error) {
	warnings, err := Check(l, fixed, force)
	if err != nil {
		return nil, err
	}
	value, key := l.Value, l.Key
	if fixed != nil {
		value = fixed
		if cmd, _ := withdrawal.Decode(fixed); cmd != nil {
			key = []byte(cmd.OutRequestNo) // the fixed command's key, like upstream's
		}
	}
	var headers []kafka.Header
	for _, h := range l.Headers {
		if !intakeHeaders[h.Key] {
			headers = append(headers, h)
		}
	}
	from := fmt.Sprintf("%s/%d@%d", t.DLQ, l.Partition, l.Offset)
	headers = append(headers, kafka.Header{Key: "replayed_from", Value: []byte(from)})
	p, off, err := kafkautil.Produce(ctx, t.Brokers, t.Commands, key, value, headers)
	if err != nil {
		return nil, err
	}
	return &Replayed{From: from, Topic: t.Commands, Partition: p, Offset: off, Warnings: warnings}, nil
}
