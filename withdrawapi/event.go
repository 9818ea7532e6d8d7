package withdrawapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EventType names what happened to a withdrawal: the event's type and its
// ce_type header.
type EventType string

// The event types.
const (
	EventAccepted  EventType = "withdrawal.accepted"
	EventRejected  EventType = "withdrawal.rejected"
	EventSubmitted EventType = "withdrawal.submitted"
	EventUnknown   EventType = "withdrawal.unknown"
	EventSucceeded EventType = "withdrawal.succeeded"
	EventFailed    EventType = "withdrawal.failed"
	EventReversed  EventType = "withdrawal.reversed"
)

// State is where a withdrawal stands.
type State string

// The states. SUBMITTING is only ever a previous state.
const (
	StateAccepted   State = "ACCEPTED"
	StateSubmitting State = "SUBMITTING"
	StateSubmitted  State = "SUBMITTED"
	StateUnknown    State = "UNKNOWN"
	StateSucceeded  State = "SUCCEEDED"
	StateFailed     State = "FAILED"
	StateReversed   State = "REVERSED"
	StateRejected   State = "REJECTED"
)

// Final reports whether nothing can change the state any more. SUCCEEDED is
// not final: a bank can still return a WeChat Pay withdrawal (REVERSED).
func (s State) Final() bool { return s == StateFailed || s == StateReversed || s == StateRejected }

// Event is one message of EventsTopic.
type Event struct {
	EventID        string    `json:"event_id"` // deduplicate by it: a redelivery has the same one
	Type           EventType `json:"type"`
	WithdrawalID   string    `json:"withdrawal_id"` // "" on a rejection
	Version        int       `json:"version"`       // 1, 2, 3… per withdrawal; 0 on a rejection
	Channel        Channel   `json:"channel"`
	Account        string    `json:"account"`
	OutRequestNo   string    `json:"out_request_no"`
	State          State     `json:"state"`
	PreviousState  State     `json:"previous_state"`
	ProviderStatus string    `json:"provider_status"`
	ProviderRef    string    `json:"provider_ref"`
	Amount         int64     `json:"amount"`      // fen
	ReasonCode     string    `json:"reason_code"` // a ReasonCode on a rejection; the provider's code otherwise
	Reason         string    `json:"reason"`
	OccurredAt     time.Time `json:"occurred_at"` // Beijing time (+08:00)
}

// IsRejection reports whether the event answers a command that created no
// withdrawal (withdrawal.rejected).
func (e *Event) IsRejection() bool { return e.Type == EventRejected }

// DecodeEvent decodes the value of one message of EventsTopic. Fields it
// does not know are ignored, so that a consumer keeps working when fields
// are added; an event without event_id or type, or with a rejection
// version on a withdrawal event, is an error.
func DecodeEvent(value []byte) (*Event, error) {
	var ev Event
	if err := json.Unmarshal(value, &ev); err != nil {
		return nil, fmt.Errorf("withdrawal event: %w", err)
	}
	switch {
	case ev.EventID == "":
		return nil, errors.New("withdrawal event: no event_id")
	case ev.Type == "":
		return nil, errors.New("withdrawal event: no type")
	case ev.Type != EventRejected && (ev.WithdrawalID == "" || ev.Version < 1):
		return nil, fmt.Errorf("withdrawal event %s: %s without withdrawal_id or version", ev.EventID, ev.Type)
	}
	return &ev, nil
}

// Order is how an event relates to what a consumer has applied.
type Order int

const (
	// Next: the event is the next version of its withdrawal (or a
	// rejection not seen before): apply it.
	Next Order = iota
	// Duplicate: already applied (a redelivery, or an older version):
	// skip it.
	Duplicate
	// Gap: versions between the last applied and this one were not seen:
	// an event was lost to this consumer (a skipped offset, a topic
	// compacted or expired). Re-read, or look the withdrawal up.
	Gap
)

func (o Order) String() string {
	switch o {
	case Next:
		return "next"
	case Duplicate:
		return "duplicate"
	case Gap:
		return "gap"
	}
	return fmt.Sprintf("Order(%d)", int(o))
}

// Follows reports how the event relates to lastApplied, the last version
// of its withdrawal the consumer applied (0 for none). A consumer that
// stores lastApplied with its own copy of the withdrawal, in the same
// transaction, needs nothing else to apply each event once and in order.
// Rejections have no versions: deduplicate them by EventID.
func (e *Event) Follows(lastApplied int) Order {
	switch {
	case e.Version <= lastApplied:
		return Duplicate
	case e.Version == lastApplied+1:
		return Next
	}
	return Gap
}

// Deduper is an in-memory Follows for consumers that keep no state of their
// own (tools, tests, a cache warmed from the start of the topic): it
// remembers the last version of every withdrawal and the event id of every
// rejection it saw, without bound. Not safe for concurrent use.
type Deduper struct {
	last       map[string]int
	rejections map[string]bool
}

// NewDeduper returns an empty Deduper.
func NewDeduper() *Deduper {
	return &Deduper{last: map[string]int{}, rejections: map[string]bool{}}
}

// Observe reports how the event relates to those observed before and
// records it unless it is a Duplicate. After a Gap, the event's version is
// the one remembered: the consumer decided what to do about the gap.
func (d *Deduper) Observe(e *Event) Order {
	if e.IsRejection() {
		if d.rejections[e.EventID] {
			return Duplicate
		}
		d.rejections[e.EventID] = true
		return Next
	}
	o := e.Follows(d.last[e.WithdrawalID])
	if o != Duplicate {
		d.last[e.WithdrawalID] = e.Version
	}
	return o
}
