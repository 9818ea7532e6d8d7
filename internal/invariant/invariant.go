// Package invariant states the promises every run of the product must keep
// — a withdrawal is paid at most once, of the commanded amount; its events
// carry versions 1..N without gaps, in order, the last one its state — as
// checks that return their violations. The chaos suite reports them and
// the system tests fail on them, so both hold the product to the same
// words.
package invariant

import (
	"fmt"
	"sort"

	"github.com/paycore/withdraw/internal/provider/sandbox"
)

// Payments is what PaidAtMostOnce found.
type Payments struct {
	Orders      int // orders the provider was asked for
	Submissions int // submit requests it received
	// Violations, each a short line naming the out_request_no: an order
	// created more than once, of another amount than commanded, or that no
	// command asked for.
	Violations []string
}

// PaidAtMostOnce checks the provider's ledger: every order created at most
// once and, when commanded is not nil (out_request_no → amount in fen),
// every order one of those commands at its amount.
func PaidAtMostOnce(orders []sandbox.LedgerOrder, commanded map[string]int64) Payments {
	p := Payments{Orders: len(orders)}
	for _, o := range orders {
		p.Submissions += o.Submissions
		if o.Created > 1 {
			p.Violations = append(p.Violations, fmt.Sprintf("%s %s created %d×", o.Channel, o.OutRequestNo, o.Created))
		}
		if commanded == nil {
			continue
		}
		amount, ok := commanded[o.OutRequestNo]
		switch {
		case !ok:
			p.Violations = append(p.Violations, fmt.Sprintf("%s %s is not a command", o.Channel, o.OutRequestNo))
		case o.Created > 0 && o.Amount != amount:
			p.Violations = append(p.Violations, fmt.Sprintf("%s %s paid %d, commanded %d", o.Channel, o.OutRequestNo, o.Amount, amount))
		}
	}
	return p
}

// Row is a withdrawal as stored: what its events must end in.
type Row struct {
	ID           string
	OutRequestNo string
	State        string
	Version      int
}

// Event is one published (or stored) event of a withdrawal.
type Event struct {
	WithdrawalID string
	Version      int
	State        string
}

// Histories is what VersionsGapFree found.
type Histories struct {
	Events      int // events read
	Withdrawals int // withdrawals they were of
	// Republished counts copies of an event already seen: at-least-once
	// delivery allows them, and consumers drop them by version.
	Republished int
	// Violations, each a short line naming the out_request_no: no events, a
	// missing version, versions out of order, or a last event that is not
	// the row's version and state.
	Violations []string
}

// VersionsGapFree checks every row's events, in the order given (the
// topic's or the outbox's): versions 1..N, each present, never going back
// (copies of an earlier version excepted), the highest one equal to the
// row's version and carrying the row's state.
func VersionsGapFree(rows []Row, events []Event) Histories {
	h := Histories{Events: len(events)}
	of := map[string][]Event{}
	for _, e := range events {
		of[e.WithdrawalID] = append(of[e.WithdrawalID], e)
	}
	h.Withdrawals = len(of)
	sorted := append([]Row(nil), rows...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].OutRequestNo < sorted[j].OutRequestNo })
	for _, w := range sorted {
		es := of[w.ID]
		if len(es) == 0 {
			h.Violations = append(h.Violations, fmt.Sprintf("%s has no events", w.OutRequestNo))
			continue
		}
		seen := map[int]Event{}
		highest, ordered := 0, true
		for _, e := range es {
			if _, dup := seen[e.Version]; dup {
				h.Republished++
				continue
			}
			if e.Version < highest {
				ordered = false
			}
			seen[e.Version] = e
			highest = max(highest, e.Version)
		}
		if !ordered {
			h.Violations = append(h.Violations, fmt.Sprintf("%s events out of order", w.OutRequestNo))
		}
		for v := 1; v <= highest; v++ {
			if _, ok := seen[v]; !ok {
				h.Violations = append(h.Violations, fmt.Sprintf("%s lacks v%d of %d", w.OutRequestNo, v, highest))
				break
			}
		}
		if last := seen[highest]; highest != w.Version || last.State != w.State {
			h.Violations = append(h.Violations, fmt.Sprintf("%s last event v%d %s, row v%d %s", w.OutRequestNo, highest, last.State, w.Version, w.State))
		}
	}
	return h
}
