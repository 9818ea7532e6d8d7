package store

import "time"

// Withdrawal is a row of the withdrawals table: one withdrawal, its current
// state and what the dispatcher and poller need to move it on.
type Withdrawal struct {
	ID           string `gorm:"primaryKey"`
	Channel      string
	Account      string
	OutRequestNo string
	MerchantKey  string
	Amount       int64 // fen
	ParamsHash   string
	// Params is the command JSON without payee_info.
	Params []byte
	// SensitiveData is payee_info sealed by package pii under SensitiveKeyID.
	SensitiveKeyID string
	SensitiveData  []byte

	State          string
	Version        int
	ProviderStatus string
	ProviderRef    string
	ReasonCode     string
	Reason         string
	Submissions    int

	NextAttemptAt  time.Time
	LeaseOwner     string
	LeaseExpiresAt *time.Time
	// ClaimedFrom is the state a SUBMITTING row was claimed from.
	ClaimedFrom string
	// FirstSentAt is when the request first left for the provider.
	FirstSentAt *time.Time
	// ResubmitRequested asks the dispatcher to re-send the stored request
	// of a SUBMITTED withdrawal (WeChat INIT).
	ResubmitRequested bool

	ProviderRequest       []byte
	ProviderRequestSerial string

	SubmittedAt *time.Time
	FinalAt     *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements gorm's Tabler.
func (Withdrawal) TableName() string { return "withdrawals" }

// OutboxEvent is a row of the outbox table: one event to publish, written in
// the same transaction as the change it describes.
type OutboxEvent struct {
	ID           int64 `gorm:"primaryKey;autoIncrement"`
	EventID      string
	WithdrawalID string
	EventKey     string
	Lane         int
	EventType    string
	Version      int
	Payload      []byte
	CreatedAt    time.Time
	// PublishedAt is NotPublished until the broker acknowledged the event.
	// Read-only to GORM: an insert always takes the schema's default, so no
	// Go zero value can ever mark a new event published (and lose it).
	PublishedAt time.Time `gorm:"->"`
}

// TableName implements gorm's Tabler.
func (OutboxEvent) TableName() string { return "outbox" }

// NotPublished is outbox.published_at of an event the broker has not
// acknowledged yet: the column's default. A sentinel rather than NULL so that
// marking an event published overwrites a fixed-size value in place instead
// of growing (and so rewriting) the whole row; migration 00004 explains.
var NotPublished = time.Unix(0, 0).UTC()

// Published reports whether the broker acknowledged the event.
func (e OutboxEvent) Published() bool { return !e.PublishedAt.Equal(NotPublished) }

// Attempt is a row of withdrawal_attempts: the audit of one provider call.
type Attempt struct {
	ID           int64 `gorm:"primaryKey;autoIncrement"`
	WithdrawalID string
	Operation    string
	StartedAt    time.Time
	LatencyUS    int64 `gorm:"column:latency_us"`
	HTTPStatus   int
	ProviderCode string
	Outcome      string
	Instance     string
	Error        string
}

// TableName implements gorm's Tabler.
func (Attempt) TableName() string { return "withdrawal_attempts" }
