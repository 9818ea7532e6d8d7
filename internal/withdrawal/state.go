package withdrawal

// State is where a withdrawal stands. The values are part of the event
// contract (the "state" and "previous_state" fields).
type State string

// The states of a withdrawal.
//
//	ACCEPTED ──▶ SUBMITTING ──▶ SUBMITTED ──▶ SUCCEEDED ──▶ REVERSED
//	   │             │  └──────▶ UNKNOWN ──┘      │
//	   │             └─────────▶ FAILED ◀─────────┘
//	   └──▶ REJECTED
const (
	// StateAccepted: stored, not yet sent to the provider.
	StateAccepted State = "ACCEPTED"
	// StateSubmitting: claimed by a dispatcher under a lease; the request may
	// be on the wire. A lease that expires here means "maybe sent".
	StateSubmitting State = "SUBMITTING"
	// StateSubmitted: the provider acknowledged the order (or a query found it).
	StateSubmitted State = "SUBMITTED"
	// StateUnknown: an ambiguous outcome; the next step is a query or a
	// byte-identical re-submission, never a new request number.
	StateUnknown State = "UNKNOWN"
	// StateSucceeded: the provider reports the money paid out. Not final for
	// WeChat: a bank can still bounce it (退票).
	StateSucceeded State = "SUCCEEDED"
	// StateFailed: final; no money moved (definite rejection, FAIL or CLOSE).
	StateFailed State = "FAILED"
	// StateReversed: final; paid out, then returned by the bank (REFUND).
	StateReversed State = "REVERSED"
	// StateRejected: the command was invalid or conflicted with an earlier
	// one; it never reaches a provider. Rejections are events only: no
	// withdrawal row holds this state, so upstream may fix the command and
	// send it again under the same out_request_no.
	StateRejected State = "REJECTED"
)

// transitions lists the allowed state changes. SUBMITTING is the dispatcher's
// claim and is not versioned (no event); every other change writes one event.
var transitions = map[State][]State{
	StateAccepted:   {StateSubmitting},
	StateSubmitting: {StateAccepted, StateSubmitted, StateUnknown, StateFailed},
	// From UNKNOWN: a query settles it, or the identical request is re-sent.
	StateUnknown:   {StateSubmitting, StateSubmitted, StateSucceeded, StateFailed, StateReversed},
	StateSubmitted: {StateSubmitting, StateSucceeded, StateFailed, StateReversed, StateUnknown},
	StateSucceeded: {StateReversed},
}

// CanTransition reports whether a withdrawal may move from one state to another.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Final reports whether no further provider status can change the state.
// SUCCEEDED is not final: a WeChat withdrawal can still be refunded.
func (s State) Final() bool {
	return s == StateFailed || s == StateReversed || s == StateRejected
}

// Versioned reports whether entering this state increments the withdrawal's
// version and emits an event. Only the dispatcher's claim (SUBMITTING) is not.
func (s State) Versioned() bool { return s != StateSubmitting }

// EventType is the event type emitted on entering the state.
func (s State) EventType() EventType {
	switch s {
	case StateAccepted:
		return EventAccepted
	case StateSubmitted:
		return EventSubmitted
	case StateUnknown:
		return EventUnknown
	case StateSucceeded:
		return EventSucceeded
	case StateFailed:
		return EventFailed
	case StateReversed:
		return EventReversed
	case StateRejected:
		return EventRejected
	}
	return ""
}
