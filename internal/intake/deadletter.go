package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
)

// Dead-letter headers. The first four are on every dead letter; the others
// only on a truncated one.
const (
	HeaderError             = "error"
	HeaderOriginalTopic     = "original_topic"
	HeaderOriginalPartition = "original_partition"
	HeaderOriginalOffset    = "original_offset"
	// HeaderTruncated is "true" when the dead letter's value is a prefix
	// of the original value.
	HeaderTruncated = "truncated"
	// HeaderOriginalSize is the decimal length of the original value.
	HeaderOriginalSize = "original_size"
	// HeaderOriginalSHA256 is the lower-case hex SHA-256 of the whole
	// original value.
	HeaderOriginalSHA256 = "original_sha256"
	// HeaderOriginalKeySize and HeaderOriginalKeySHA256 describe the
	// original key when it was cut too.
	HeaderOriginalKeySize   = "original_key_size"
	HeaderOriginalKeySHA256 = "original_key_sha256"
	// HeaderOriginalHeadersDropped counts original headers left out.
	HeaderOriginalHeadersDropped = "original_headers_dropped"
)

const (
	// minDLQMaxMessageBytes is the smallest DLQMaxMessageBytes accepted.
	minDLQMaxMessageBytes = 16 << 10
	// minDeadLetterBudget is the smallest size a dead letter refused as too
	// large is cut down to. A truncated dead letter always fits it (its
	// headers take at most about 2 KiB); a topic that refuses even that is
	// misconfigured, and the dead letter is dropped rather than retried.
	minDeadLetterBudget = 4 << 10
	// maxErrorHeader bounds the reason in the error header.
	maxErrorHeader = 1 << 10
	// When a dead letter must be cut, the original key keeps at most
	// maxTruncatedKey bytes and the original headers at most
	// maxTruncatedHeaders (both smaller for a smaller budget); the value
	// gets the rest.
	maxTruncatedKey     = 1 << 10
	maxTruncatedHeaders = 16 << 10
)

// deadLetter is one message on its way to the dead-letter topic.
type deadLetter struct {
	orig   kafka.Message // as consumed
	reason string
	msg    kafka.Message // as published
	budget int           // the most msg may take (kafkautil.MessageSize)
	// truncated: msg carries a cut copy; dropped: not even a cut copy was
	// accepted (see minDeadLetterBudget).
	truncated, dropped bool
}

// deadLetter wraps an unidentifiable message for the DLQ topic: the original
// key, value and headers, plus the headers of the dead-letter contract (api/asyncapi.yaml); cut to fit the
// topic when it would not (see fitDeadLetter).
func (in *Intake) deadLetter(m kafka.Message, reason string) *deadLetter {
	d := &deadLetter{orig: m, reason: reason, budget: kafkautil.BatchBytesFor(in.opts.DLQMaxMessageBytes)}
	d.msg, d.truncated = fitDeadLetter(m, reason, in.opts.DLQTopic, d.budget)
	return d
}

// fitDeadLetter builds the dead letter of m for topic. It is the original
// key, value and headers plus the error and original_* headers when that
// takes at most budget bytes (as kafkautil.MessageSize counts them).
// Otherwise it is truncated: the original key is cut to
// min(maxTruncatedKey, budget/16) bytes, the original headers are kept in
// order while they take at most min(maxTruncatedHeaders, budget/8) bytes,
// the value is cut to the bytes left, and the headers truncated: true,
// original_size and original_sha256 (and, for a cut key or dropped headers,
// original_key_size, original_key_sha256, original_headers_dropped) are
// added; the error header says so. For any budget of at least
// minDeadLetterBudget the result takes at most budget bytes.
func fitDeadLetter(m kafka.Message, reason, topic string, budget int) (kafka.Message, bool) {
	reason = cutUTF8(reason, maxErrorHeader)
	full := kafka.Message{Topic: topic, Key: m.Key, Value: m.Value,
		Headers: append(append(make([]kafka.Header, 0, len(m.Headers)+4), m.Headers...), provenance(m, reason)...)}
	if kafkautil.MessageSize(full) <= budget {
		return full, false
	}

	key := m.Key
	var extra []kafka.Header
	if keyCap := min(maxTruncatedKey, budget/16); len(key) > keyCap {
		sum := sha256.Sum256(key)
		extra = append(extra,
			kafka.Header{Key: HeaderOriginalKeySize, Value: []byte(strconv.Itoa(len(key)))},
			kafka.Header{Key: HeaderOriginalKeySHA256, Value: []byte(hex.EncodeToString(sum[:]))})
		key = key[:keyCap]
	}
	var headers []kafka.Header
	room, dropped := min(maxTruncatedHeaders, budget/8), 0
	for _, h := range m.Headers {
		if s := kafkautil.HeaderSize(h); s <= room {
			headers = append(headers, h)
			room -= s
		} else {
			dropped++
		}
	}
	if dropped > 0 {
		extra = append(extra, kafka.Header{Key: HeaderOriginalHeadersDropped, Value: []byte(strconv.Itoa(dropped))})
	}
	sum := sha256.Sum256(m.Value)
	note := func(kept int) string {
		return fmt.Sprintf("%s [dead letter truncated to fit the topic: value cut to its first %d of %d bytes; see original_size, original_sha256]",
			reason, kept, len(m.Value))
	}
	build := func(kept int) kafka.Message {
		hs := append(headers[:len(headers):len(headers)], provenance(m, note(kept))...)
		hs = append(hs,
			kafka.Header{Key: HeaderTruncated, Value: []byte("true")},
			kafka.Header{Key: HeaderOriginalSize, Value: []byte(strconv.Itoa(len(m.Value)))},
			kafka.Header{Key: HeaderOriginalSHA256, Value: []byte(hex.EncodeToString(sum[:]))})
		hs = append(hs, extra...)
		return kafka.Message{Topic: topic, Key: key, Value: m.Value[:kept], Headers: hs}
	}
	// Measured with the original length in the note: the kept length has
	// no more digits, so the final message is no larger.
	kept := max(0, min(len(m.Value), budget-kafkautil.MessageSize(build(0))+len(note(0))-len(note(len(m.Value)))))
	return build(kept), true
}

