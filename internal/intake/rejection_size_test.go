package intake

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// padTo makes a JSON object command of exactly n bytes from a prefix and a
// suffix around a run of the filler c (one byte each).
func padTo(n int, prefix, suffix, c string) string {
	return prefix + strings.Repeat(c, n-len(prefix)-len(suffix)) + suffix
}

// largestRejectable are commands of exactly MaxCommandBytes that are
// identified but rejected, each with nearly all of its bytes in a field the
// rejection echoes, made of '<' (six bytes once JSON-escaped).
func largestRejectable(n int, id string) map[string]string {
	return map[string]string{
		"channel":        padTo(n, `{"out_request_no":"`+id+`","channel":"`, `"}`, "<"),
		"out_request_no": padTo(n, `{"channel":"wechatpay_platform","out_request_no":"`+id, `"}`, "<"),
		"account":        padTo(n, `{"channel":"wechatpay_platform","out_request_no":"`+id+`","account":"`, `"}`, "<"),
		"unknown field":  padTo(n, `{"channel":"wechatpay_platform","out_request_no":"`+id+`","`, `":1}`, "<"),
		"field type":     padTo(n, `{"channel":"wechatpay_platform","out_request_no":"`+id+`","amount":"`, `"}`, "<"),
	}
}

// TestRejectionEventSize: the withdrawal.rejected event of the largest
// identifiable command stays far below what the relay's writer and the
// events topic take, so that it can never block its outbox lane; one byte
// more and the command is a dead letter instead.
func TestRejectionEventSize(t *testing.T) {
	in := &Intake{}
	limit := 6*(withdrawal.MaxCommandBytes+maxReasonBytes) + 2048                            // each byte at most six once JSON-escaped
	publishable := min(1_000_000, kafkautil.BatchBytesFor(kafkautil.DefaultMaxMessageBytes)) // relay.NewWriter's BatchBytes, the events topic
	if limit > publishable {
		t.Fatalf("6 × MaxCommandBytes does not fit an event message: %d > %d", limit, publishable)
	}
	now := time.Now()
	for name, v := range largestRejectable(withdrawal.MaxCommandBytes, "A1") {
		t.Run(name, func(t *testing.T) {
			if len(v) != withdrawal.MaxCommandBytes {
				t.Fatalf("command of %d bytes", len(v))
			}
			cmd, err := withdrawal.Decode([]byte(v))
			var r *withdrawal.Rejection
			switch {
			case errors.As(err, &r):
			case err != nil:
				t.Fatalf("Decode: %v", err)
			default:
				if r = in.validate(cmd); r == nil {
					t.Fatal("accepted")
				}
			}
			rec, err := outbox.Record(rejectionEvent(cmd, "hash", r, now), now)
			if err != nil {
				t.Fatal(err)
			}
			// The relay adds CloudEvents headers of a few hundred bytes.
			msg := kafka.Message{Key: []byte(rec.EventKey), Value: rec.Payload, Headers: []kafka.Header{{Key: "ce_headers", Value: make([]byte, 400)}}}
			if size := kafkautil.MessageSize(msg); size > limit {
				t.Errorf("%s: event of %d bytes (payload %d), more than %d", r.Code, size, len(rec.Payload), limit)
			}

			var und *withdrawal.Undecodable
			over := strings.Replace(v, "<", "<<", 1)
			if _, err := withdrawal.Decode([]byte(over)); !errors.As(err, &und) {
				t.Errorf("a command of %d bytes: %v, want a dead letter", len(over), err)
			}
		})
	}
}

// TestRejectionReasonBounded: a long reason is cut, at a character
// boundary; a long value is not quoted at all.
func TestRejectionReasonBounded(t *testing.T) {
	cmd := &withdrawal.Command{Channel: withdrawal.Channel(strings.Repeat("é", 5000)), OutRequestNo: "A"}
	r := (&Intake{}).validate(cmd)
	if ev := rejectionEvent(cmd, "", r, time.Now()); len(ev.Reason) > maxReasonBytes || strings.Contains(ev.Reason, "éé") {
		t.Errorf("reason of %d bytes: %.80q…", len(ev.Reason), ev.Reason)
	}
	long := &withdrawal.Rejection{Code: "C", Field: "f", Reason: strings.Repeat("é", 5000)}
	ev := rejectionEvent(cmd, "", long, time.Now())
	if len(ev.Reason) > maxReasonBytes || !strings.HasSuffix(ev.Reason, "…") || !strings.HasPrefix(ev.Reason, "f: é") || !utf8.ValidString(ev.Reason) {
		t.Errorf("reason of %d bytes: %.80q…", len(ev.Reason), ev.Reason)
	}
	short := rejectionEvent(&withdrawal.Command{Channel: "x", OutRequestNo: "A"}, "", &withdrawal.Rejection{Code: "C", Field: "f", Reason: "r"}, time.Now())
	if short.Reason != "f: r" {
		t.Errorf("short reason %q", short.Reason)
	}
}
