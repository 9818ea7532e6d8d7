package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/contracttest"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/transition"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// TestEventsOfRealTransitionsConform drives withdrawals of every channel
// through every path of the state machine with the code that writes events
// in production (the intake's row and accepted event, as storetest.Seed
// builds them, then transition.Apply for each change, claimed and not), and
// validates each event written to the outbox against event.json and its
// type's schema, checking versions run 1..N and keys are withdrawal ids.
func TestEventsOfRealTransitionsConform(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t)
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	S := func(s withdrawal.State) transition.Change { return transition.Change{To: s} }
	paths := map[string][]transition.Change{
		"paid":      {S(withdrawal.StateSubmitted), {To: withdrawal.StateSucceeded, ProviderStatus: "SUCCESS", ProviderRef: "wd-1"}},
		"bounced":   {{To: withdrawal.StateSubmitted, ProviderStatus: "CREATE_SUCCESS"}, S(withdrawal.StateSucceeded), {To: withdrawal.StateReversed, ProviderStatus: "REFUND", ReasonCode: "BANK_REFUND", Reason: "退票"}},
		"refused":   {{To: withdrawal.StateFailed, ReasonCode: "NOT_ENOUGH", Reason: "余额不足"}},
		"ambiguous": {{To: withdrawal.StateUnknown, ReasonCode: "SYSTEM_ERROR"}, S(withdrawal.StateSubmitted), {To: withdrawal.StateUnknown}, {To: withdrawal.StateFailed, ProviderStatus: "CLOSE"}},
		"found":     {S(withdrawal.StateUnknown), S(withdrawal.StateSucceeded)},
		"lost":      {S(withdrawal.StateUnknown), S(withdrawal.StateReversed)},
		"requeued":  {S(withdrawal.StateAccepted)}, // a claim released without a change: no event
	}
	n, checked := 0, 0
	for _, ch := range withdrawal.Channels {
		for name, changes := range paths {
			for _, claimed := range []bool{true, false} {
				n++
				no := fmt.Sprintf("N%d", n)
				id := storetest.Seed(t, db, keys, providertest.Command(ch, no, int64(100*n)))[no]
				now := time.Now()
				for i, c := range changes {
					w, err := store.GetWithdrawal(ctx, db, id)
					if err != nil {
						t.Fatal(err)
					}
					// The dispatcher and the poller claim a row before they
					// call the provider; callbacks change it unclaimed.
					if claimed || w.State == string(withdrawal.StateAccepted) {
						if err := db.Gorm().Exec("UPDATE withdrawals SET state = ?, claimed_from = ?, lease_owner = ? WHERE id = ?",
							string(withdrawal.StateSubmitting), w.State, "t", id).Error; err != nil {
							t.Fatal(err)
						}
						if w, err = store.GetWithdrawal(ctx, db, id); err != nil {
							t.Fatal(err)
						}
					}
					c.NextAttemptAt = now
					if err := db.InTx(ctx, func(tx *store.Tx) error {
						_, err := transition.Apply(ctx, tx, w, c, now.Add(time.Duration(i)*time.Second))
						return err
					}); err != nil {
						t.Fatalf("%s %s step %d: %v", ch, name, i, err)
					}
				}
				events, err := store.EventsOf(ctx, db, id)
				if err != nil {
					t.Fatal(err)
				}
				for i, ev := range events {
					if ev.Version != i+1 || ev.EventKey != id {
						t.Errorf("%s %s: event %d has version %d key %s", ch, name, i, ev.Version, ev.EventKey)
					}
					checked++
					checkEvent(t, fmt.Sprintf("%s %s v%d", ch, name, ev.Version), ev.EventType, ev.Payload)
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d events written", checked)
	}
}

// checkEvent validates one event payload against event.json and the schema
// of its type.
func checkEvent(t *testing.T, what, eventType string, payload []byte) {
	t.Helper()
	if err := contracttest.Validate(t, "event", payload); err != nil {
		t.Errorf("%s: event.json: %v\n\t%s", what, err, payload)
	}
	typ := "event." + strings.TrimPrefix(eventType, "withdrawal.")
	if err := contracttest.Validate(t, typ, payload); err != nil {
		t.Errorf("%s: %s.json: %v\n\t%s", what, typ, err, payload)
	}
}