// provenance is the error and original_* headers of a dead letter of m.
func provenance(m kafka.Message, reason string) []kafka.Header {
	return []kafka.Header{
		{Key: HeaderError, Value: []byte(reason)},
		{Key: HeaderOriginalTopic, Value: []byte(m.Topic)},
		{Key: HeaderOriginalPartition, Value: []byte(strconv.Itoa(m.Partition))},
		{Key: HeaderOriginalOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	}
}

// cutUTF8 cuts s to at most n bytes, not inside a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sizeError reports an error that retrying the same bytes cannot cure: the
// broker's MESSAGE_TOO_LARGE or RECORD_LIST_TOO_LARGE, or kafka-go's own
// refusal of a message above the writer's BatchBytes.
func sizeError(err error) bool {
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)
}

// writeDeadLetters publishes the dead letters of a batch. Failures are
// retried with backoff for as long as they last (a dead letter is never
// lost to an outage), except that a dead letter refused as too large is
// not sent again as it was: it is cut to half its size and sent again at
// once, down to minDeadLetterBudget, below which it is dropped with an
// error log (the original stays on the commands topic at the logged
// offset). A dead letter the broker acknowledged is not sent again.
func (in *Intake) writeDeadLetters(ctx context.Context, letters []*deadLetter) error {
	pending := letters
	return in.retry(ctx, "dead_letter", func() error {
		for len(pending) > 0 {
			msgs := make([]kafka.Message, len(pending))
			for i, d := range pending {
				msgs[i] = d.msg
			}
			err := in.dlq.WriteMessages(ctx, msgs...)
			if err == nil {
				pending = nil
				return nil
			}
			var tooLarge kafka.MessageTooLargeError
			var perMsg kafka.WriteErrors
			switch {
			case errors.As(err, &tooLarge):
				// kafka-go refused one message before sending anything.
				i := indexOf(pending, tooLarge.Message)
				if i < 0 {
					return err
				}
				if !in.shrink(pending[i], err) {
					pending = append(pending[:i:i], pending[i+1:]...)
				}
			case errors.As(err, &perMsg) && len(perMsg) == len(pending):
				var next []*deadLetter
				var other error
				for i, e := range perMsg {
					switch {
					case e == nil: // acknowledged
					case sizeError(e):
						if in.shrink(pending[i], e) {
							next = append(next, pending[i])
						}
					default:
						next = append(next, pending[i])
						other = e
					}
				}
				pending = next
				if other != nil {
					return err // an outage: back off
				}
			case sizeError(err):
				var next []*deadLetter
				for _, d := range pending {
					if in.shrink(d, err) {
						next = append(next, d)
					}
				}
				pending = next
			default:
				return err
			}
		}
		return nil
	})
}

// indexOf finds the dead letter whose message m is a copy of (the header
// slice of each is its own).
func indexOf(letters []*deadLetter, m kafka.Message) int {
	for i, d := range letters {
		if len(m.Headers) > 0 && len(d.msg.Headers) > 0 && &d.msg.Headers[0] == &m.Headers[0] {
			return i
		}
	}
	return -1
}

// shrink cuts a dead letter refused as too large to half its size, or drops
// it when that would be under minDeadLetterBudget. It reports whether the
// dead letter is still to be sent.
func (in *Intake) shrink(d *deadLetter, cause error) bool {
	budget := min(d.budget, kafkautil.MessageSize(d.msg)) / 2
	if budget < minDeadLetterBudget {
		d.dropped = true
		sum := sha256.Sum256(d.orig.Value)
		in.log.Error("dead letter dropped: the dead-letter topic refuses even a truncated copy as too large; the original stays on its topic",
			"dlq_topic", in.opts.DLQTopic, "original_topic", d.orig.Topic, "original_partition", d.orig.Partition,
			"original_offset", d.orig.Offset, "original_size", len(d.orig.Value), "original_sha256", hex.EncodeToString(sum[:]),
			"reason", d.reason, "err", cause)
		return false
	}
	d.budget = budget
	d.msg, d.truncated = fitDeadLetter(d.orig, d.reason, in.opts.DLQTopic, budget)
	in.log.Warn("dead letter refused as too large; sending it truncated further",
		"dlq_topic", in.opts.DLQTopic, "original_topic", d.orig.Topic, "original_partition", d.orig.Partition,
		"original_offset", d.orig.Offset, "budget", budget, "err", cause)
	return true
}
