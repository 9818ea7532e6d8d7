package intake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestIntakeDeadLetters: the largest messages and commands pass through
// the intake on real Kafka, the dead-letter topic's size limit included,
// and never stop a partition.
func TestIntakeDeadLetters(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and topics, created with the
	// topic-level configuration of the commands and dead-letter topics.
	setup := func(t *testing.T, commands, dlq map[string]string) *rig {
		t.Helper()
		r := newRig(t)
		testenv.CreateTopicWithConfig(t, r.commands, 3, commands)
		testenv.CreateTopicWithConfig(t, r.dlq, 1, dlq)
		return r
	}

	// Produces a value that the commands topic accepts but whose
	// dead-letter copy (value plus the dead-letter headers) would exceed
	// the dead-letter topic's max.message.bytes (Kafka's default, 1048588),
	// then a valid command on the same partition. The dead letter must be
	// published truncated, with the original size and SHA-256, and the
	// valid command after it must be stored and its offset committed: one
	// message never stops a partition.
	t.Run("OversizedDeadLetterDoesNotStall", func(t *testing.T) {
		t.Parallel()
		r := setup(t,
			map[string]string{"max.message.bytes": "2097152"},                                      // commands: takes the big value
			map[string]string{"max.message.bytes": strconv.Itoa(kafkautil.DefaultMaxMessageBytes)}, // dlq: Kafka's default
		)

		const size = 1_048_400
		big := make([]byte, size)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range big {
			big[i] = byte(rnd.UintN(256))
		}
		big[0] = 0xff // never JSON
		sum := sha256.Sum256(big)

		// Same key, so both land on one partition: the valid command is behind
		// the oversized one.
		w := kafkautil.NewWriter(r.brokers, r.commands)
		w.BatchBytes = 4 << 20
		defer w.Close()
		for _, v := range [][]byte{big, []byte(`{"channel":"wechatpay_platform","out_request_no":"AFTERBIG","amount":100,"account_type":"BASIC"}`)} {
			if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("one-partition"), Value: v}); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}

		stop := r.run("big")
		defer stop()
		r.waitCommitted("big", 2) // (c) offsets advance past both messages

		// (b) the command behind the oversized one was processed.
		if n := r.count("withdrawals", "out_request_no = ?", "AFTERBIG"); n != 1 {
			t.Errorf("%d withdrawals AFTERBIG, want 1: the partition stalled behind the oversized message", n)
		}

		// (a) the dead letter is a truncated copy that says so.
		dl := r.deadLetters(1)[0]
		h := map[string]string{}
		for _, kv := range dl.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h["truncated"] != "true" {
			t.Errorf("truncated header %q, want true (headers %v)", h["truncated"], keys(h))
		}
		if h["original_size"] != strconv.Itoa(size) {
			t.Errorf("original_size %q, want %d", h["original_size"], size)
		}
		if h["original_sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("original_sha256 %q, want %x", h["original_sha256"], sum)
		}
		if !strings.Contains(h["error"], "truncated") {
			t.Errorf("error header %q does not say the dead letter was truncated", h["error"])
		}
		if h["original_topic"] != r.commands || h["original_offset"] != "0" {
			t.Errorf("original_topic %q original_offset %q", h["original_topic"], h["original_offset"])
		}
		if len(dl.Value) == 0 || len(dl.Value) >= size || !bytes.Equal(dl.Value, big[:len(dl.Value)]) {
			t.Errorf("dead letter value: %d bytes, want a proper prefix of the original", len(dl.Value))
		}
		if string(dl.Key) != "one-partition" {
			t.Errorf("dead letter key %q", dl.Key)
		}
	})

	// Runs commands at the size limit through the intake and the outbox
	// relay on real Kafka: identifiable ones of exactly MaxCommandBytes
	// with nearly every byte in an echoed field (their rejection events are
	// the largest the intake makes), a valid command padded to exactly
	// MaxCommandBytes, and one byte more (a dead letter). Every offset is
	// committed and every event published to an events topic with Kafka's
	// default max.message.bytes.
	t.Run("LargestCommandsDoNotWedge", func(t *testing.T) {
		t.Parallel()
		maxBytes := map[string]string{"max.message.bytes": strconv.Itoa(kafkautil.DefaultMaxMessageBytes)}
		r := setup(t, maxBytes, maxBytes)
		events := testenv.UniqueTopic(t, "events")
		testenv.CreateTopicWithConfig(t, events, 3, maxBytes)

		n := withdrawal.MaxCommandBytes
		pad := func(prefix, suffix, c string) []byte {
			return []byte(prefix + strings.Repeat(c, n-len(prefix)-len(suffix)) + suffix)
		}
		var values [][]byte
		for i := range 4 {
			id := fmt.Sprintf("L%d", i)
			values = append(values,
				pad(`{"out_request_no":"`+id+`","channel":"`, `"}`, "<"),
				pad(`{"channel":"wechatpay_platform","out_request_no":"`+id, `"}`, "<"),
				pad(`{"channel":"wechatpay_platform","out_request_no":"`+id+`","account":"`, `"}`, "<"),
				pad(`{"channel":"wechatpay_platform","out_request_no":"`+id+`","`, `":1}`, "<"),
			)
		}
		rejected := len(values)
		values = append(values,
			pad(`{"channel":"wechatpay_platform","out_request_no":"PADDED","amount":100,"account_type":"BASIC"}`, "", " "),
			append(pad(`{"out_request_no":"OVER","channel":"`, `"}`, "<"), ' '),
		)
		if len(values[len(values)-2]) != n || len(values[len(values)-1]) != n+1 {
			t.Fatal("bad padding")
		}
		r.produce(values...)

		ctx, cancel := context.WithCancel(context.Background())
		_, waitRelay, err := relay.Start(ctx, r.db, r.brokers, events, "test", slog.Default(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); waitRelay() }()
		stop := r.run("largest")
		defer stop()
		r.waitCommitted("largest", int64(len(values)))

		if got := r.count("withdrawals", "out_request_no = ?", "PADDED"); got != 1 {
			t.Errorf("the padded valid command: %d withdrawals, want 1", got)
		}
		if got := r.count("outbox", "event_type = ?", "withdrawal.rejected"); got != int64(rejected) {
			t.Errorf("%d rejections, want %d", got, rejected)
		}
		dl := r.deadLetters(1)[0]
		for _, h := range dl.Headers {
			if h.Key == "truncated" {
				t.Error("a 64 KiB dead letter was truncated")
			}
			if h.Key == "error" && !strings.Contains(string(h.Value), "exceeds") {
				t.Errorf("dead letter error %q", h.Value)
			}
		}

		deadline := time.Now().Add(60 * time.Second)
		for {
			pending := r.count("outbox", "published_at = ?", store.NotPublished)
			if pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d events still unpublished after 60s", pending)
			}
			time.Sleep(200 * time.Millisecond)
		}
		var largest int64
		if err := r.db.Gorm().Table("outbox").Select("COALESCE(MAX(LENGTH(payload)), 0)").Scan(&largest).Error; err != nil {
			t.Fatal(err)
		}
		t.Logf("largest event payload: %d bytes", largest)
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
