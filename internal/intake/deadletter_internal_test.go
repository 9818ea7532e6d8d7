package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/pii"
)

func headerMap(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

func TestFitDeadLetterKeepsWhatFits(t *testing.T) {
	m := kafka.Message{Topic: "cmds", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("not json"),
		Headers: []kafka.Header{{Key: "trace", Value: []byte("abc")}}}
	got, truncated := fitDeadLetter(m, "not JSON", "dlq", kafkautil.BatchBytesFor(kafkautil.DefaultMaxMessageBytes))
	if truncated {
		t.Fatal("a small message was truncated")
	}
	h := headerMap(got)
	if got.Topic != "dlq" || string(got.Key) != "k" || string(got.Value) != "not json" || h["trace"] != "abc" ||
		h[HeaderError] != "not JSON" || h[HeaderOriginalTopic] != "cmds" || h[HeaderOriginalPartition] != "2" || h[HeaderOriginalOffset] != "41" {
		t.Errorf("dead letter %+v headers %v", got, h)
	}
	for _, k := range []string{HeaderTruncated, HeaderOriginalSize, HeaderOriginalSHA256} {
		if _, ok := h[k]; ok {
			t.Errorf("untruncated dead letter has header %s", k)
		}
	}
}

func TestFitDeadLetterTruncates(t *testing.T) {
	value := make([]byte, 1_048_400)
	for i := range value {
		value[i] = byte(i * 7)
	}
	sum := sha256.Sum256(value)
	bigKey := bytes.Repeat([]byte("K"), 5000)
	bigHeader := kafka.Header{Key: "blob", Value: bytes.Repeat([]byte("h"), 200_000)}
	for _, tc := range []struct {
		name    string
		key     []byte
		headers []kafka.Header
		budget  int
	}{
		{"default limit", []byte("k"), []kafka.Header{{Key: "trace", Value: []byte("abc")}}, kafkautil.BatchBytesFor(kafkautil.DefaultMaxMessageBytes)},
		{"just over", []byte("k"), nil, len(value) + 50},
		{"big key and headers", bigKey, []kafka.Header{{Key: "trace", Value: []byte("abc")}, bigHeader, {Key: "after", Value: []byte("x")}}, kafkautil.BatchBytesFor(kafkautil.DefaultMaxMessageBytes)},
		{"smallest budget", bigKey, []kafka.Header{bigHeader}, minDeadLetterBudget},
		{"small budget", []byte("k"), nil, 20_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := kafka.Message{Topic: "cmds", Partition: 1, Offset: 7, Key: tc.key, Value: value, Headers: tc.headers}
			got, truncated := fitDeadLetter(m, strings.Repeat("é", 2000), "dlq", tc.budget)
			size := kafkautil.MessageSize(got)
			if !truncated {
				t.Fatal("not truncated")
			}
			if size > tc.budget {
				t.Errorf("dead letter of %d bytes exceeds the budget %d", size, tc.budget)
			}
			if size < tc.budget-64 && len(got.Value) < len(value) {
				t.Errorf("dead letter of %d bytes wastes the budget %d", size, tc.budget)
			}
			h := headerMap(got)
			if h[HeaderTruncated] != "true" || h[HeaderOriginalSize] != strconv.Itoa(len(value)) || h[HeaderOriginalSHA256] != hex.EncodeToString(sum[:]) {
				t.Errorf("headers truncated=%q original_size=%q original_sha256=%q", h[HeaderTruncated], h[HeaderOriginalSize], h[HeaderOriginalSHA256])
			}
			if h[HeaderOriginalTopic] != "cmds" || h[HeaderOriginalPartition] != "1" || h[HeaderOriginalOffset] != "7" {
				t.Errorf("provenance headers %v", h)
			}
			if !strings.Contains(h[HeaderError], "truncated") || !strings.Contains(h[HeaderError], "first "+strconv.Itoa(len(got.Value))+" of") {
				t.Errorf("error header does not tell the truncation: %.200q…", h[HeaderError])
			}
			if len(h[HeaderError]) > maxErrorHeader+200 {
				t.Errorf("error header of %d bytes", len(h[HeaderError]))
			}
			if !bytes.HasPrefix(value, got.Value) || len(got.Value) >= len(value) {
				t.Errorf("value is not a proper prefix (%d bytes)", len(got.Value))
			}
			if !bytes.HasPrefix(tc.key, got.Key) {
				t.Errorf("key is not a prefix of the original")
			}
			if len(got.Key) < len(tc.key) {
				ks := sha256.Sum256(tc.key)
				if h[HeaderOriginalKeySize] != strconv.Itoa(len(tc.key)) || h[HeaderOriginalKeySHA256] != hex.EncodeToString(ks[:]) {
					t.Errorf("cut key: original_key_size=%q original_key_sha256=%q", h[HeaderOriginalKeySize], h[HeaderOriginalKeySHA256])
				}
			}
			kept := 0
			for _, oh := range tc.headers {
				if _, ok := h[oh.Key]; ok {
					kept++
				}
			}
			if d := len(tc.headers) - kept; d > 0 && h[HeaderOriginalHeadersDropped] != strconv.Itoa(d) {
				t.Errorf("%d original headers dropped, header says %q", d, h[HeaderOriginalHeadersDropped])
			}
		})
	}
}

