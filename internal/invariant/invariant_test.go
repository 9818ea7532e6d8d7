package invariant_test

import (
	"strings"
	"testing"

	"github.com/paycore/withdraw/internal/invariant"
	"github.com/paycore/withdraw/internal/provider/sandbox"
)

func TestPaidAtMostOnce(t *testing.T) {
	commanded := map[string]int64{"A": 100, "B": 200, "C": 300}
	for _, tc := range []struct {
		name   string
		orders []sandbox.LedgerOrder
		want   []string // substrings of the violations, in order
	}{
		{"each once", []sandbox.LedgerOrder{{OutRequestNo: "A", Amount: 100, Created: 1, Submissions: 3}, {OutRequestNo: "B", Amount: 200, Created: 1}}, nil},
		{"asked but never created", []sandbox.LedgerOrder{{OutRequestNo: "C", Amount: 999, Created: 0, Submissions: 2}}, nil},
		{"created twice", []sandbox.LedgerOrder{{OutRequestNo: "A", Amount: 100, Created: 2}}, []string{"A created 2×"}},
		{"wrong amount", []sandbox.LedgerOrder{{OutRequestNo: "B", Amount: 201, Created: 1}}, []string{"B paid 201, commanded 200"}},
		{"not a command", []sandbox.LedgerOrder{{OutRequestNo: "Z", Amount: 1, Created: 1}}, []string{"Z is not a command"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := invariant.PaidAtMostOnce(tc.orders, commanded).Violations
			assertViolations(t, got, tc.want)
		})
	}
	t.Run("without commands only counts creations", func(t *testing.T) {
		got := invariant.PaidAtMostOnce([]sandbox.LedgerOrder{{OutRequestNo: "Z", Amount: 1, Created: 1}}, nil)
		if len(got.Violations) != 0 || got.Orders != 1 {
			t.Fatalf("%+v", got)
		}
	})
}

func TestVersionsGapFree(t *testing.T) {
	row := invariant.Row{ID: "w1", OutRequestNo: "A", State: "SUCCEEDED", Version: 3}
	ev := func(v int, state string) invariant.Event {
		return invariant.Event{WithdrawalID: "w1", Version: v, State: state}
	}
	for _, tc := range []struct {
		name        string
		events      []invariant.Event
		want        []string
		republished int
	}{
		{"whole history", []invariant.Event{ev(1, "ACCEPTED"), ev(2, "SUBMITTED"), ev(3, "SUCCEEDED")}, nil, 0},
		{"copies dropped", []invariant.Event{ev(1, "ACCEPTED"), ev(2, "SUBMITTED"), ev(1, "ACCEPTED"), ev(3, "SUCCEEDED")}, nil, 1},
		{"no events", nil, []string{"A has no events"}, 0},
		{"gap", []invariant.Event{ev(1, "ACCEPTED"), ev(3, "SUCCEEDED")}, []string{"A lacks v2 of 3"}, 0},
		{"out of order", []invariant.Event{ev(2, "SUBMITTED"), ev(1, "ACCEPTED"), ev(3, "SUCCEEDED")}, []string{"A events out of order"}, 0},
		{"last not the row", []invariant.Event{ev(1, "ACCEPTED"), ev(2, "SUBMITTED")}, []string{"A last event v2 SUBMITTED, row v3 SUCCEEDED"}, 0},
		{"last state not the row's", []invariant.Event{ev(1, "ACCEPTED"), ev(2, "SUBMITTED"), ev(3, "FAILED")}, []string{"row v3 SUCCEEDED"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := invariant.VersionsGapFree([]invariant.Row{row}, tc.events)
			assertViolations(t, h.Violations, tc.want)
			if h.Republished != tc.republished {
				t.Errorf("republished %d, want %d", h.Republished, tc.republished)
			}
		})
	}
}

func assertViolations(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("violations %q, want %d like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("violation %d: %q, want it to contain %q", i, got[i], want[i])
		}
	}
}
