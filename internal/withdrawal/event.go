package withdrawal

import (
	"crypto/sha1"
	"time"

	"github.com/google/uuid"
)

// EventType names what happened to a withdrawal. The values are the "type"
// field of the event contract and the CloudEvents ce_type header.
type EventType string

// The event types (api/schemas).
const (
	EventAccepted  EventType = "withdrawal.accepted"
	EventRejected  EventType = "withdrawal.rejected"
	EventSubmitted EventType = "withdrawal.submitted"
	EventUnknown   EventType = "withdrawal.unknown"
	EventSucceeded EventType = "withdrawal.succeeded"
	EventFailed    EventType = "withdrawal.failed"
	EventReversed  EventType = "withdrawal.reversed"
)

// EventTimeLayout is the layout of occurred_at: RFC 3339 with milliseconds,
// in Beijing time like the providers' own timestamps.
const EventTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Beijing is Asia/Shanghai, the providers' time zone. The fixed offset is
// the fallback where the tz database is missing (China has no DST).
var Beijing = func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	return time.FixedZone("CST", 8*3600)
}()

// Event is one change of a withdrawal as published on the events topic. The
// JSON is the contract downstream ledgers depend on: change it only with a
// version bump of the topic.
type Event struct {
	EventID        string    `json:"event_id"`
	Type           EventType `json:"type"`
	WithdrawalID   string    `json:"withdrawal_id"`
	Version        int       `json:"version"`
	Channel        Channel   `json:"channel"`
	Account        string    `json:"account"`
	OutRequestNo   string    `json:"out_request_no"`
	State          State     `json:"state"`
	PreviousState  State     `json:"previous_state"`
	ProviderStatus string    `json:"provider_status"`
	ProviderRef    string    `json:"provider_ref"`
	Amount         int64     `json:"amount"`
	ReasonCode     string    `json:"reason_code"`
	Reason         string    `json:"reason"`
	OccurredAt     string    `json:"occurred_at"`
}

// FormatEventTime renders t as occurred_at.
func FormatEventTime(t time.Time) string { return t.In(Beijing).Format(EventTimeLayout) }

// NewID returns a new time-ordered identifier (UUIDv7) for withdrawals and
// events: sortable, so index inserts stay append-mostly.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does; a v4 is
		// equally unique, just not time-ordered.
		return uuid.NewString()
	}
	return id.String()
}

// rejectionNamespace scopes the deterministic ids of rejection events.
var rejectionNamespace = uuid.NewHash(sha1.New(), uuid.NameSpaceURL, []byte("urn:paycore:withdraw:rejection"), 5)

// RejectionEventID is the event id of a rejection. It is derived from the
// command's key, its parameters hash and the reason, so that a redelivered
// invalid command yields the same id: the outbox stores it once, and a
// consumer that saw it anyway recognises the duplicate.
func RejectionEventID(k Key, paramsHash string, code ReasonCode) string {
	name := string(k.Channel) + "\x00" + k.Account + "\x00" + k.OutRequestNo + "\x00" + paramsHash + "\x00" + string(code)
	return uuid.NewSHA1(rejectionNamespace, []byte(name)).String()
}
