package store_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm/schema"

	"github.com/paycore/withdraw/internal/store"
)

// TestWithdrawalColumnsNameEveryField fails when a column is added to the
// model but not to the hand-written SELECT list and scan.
func TestWithdrawalColumnsNameEveryField(t *testing.T) {
	s, err := schema.Parse(&store.Withdrawal{}, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Split(store.WithdrawalColumnList, ", "), s.DBNames; !reflect.DeepEqual(got, want) {
		t.Fatalf("WithdrawalColumns\n got %v\nwant %v (the model's fields in order)", got, want)
	}
}

// TestScanWithdrawalsReadsWhatGORMReads fills every column with a value
// that is not its zero (and leaves the nullable ones NULL in a second row),
// then compares the hand-written scan with GORM's read of the same rows.
func TestScanWithdrawalsReadsWhatGORMReads(t *testing.T) {
	ctx := context.Background()
	at := func(s int) *time.Time { v := time.Date(2026, 11, 22, 8, 0, s, 123456000, time.UTC); return &v }
	full := store.Withdrawal{ID: "w-full", Channel: "wechat_ecommerce", Account: "default", OutRequestNo: "S1",
		MerchantKey: "m1", Amount: 12345, ParamsHash: "h", Params: []byte(`{"a":1}`), SensitiveKeyID: "k1",
		SensitiveData: []byte{1, 2, 3}, State: "SUBMITTED", Version: 4, ProviderStatus: "PROCESSING",
		ProviderRef: "ref", ReasonCode: "RC", Reason: "why", Submissions: 2, NextAttemptAt: *at(1),
		LeaseOwner: "me", LeaseExpiresAt: at(2), ClaimedFrom: "ACCEPTED", FirstSentAt: at(3),
		ResubmitRequested: true, ProviderRequest: []byte(`{"req":1}`), ProviderRequestSerial: "serial",
		SubmittedAt: at(4), FinalAt: at(5), CreatedAt: *at(6), UpdatedAt: *at(7)}
	bare := store.Withdrawal{ID: "w-bare", Channel: "wechat_ecommerce", Account: "default", OutRequestNo: "S2",
		MerchantKey: "m1", Amount: 1, ParamsHash: "h", Params: []byte(`{}`), State: "ACCEPTED", Version: 1,
		NextAttemptAt: *at(8), CreatedAt: *at(9), UpdatedAt: *at(9)}
	for name, db := range openBoth(t) {
		t.Run(name, func(t *testing.T) {
			if err := db.Gorm().WithContext(ctx).Create([]store.Withdrawal{full, bare}).Error; err != nil {
				t.Fatal(err)
			}
			var want []store.Withdrawal
			if err := db.Gorm().WithContext(ctx).Order("id").Find(&want).Error; err != nil {
				t.Fatal(err)
			}
			rows, err := store.Query(ctx, db, "SELECT "+store.WithdrawalColumnList+" FROM withdrawals ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			got, err := store.ScanWithdrawals(rows, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || !reflect.DeepEqual(got, want) {
				t.Fatalf("hand scan\n got %+v\nGORM\nwant %+v", got, want)
			}
			// Ordered by id: w-bare, then w-full.
			if got[0].LeaseExpiresAt != nil || got[0].FinalAt != nil || !got[1].ResubmitRequested || !got[1].FinalAt.Equal(*at(5)) {
				t.Fatalf("values lost: %+v", got)
			}
		})
	}
}