// sizeLimitWriter acknowledges messages up to limit bytes and refuses the
// others the way the broker does (per-message MESSAGE_TOO_LARGE), or, with
// client, the way kafka-go's own BatchBytes check does.
type sizeLimitWriter struct {
	limit  int
	client bool
	mu     sync.Mutex
	calls  int
	got    []kafka.Message
}

func (w *sizeLimitWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.client {
		for i, m := range msgs {
			if kafkautil.MessageSize(m) > w.limit {
				return kafka.MessageTooLargeError{Message: msgs[i]}
			}
		}
	}
	errs := make(kafka.WriteErrors, len(msgs))
	failed := false
	for i, m := range msgs {
		if kafkautil.MessageSize(m) > w.limit {
			errs[i], failed = kafka.MessageSizeTooLarge, true
			continue
		}
		w.got = append(w.got, m)
	}
	if failed {
		return errs
	}
	return nil
}

// TestSizeRefusalIsNotRetriedForever: a dead-letter topic (or writer)
// smaller than configured refuses the dead letters as too large; they are
// cut further and published, never resent as they were, and the good ones
// beside them are published once.
func TestSizeRefusalIsNotRetriedForever(t *testing.T) {
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("test"))
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []bool{false, true} {
		t.Run("client="+strconv.FormatBool(client), func(t *testing.T) {
			w := &sizeLimitWriter{limit: 100_000, client: client}
			in, err := New(nil, nil, w, Options{Keys: keys, DLQTopic: "dlq"})
			if err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte{0xff}, 900_000)
			letters := []*deadLetter{
				in.deadLetter(kafka.Message{Topic: "c", Offset: 1, Value: []byte("small")}, "not JSON"),
				in.deadLetter(kafka.Message{Topic: "c", Offset: 2, Value: big}, "not JSON"),
				in.deadLetter(kafka.Message{Topic: "c", Offset: 3, Value: []byte("small too")}, "not JSON"),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := in.writeDeadLetters(ctx, letters); err != nil {
				t.Fatalf("writeDeadLetters: %v (after %d calls)", err, w.calls)
			}
			if len(w.got) != 3 {
				t.Fatalf("%d dead letters published, want 3", len(w.got))
			}
			if w.calls > 6 {
				t.Errorf("%d write calls", w.calls)
			}
			for _, m := range w.got {
				h := headerMap(m)
				if h[HeaderOriginalOffset] == "2" {
					if h[HeaderTruncated] != "true" || h[HeaderOriginalSize] != "900000" || kafkautil.MessageSize(m) > w.limit {
						t.Errorf("big dead letter: %d bytes, headers %v", kafkautil.MessageSize(m), h[HeaderTruncated])
					}
				} else if h[HeaderTruncated] != "" {
					t.Errorf("small dead letter %s truncated", h[HeaderOriginalOffset])
				}
			}
		})
	}
}

// TestSizeRefusalOfEverythingDrops: a topic that refuses even the smallest
// truncated copy gets nothing, and the step ends instead of retrying.
func TestSizeRefusalOfEverythingDrops(t *testing.T) {
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("test"))
	if err != nil {
		t.Fatal(err)
	}
	w := &sizeLimitWriter{limit: 100}
	in, err := New(nil, nil, w, Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	d := in.deadLetter(kafka.Message{Topic: "c", Value: bytes.Repeat([]byte("x"), 50_000)}, "not JSON")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.writeDeadLetters(ctx, []*deadLetter{d}); err != nil {
		t.Fatalf("writeDeadLetters: %v", err)
	}
	if !d.dropped || len(w.got) != 0 {
		t.Errorf("dropped=%v, %d published", d.dropped, len(w.got))
	}
}

// TestOutageIsStillRetried: a non-size failure keeps the dead letters, and
// those already acknowledged are not sent again.
func TestOutageIsStillRetried(t *testing.T) {
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("test"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent []string
	calls := 0
	w := writerFunc(func(_ context.Context, msgs ...kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 { // the second message's partition is down
			for _, m := range msgs[:1] {
				sent = append(sent, string(m.Value))
			}
			return kafka.WriteErrors{nil, kafka.LeaderNotAvailable}
		}
		if calls < 4 {
			return errors.New("broker down")
		}
		for _, m := range msgs {
			sent = append(sent, string(m.Value))
		}
		return nil
	})
	in, err := New(nil, nil, w, Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	letters := []*deadLetter{
		in.deadLetter(kafka.Message{Value: []byte("a")}, "x"),
		in.deadLetter(kafka.Message{Value: []byte("b")}, "x"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := in.writeDeadLetters(ctx, letters); err != nil {
		t.Fatal(err)
	}
	if strings.Join(sent, ",") != "a,b" || calls != 4 {
		t.Errorf("sent %v in %d calls, want a,b in 4", sent, calls)
	}
}

type writerFunc func(context.Context, ...kafka.Message) error

func (f writerFunc) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return f(ctx, msgs...)
}
