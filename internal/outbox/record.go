// Package outbox turns withdrawal events into rows of the outbox table,
// written in the same transaction as the change they describe, and assigns
// each its ordering lane. Package relay (outbox/relay) publishes them to
// Kafka; writers of events need only this package, not kafka-go.
package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Lanes is the number of ordering lanes of the outbox. All events of one
// key share a lane, and a lane is relayed by one relay at a time, which keeps
// each withdrawal's events in version order on the topic. Fixed: changing it
// would move keys between lanes while their events are in flight.
const Lanes = 64

// LaneOf is the lane of a message key.
func LaneOf(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % Lanes)
}

// maxKeyLen is the width of outbox.event_key.
const maxKeyLen = 64

// Record turns an event into an outbox row. The Kafka key is the
// withdrawal id; a rejection, which has no withdrawal, is keyed by its
// out_request_no (hashed when longer than 64 bytes) so that upstream finds it on the partition of its command's
// key.
func Record(ev withdrawal.Event, now time.Time) (store.OutboxEvent, error) {
	payload, err := json.Marshal(&ev)
	if err != nil {
		return store.OutboxEvent{}, fmt.Errorf("encode event %s: %w", ev.EventID, err)
	}
	key := ev.WithdrawalID
	if key == "" {
		key = ev.OutRequestNo
		if len(key) > maxKeyLen {
			// An invalid command may carry an out_request_no of any length;
			// its rejection must still fit the column, or it would poison the
			// intake batch forever.
			sum := sha256.Sum256([]byte(key))
			key = hex.EncodeToString(sum[:])
		}
	}
	return store.OutboxEvent{
		EventID:      ev.EventID,
		WithdrawalID: ev.WithdrawalID,
		EventKey:     key,
		Lane:         LaneOf(key),
		EventType:    string(ev.Type),
		Version:      ev.Version,
		Payload:      payload,
		CreatedAt:    now,
	}, nil
}
