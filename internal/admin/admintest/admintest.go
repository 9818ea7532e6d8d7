// Package admintest seeds withdrawals for the tests of the admin API and of
// cmd/withdrawctl: a fresh migrated database on the local test MariaDB and
// rows with payee data, events and attempts.
package admintest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Payee values of the seeded cancel-withdraw command: none may ever appear
// unmasked in an answer.
const (
	AccountNumber = "6222000011112222"
	IDNumber      = "110101199003070000"
	AccountName   = "测试有限公司"
	// ProviderRequestMarker is stored in provider_request; it must never be
	// returned either.
	ProviderRequestMarker = "PROVIDER-REQUEST-BYTES-d41d8cd9"
)

// DB opens a fresh, migrated database (dropped when the test ends).
func DB(t testing.TB) *store.DB {
	t.Helper()
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 4})
	return db
}

// Keys returns a fresh PII keyring.
func Keys(t testing.TB) *pii.Keyring {
	t.Helper()
	k, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// SeedCancel stores a wechatpay_cancel withdrawal with payee data in state,
// one event per version up to its version, one query attempt and a stored
// provider request, and returns the row.
func SeedCancel(t testing.TB, db *store.DB, keys *pii.Keyring, outRequestNo string, state withdrawal.State) *store.Withdrawal {
	t.Helper()
	ctx := context.Background()
	cmd := providertest.Command(withdrawal.ChannelWeChatCancel, outRequestNo, 101)
	cmd.PayeeInfo.BankAccountInfo.AccountNumber = AccountNumber
	cmd.PayeeInfo.BankAccountInfo.AccountName = AccountName
	cmd.PayeeInfo.IdentityInfo.IdentificationNo = IDNumber
	if rej := withdrawal.Validate(cmd); rej != nil {
		t.Fatalf("seed command invalid: %v", rej)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	row, err := store.NewWithdrawalRow(uuid.NewString(), cmd, "hash-"+outRequestNo, keys, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	row.State = string(state)
	if state != withdrawal.StateAccepted {
		row.Version = 2
		row.ProviderRequest = []byte(`{"encrypted":"` + ProviderRequestMarker + `"}`)
		row.ProviderStatus = "CREATE_SUCCESS"
		row.ProviderRef = "wx-" + outRequestNo
		row.Submissions = 1
		row.SubmittedAt = &now
		row.FirstSentAt = &now
	}
	// Far in the future: a requery must bring it back to now.
	row.NextAttemptAt = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := store.InsertWithdrawals(ctx, db, []store.Withdrawal{row}); err != nil {
		t.Fatal(err)
	}
	var events []store.OutboxEvent
	for v := 1; v <= row.Version; v++ {
		st := withdrawal.StateAccepted
		if v == 2 {
			st = state
		}
		tmp := row
		tmp.Version, tmp.State = v, string(st)
		ev := tmp.Event(uuid.NewString(), "", now)
		payload, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, store.OutboxEvent{EventID: ev.EventID, WithdrawalID: row.ID, EventKey: row.ID,
			EventType: string(ev.Type), Version: v, Payload: payload, CreatedAt: now})
	}
	if err := store.InsertOutbox(ctx, db, events); err != nil {
		t.Fatal(err)
	}
	if row.Version > 1 {
		a := store.Attempt{WithdrawalID: row.ID, Operation: "submit", StartedAt: now, LatencyUS: 12345,
			HTTPStatus: 200, ProviderCode: "", Outcome: "ACCEPTED", Instance: "test"}
		if err := store.InsertAttempts(ctx, db, []store.Attempt{a}); err != nil {
			t.Fatal(err)
		}
	}
	return &row
}
