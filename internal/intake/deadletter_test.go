package intake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/testenv"
)

// TestOversizedDeadLetterDoesNotStall produces a value that the commands
// topic accepts but whose dead-letter copy (value plus the dead-letter
// headers) would exceed the dead-letter topic's max.message.bytes (Kafka's
// default, 1048588), then a valid command on the same partition. The dead
// letter must be published truncated, with the original size and SHA-256,
// and the valid command after it must be stored and its offset committed:
// one message never stops a partition.
func TestOversizedDeadLetterDoesNotStall(t *testing.T) {
	r := newRigTopics(t,
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
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// newRigTopics is newRig with topic-level configuration for the commands
// and dead-letter topics.
func newRigTopics(t *testing.T, commands, dlq map[string]string) *rig {
	t.Helper()
	r := newRigNoTopics(t)
	testenv.CreateTopicWithConfig(t, r.commands, 3, commands)
	testenv.CreateTopicWithConfig(t, r.dlq, 1, dlq)
	return r
}
