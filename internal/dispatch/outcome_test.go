package dispatch

import (
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestOutcomeToStateForEveryCode runs every documented provider code of the
// classification table, first send and re-send, through the dispatcher's
// outcome mapping: a definite rejection fails the withdrawal, anything that
// may have created the order is UNKNOWN, and "not processed" returns it to
// where it was — never FAILED on a code that does not prove "no order".
func TestOutcomeToStateForEveryCode(t *testing.T) {
	d := New(nil, nil, nil, Options{Rules: schedule.Accelerated()})
	for _, origin := range []withdrawal.State{withdrawal.StateAccepted, withdrawal.StateUnknown} {
		for _, rule := range provider.Rules {
			if rule.Op == provider.OpQuery {
				continue
			}
			for _, resend := range []bool{false, true} {
				out := provider.ClassifyError(rule.Protocol, provider.OpSubmit, rule.HTTPStatus, rule.Code, "msg", resend)
				c := claimed{row: store.Withdrawal{ClaimedFrom: string(origin), State: string(withdrawal.StateSubmitting)}}
				change := d.afterSend(c, out)
				var want withdrawal.State
				switch out.Kind {
				case provider.KindRejected:
					want = withdrawal.StateFailed
				case provider.KindRetryLater:
					want = origin
				default:
					want = withdrawal.StateUnknown
				}
				if change.To != want {
					t.Errorf("%s %s (resend %v, from %s): kind %s → %s, want %s", rule.Protocol, rule.Code, resend, origin, out.Kind, change.To, want)
				}
				if change.To == withdrawal.StateFailed && change.ReasonCode != rule.Code {
					t.Errorf("%s: FAILED with reason code %q", rule.Code, change.ReasonCode)
				}
				if rule.Exists && !change.NextAttemptAt.After(time.Time{}) {
					t.Errorf("%s: an existing order must be queried", rule.Code)
				}
			}
		}
	}
	// The answers outside the table.
	for _, tc := range []struct {
		out  provider.Outcome
		want withdrawal.State
	}{
		{provider.Outcome{Kind: provider.KindAccepted, ProviderRef: "w1"}, withdrawal.StateSubmitted},
		{provider.Outcome{Kind: provider.KindAccepted, State: withdrawal.StateFailed}, withdrawal.StateFailed}, // Allinpay: every line failed
		{provider.Outcome{Kind: provider.KindAmbiguous, Code: "TRANSPORT_ERROR"}, withdrawal.StateUnknown},
		{provider.Outcome{Kind: provider.KindAmbiguous, Code: "UNVERIFIED_ANSWER", HTTPStatus: 200}, withdrawal.StateUnknown},
	} {
		c := claimed{row: store.Withdrawal{ClaimedFrom: string(withdrawal.StateAccepted), State: string(withdrawal.StateSubmitting)}}
		if got := d.afterSend(c, tc.out).To; got != tc.want {
			t.Errorf("%+v → %s, want %s", tc.out, got, tc.want)
		}
	}
}
