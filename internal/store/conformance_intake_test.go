package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// newRow is an ACCEPTED withdrawal as the intake builds it.
func newRow(ch withdrawal.Channel, account, no string, amount int64, now time.Time) store.Withdrawal {
	return store.Withdrawal{
		ID: withdrawal.NewID(), Channel: string(ch), Account: account, OutRequestNo: no,
		MerchantKey: string(ch) + "/" + account, Amount: amount, ParamsHash: "hash-" + no, Params: []byte(`{"n":"` + no + `"}`),
		SensitiveKeyID: "k1", SensitiveData: []byte("sealed-" + no),
		State: string(withdrawal.StateAccepted), Version: 1, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
	}
}

// insertWithdrawalsInTx runs InsertWithdrawals as the intake does: in a transaction,
// where MySQL sends the fixed batch sizes as prepared statements.
func insertWithdrawalsInTx(ctx context.Context, db *store.DB, rows []store.Withdrawal) error {
	return db.InTx(ctx, func(tx *store.Tx) error { return store.InsertWithdrawals(ctx, tx, rows) })
}

func outboxRows(t *testing.T, db *store.DB) []store.OutboxEvent {
	t.Helper()
	var rows []store.OutboxEvent
	if err := db.Gorm().Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

var intakeOperations = []operation{
	{"FindKeyHashes", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		rows := []store.Withdrawal{
			newRow(withdrawal.ChannelWeChatPlatform, "default", "A", 100, now),
			newRow(withdrawal.ChannelWeChatEcommerce, "default", "A", 100, now), // same number, other channel
			newRow(withdrawal.ChannelWeChatPlatform, "other", "A", 100, now),    // same number, other account
			newRow(withdrawal.ChannelWeChatPlatform, "default", "B", 100, now),
			newRow(withdrawal.ChannelWeChatPlatform, "default", "AB", 100, now), // a prefix is no match
		}
		if err := insertWithdrawalsInTx(ctx, db, rows); err != nil {
			t.Fatal(err)
		}
		found, err := store.FindKeyHashes(ctx, db, []string{"A", "absent"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range found {
			got = append(got, k.ID)
			var row *store.Withdrawal
			for i := range rows {
				if rows[i].ID == k.ID {
					row = &rows[i]
				}
			}
			if row == nil || k.Channel != row.Channel || k.Account != row.Account || k.OutRequestNo != "A" || k.ParamsHash != row.ParamsHash {
				t.Errorf("key hash %+v does not describe its row", k)
			}
		}
		slices.Sort(got)
		want := []string{rows[0].ID, rows[1].ID, rows[2].ID}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("found %v, want the three A rows %v", got, want)
		}
		// Inside a transaction, as the intake reads it.
		err = db.InTx(ctx, func(tx *store.Tx) error {
			found, err := store.FindKeyHashes(ctx, tx, []string{"B", "AB"})
			if err == nil && len(found) != 2 {
				t.Errorf("found %+v in a transaction, want B and AB", found)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if found, err := store.FindKeyHashes(ctx, db, nil); err != nil || len(found) != 0 {
			t.Fatalf("no numbers: %+v, %v", found, err)
		}
	}},
	{"InsertWithdrawals", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		// 700 rows: the prepared sizes 512, 128, 32, 16 on MySQL, then 12
		// as text.
		rows := make([]store.Withdrawal, 700)
		for i := range rows {
			rows[i] = newRow(withdrawal.ChannelWeChatPlatform, "default", fmt.Sprintf("N%04d", i), int64(100+i), now)
		}
		if err := insertWithdrawalsInTx(ctx, db, rows); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 511, 512, 699} {
			got, err := store.GetWithdrawal(ctx, db, rows[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			w := rows[i]
			if got.OutRequestNo != w.OutRequestNo || got.Amount != w.Amount || got.ParamsHash != w.ParamsHash ||
				string(got.Params) != string(w.Params) || string(got.SensitiveData) != string(w.SensitiveData) ||
				got.SensitiveKeyID != "k1" || got.State != string(withdrawal.StateAccepted) || got.Version != 1 ||
				!got.NextAttemptAt.Equal(now) || got.LeaseOwner != "" || got.ProviderRef != "" || got.FirstSentAt != nil {
				t.Fatalf("row %d stored as %+v", i, got)
			}
		}
		// A duplicate key is an error, never skipped, and the whole
		// transaction rolls back: the new row with it is not stored.
		fresh := newRow(withdrawal.ChannelWeChatPlatform, "default", "fresh", 100, now)
		dup := newRow(withdrawal.ChannelWeChatPlatform, "default", "N0003", 999, now)
		err := insertWithdrawalsInTx(ctx, db, []store.Withdrawal{fresh, dup})
		if err == nil {
			t.Fatal("a duplicate key was inserted")
		}
		if want := db.Dialect == store.MySQL; store.Collided(err) != want {
			t.Fatalf("Collided(%v) = %v, want %v", err, !want, want)
		}
		if _, err := store.GetWithdrawal(ctx, db, fresh.ID); err == nil {
			t.Fatal("the rolled-back batch's new row was stored")
		}
		found, err := store.FindKeyHashes(ctx, db, []string{"N0003"})
		if err != nil || len(found) != 1 || found[0].ID != rows[3].ID {
			t.Fatalf("N0003: %+v, %v; want the first row only", found, err)
		}
	}},
	{"InsertOutbox", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		w := newRow(withdrawal.ChannelWeChatPlatform, "default", "N1", 100, now)
		accepted := store.OutboxEvent{EventID: withdrawal.NewID(), WithdrawalID: w.ID, EventKey: w.ID, Lane: 3,
			EventType: "withdrawal.accepted", Version: 1, Payload: []byte(`{"a":1}`), CreatedAt: now}
		// A rejection has no withdrawal and version 0: its event id,
		// derived from the command, is what makes it unique.
		rejected := store.OutboxEvent{EventID: "rej-1", EventKey: "default/N2", Lane: 5,
			EventType: "withdrawal.rejected", Payload: []byte(`{"r":1}`), CreatedAt: now}
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := store.InsertWithdrawals(ctx, tx, []store.Withdrawal{w}); err != nil {
				return err
			}
			return store.InsertOutbox(ctx, tx, []store.OutboxEvent{accepted, rejected})
		})
		if err != nil {
			t.Fatal(err)
		}
		// The redelivered rejection meets its twin: skipped, no error; a
		// rejection of another command is stored.
		other := rejected
		other.EventID, other.Payload = "rej-2", []byte(`{"r":2}`)
		twin := rejected
		twin.Payload = []byte(`{"r":"again"}`)
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			return store.InsertOutbox(ctx, tx, []store.OutboxEvent{twin, other})
		}); err != nil {
			t.Fatalf("redelivered rejection: %v", err)
		}
		rows := outboxRows(t, db)
		var got []string
		for _, r := range rows {
			got = append(got, r.EventID+":"+string(r.Payload))
			if r.Published() {
				t.Errorf("new event %s marked published (%s)", r.EventID, r.PublishedAt)
			}
		}
		want := []string{accepted.EventID + `:{"a":1}`, `rej-1:{"r":1}`, `rej-2:{"r":2}`}
		if !slices.Equal(got, want) {
			t.Fatalf("outbox %v, want %v", got, want)
		}
		if r := rows[0]; r.WithdrawalID != w.ID || r.EventKey != w.ID || r.Lane != 3 || r.Version != 1 || r.EventType != "withdrawal.accepted" {
			t.Fatalf("accepted event stored as %+v", r)
		}
	}},
	{"InsertAttempts", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(store.TimePrecision)
		long := store.Attempt{WithdrawalID: "w1", Operation: "submit", StartedAt: now, LatencyUS: 1500, HTTPStatus: 200,
			ProviderCode: strings.Repeat("码", store.WidthProviderCode+10), Outcome: "ok", Instance: "i1",
			Error: strings.Repeat("é", store.WidthAttemptError+10)}
		short := store.Attempt{WithdrawalID: "w1", Operation: "query", StartedAt: now.Add(time.Second), HTTPStatus: 500,
			ProviderCode: "SYSTEM_ERROR", Outcome: "error", Instance: "i1", Error: "boom"}
		if err := store.InsertAttempts(ctx, db, []store.Attempt{long, short}); err != nil {
			t.Fatal(err)
		}
		got, err := store.AttemptsOf(ctx, db, "w1")
		if err != nil || len(got) != 2 {
			t.Fatalf("attempts: %+v, %v", got, err)
		}
		a := got[0]
		if utf8.RuneCountInString(a.ProviderCode) != store.WidthProviderCode || !strings.HasPrefix(long.ProviderCode, a.ProviderCode) ||
			utf8.RuneCountInString(a.Error) != store.WidthAttemptError || !strings.HasPrefix(long.Error, a.Error) {
			t.Fatalf("long values stored as %d and %d runes, want cut to %d and %d",
				utf8.RuneCountInString(a.ProviderCode), utf8.RuneCountInString(a.Error), store.WidthProviderCode, store.WidthAttemptError)
		}
		if a.Operation != "submit" || a.LatencyUS != 1500 || a.HTTPStatus != 200 || !a.StartedAt.Equal(now) {
			t.Fatalf("attempt stored as %+v", a)
		}
		if b := got[1]; b.ProviderCode != "SYSTEM_ERROR" || b.Error != "boom" || b.Operation != "query" {
			t.Fatalf("short attempt stored as %+v", b)
		}
	}},
}
