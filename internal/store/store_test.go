package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
	"gorm.io/gorm"
)

// openBoth returns a migrated MariaDB database (fresh, from the local test
// environment) and a migrated SQLite file: every repository test runs on both.
func openBoth(t *testing.T) map[string]*store.DB {
	t.Helper()
	ctx := context.Background()
	my, err := store.OpenMySQL(ctx, testenv.FreshDatabase(t), store.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { my.Close() })
	if _, err := my.Migrate(ctx); err != nil {
		t.Fatalf("mysql: %v", err)
	}
	return map[string]*store.DB{"mysql": my, "sqlite": storetest.SQLite(t)}
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	for name, db := range openBoth(t) {
		t.Run(name, func(t *testing.T) {
			applied, err := db.Migrate(ctx)
			if err != nil || len(applied) != 0 {
				t.Fatalf("second migrate applied %v, err %v", applied, err)
			}
			v, err := db.SchemaVersion(ctx)
			if err != nil || v < 1 {
				t.Fatalf("schema version %d, err %v", v, err)
			}
			for _, table := range []string{"withdrawals", "outbox", "withdrawal_attempts"} {
				if !db.Gorm().Migrator().HasTable(table) {
					t.Errorf("table %s missing", table)
				}
			}
		})
	}
}

// TestMigrateConcurrently starts several migrations of one empty MySQL
// database at once, as several instances would at deploy time.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.FreshDatabase(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := store.OpenMySQL(ctx, dsn, store.PoolOptions{MaxOpen: 4})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			_, err = db.Migrate(ctx)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func cancelCommand() *withdrawal.Command {
	return &withdrawal.Command{
		Channel: withdrawal.ChannelWeChatCancel, Account: "default", OutRequestNo: "C1", Amount: 101,
		SubMchID: "1900000109", OutAccountType: "BASIC_ACCOUNT", PayeeType: "INDIVIDUAL",
		PayeeInfo: &withdrawal.PayeeInfo{
			AccountType:     "ACCOUNT_TYPE_PRIVATE",
			BankAccountInfo: &withdrawal.BankAccountInfo{AccountBank: "工商银行", AccountName: "张三丰", AccountNumber: "6222020200112233445"},
			IdentityInfo:    &withdrawal.IdentityInfo{IDDocType: "IDENTIFICATION_TYPE_IDCARD", IdentificationName: "张三丰", IdentificationNo: "110101199003074477"},
		},
	}
}

func TestWithdrawalRoundTripAndPII(t *testing.T) {
	ctx := context.Background()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	for name, db := range openBoth(t) {
		t.Run(name, func(t *testing.T) {
			cmd := cancelCommand()
			if r := withdrawal.Validate(cmd); r != nil {
				t.Fatal(r)
			}
			hash, _ := withdrawal.ParamsHash(cmd)
			now := time.Now().UTC().Truncate(time.Microsecond)
			row, err := store.NewWithdrawalRow(withdrawal.NewID(), cmd, hash, keys, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.InsertWithdrawals(ctx, db, []store.Withdrawal{row}); err != nil {
				t.Fatal(err)
			}
			// A second insert of the same key must fail, never pass silently.
			dup := row
			dup.ID = withdrawal.NewID()
			if err := store.InsertWithdrawals(ctx, db, []store.Withdrawal{dup}); err == nil {
				t.Fatal("duplicate key inserted")
			}

			// Nothing sensitive is readable in the raw row.
			var raw struct {
				Params        []byte
				SensitiveData []byte
			}
			if err := db.Gorm().Raw("SELECT params, sensitive_data FROM withdrawals WHERE id = ?", row.ID).Scan(&raw).Error; err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"6222020200112233445", "110101199003074477", "张三丰"} {
				if strings.Contains(string(raw.Params), secret) || strings.Contains(string(raw.SensitiveData), secret) {
					t.Errorf("%q stored in plaintext", secret)
				}
			}

			got, err := store.GetWithdrawalByKey(ctx, db, string(cmd.Channel), cmd.Account, cmd.OutRequestNo)
			if err != nil {
				t.Fatal(err)
			}
			if !got.NextAttemptAt.Equal(now) || got.State != "ACCEPTED" || got.Version != 1 || got.Amount != 101 {
				t.Errorf("row changed in the round trip: %+v", got)
			}
			back, err := got.Command(keys)
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := withdrawal.ParamsHash(back); h != hash {
				t.Error("the rebuilt command hashes differently")
			}
			other, _ := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
			if _, err := got.Command(other); err == nil {
				t.Error("payee_info opened without the right key")
			}
			masked, err := got.MaskedCommand(keys)
			if err != nil {
				t.Fatal(err)
			}
			if masked.PayeeInfo.BankAccountInfo.AccountNumber != "***************3445" {
				t.Errorf("masked account number %q", masked.PayeeInfo.BankAccountInfo.AccountNumber)
			}

			keyHashes, err := store.FindKeyHashes(ctx, db, []string{"C1", "nope"})
			if err != nil || len(keyHashes) != 1 || keyHashes[0].ParamsHash != hash {
				t.Fatalf("FindKeyHashes = %+v, %v", keyHashes, err)
			}
			if _, err := store.GetWithdrawal(ctx, db, "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("want ErrNotFound, got %v", err)
			}
		})
	}
}

func TestOutboxSkipsDuplicateEventIDs(t *testing.T) {
	ctx := context.Background()
	for name, db := range openBoth(t) {
		t.Run(name, func(t *testing.T) {
			ev := store.OutboxEvent{EventID: "e1", EventKey: "k", EventType: "withdrawal.rejected", Version: 0, Payload: []byte(`{}`), CreatedAt: time.Now().UTC()}
			for range 2 {
				if err := store.InsertOutbox(ctx, db, []store.OutboxEvent{ev}); err != nil {
					t.Fatal(err)
				}
			}
			var n int64
			db.Gorm().Model(&store.OutboxEvent{}).Where("event_id = ?", "e1").Count(&n)
			if n != 1 {
				t.Fatalf("%d rows for one event id", n)
			}
		})
	}
}

// Every way an event enters the outbox leaves it NotPublished — the one value
// the relay looks for — on both dialects. A new row that read as published
// would never reach Kafka.
func TestNewOutboxEventsArePending(t *testing.T) {
	ctx := context.Background()
	for name, db := range openBoth(t) {
		t.Run(name, func(t *testing.T) {
			now := time.Now().UTC()
			handBuilt := store.OutboxEvent{EventID: "e1", EventKey: "k", EventType: "withdrawal.accepted", Version: 1, Payload: []byte(`{}`), CreatedAt: now}
			if err := store.InsertOutbox(ctx, db, []store.OutboxEvent{handBuilt}); err != nil {
				t.Fatal(err)
			}
			// A Go zero value must not reach the column through GORM either.
			viaGORM := store.OutboxEvent{EventID: "e2", EventKey: "k", EventType: "withdrawal.submitted", Version: 2, Payload: []byte(`{}`), CreatedAt: now}
			if err := db.Gorm().Create(&viaGORM).Error; err != nil {
				t.Fatal(err)
			}
			var pending int64
			if err := db.Gorm().Raw("SELECT COUNT(*) FROM outbox WHERE published_at = ?", store.NotPublished).Scan(&pending).Error; err != nil {
				t.Fatal(err)
			}
			if pending != 2 {
				t.Fatalf("%d of 2 new events match published_at = NotPublished", pending)
			}
			if err := db.Gorm().Exec("UPDATE outbox SET published_at = ? WHERE event_id = 'e1'", now).Error; err != nil {
				t.Fatal(err)
			}
			var rows []store.OutboxEvent
			if err := db.Gorm().Order("id").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2", len(rows))
			}
			if !rows[0].Published() || rows[1].Published() {
				t.Fatalf("published = [%v %v], want [true false]", rows[0].Published(), rows[1].Published())
			}
		})
	}
}

// TestFindKeyHashesReadsTheKeyIndex guards the intake's duplicate lookup
// against the plan MariaDB picked on a young table: a full scan per batch
// (a fifth of the database's CPU in the intake benchmark). A lookup of 200
// keys (MariaDB's eq_range_index_dive_limit, from where it stops probing the
// index) on a freshly filled table must read no row sequentially; without
// the hint it scanned all 400.
func TestFindKeyHashesReadsTheKeyIndex(t *testing.T) {
	ctx := context.Background()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	cmds := make([]*withdrawal.Command, n)
	nos := make([]string, 0, n)
	for i := range cmds {
		c := cancelCommand()
		c.OutRequestNo = fmt.Sprintf("K%05d", i)
		cmds[i] = c
		if i%2 == 0 {
			nos = append(nos, c.OutRequestNo)
		}
	}
	storetest.Seed(t, db, keys, cmds...)

	err = db.InTx(ctx, func(tx *store.Tx) error {
		before, err := handlerCount(tx.Gorm(), "Handler_read_rnd_next")
		if err != nil {
			return err
		}
		found, err := store.FindKeyHashes(ctx, tx, nos)
		if err != nil {
			return err
		}
		after, err := handlerCount(tx.Gorm(), "Handler_read_rnd_next")
		if err != nil {
			return err
		}
		if len(found) != len(nos) {
			t.Errorf("found %d of %d keys", len(found), len(nos))
		}
		if after != before {
			t.Errorf("the lookup of %d keys read %d rows by table scan; want the unique index only", len(nos), after-before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// handlerCount reads one of MariaDB's session status counters on tx's
// connection.
func handlerCount(tx *gorm.DB, name string) (int64, error) {
	var row struct {
		VariableName string `gorm:"column:Variable_name"`
		Value        int64  `gorm:"column:Value"`
	}
	if err := tx.Raw("SHOW SESSION STATUS LIKE ?", name).Scan(&row).Error; err != nil {
		return 0, fmt.Errorf("session status %s: %w", name, err)
	}
	return row.Value, nil
}

// insertInTx builds n withdrawal rows (every other one with sealed payee
// data, i.e. a non-NULL blob) and inserts them in one transaction of db,
// returning the rows and the number of prepared statements the server
// executed on the transaction's connection meanwhile.
func insertInTx(t *testing.T, db *store.DB, n int) ([]store.Withdrawal, int64) {
	t.Helper()
	ctx := context.Background()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([]store.Withdrawal, n)
	for i := range rows {
		c := cancelCommand()
		c.OutRequestNo = fmt.Sprintf("P%05d", i)
		if i%2 == 1 {
			c.PayeeInfo = nil
		}
		h, _ := withdrawal.ParamsHash(c)
		if rows[i], err = store.NewWithdrawalRow(withdrawal.NewID(), c, h, keys, now.Add(time.Duration(i)*time.Microsecond)); err != nil {
			t.Fatal(err)
		}
	}
	var executed int64
	err = db.InTx(ctx, func(tx *store.Tx) error {
		before, err := handlerCount(tx.Gorm(), "Com_stmt_execute")
		if err != nil {
			return err
		}
		if err := store.InsertWithdrawals(ctx, tx, rows); err != nil {
			return err
		}
		after, err := handlerCount(tx.Gorm(), "Com_stmt_execute")
		executed = after - before
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows, executed
}

// assertStored checks that every row reads back as it was written.
func assertStored(t *testing.T, db *store.DB, rows []store.Withdrawal) {
	t.Helper()
	for _, want := range rows {
		got, err := store.GetWithdrawal(context.Background(), db, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.OutRequestNo != want.OutRequestNo || !got.NextAttemptAt.Equal(want.NextAttemptAt) ||
			string(got.Params) != string(want.Params) || string(got.SensitiveData) != string(want.SensitiveData) ||
			(got.SensitiveData == nil) != (want.SensitiveData == nil) || got.Amount != want.Amount {
			t.Fatalf("row %s read back differently:\n got %+v\nwant %+v", want.OutRequestNo, got, want)
		}
	}
}

// TestInsertSendsBigBatchesPrepared: inside a transaction on MariaDB, 600
// rows go as prepared statements of 512, 64 and 16 rows (the remaining 8 as
// text), and every value survives the binary protocol: times to the
// microsecond, blobs, NULLs.
func TestInsertSendsBigBatchesPrepared(t *testing.T) {
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	rows, executed := insertInTx(t, db, 600)
	if executed != 3 {
		t.Errorf("the server executed %d prepared statements, want 3 (512 + 64 + 16 rows)", executed)
	}
	assertStored(t, db, rows)
}

// TestInsertPreparedWithEveryConnectionBusy: preparing takes a connection
// of the pool; with the only one held by the inserting transaction the
// insert must not wait forever but go as text.
func TestInsertPreparedWithEveryConnectionBusy(t *testing.T) {
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	sqlDB, err := db.Gorm().DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // after the migration, which needs two
	rows, executed := insertInTx(t, db, 20)
	if executed != 0 {
		t.Errorf("%d prepared statements executed with no connection to prepare on", executed)
	}
	assertStored(t, db, rows)
}

// TestCaseByID: the expression lists each added row and, with an otherwise,
// its ELSE; its arguments pair each id with its value.
func TestCaseByID(t *testing.T) {
	var c store.CaseByID
	if got, _ := c.SQL("x"); got != "CASE id ELSE x END" || c.Len() != 0 {
		t.Errorf("empty: %q, len %d", got, c.Len())
	}
	c.Add("a", 1)
	c.Add("b", "two")
	expr, args := c.SQL("col")
	if expr != "CASE id WHEN ? THEN ? WHEN ? THEN ? ELSE col END" || c.Len() != 2 {
		t.Errorf("SQL(col) = %q, len %d", expr, c.Len())
	}
	if fmt.Sprint(args) != "[a 1 b two]" {
		t.Errorf("args = %v", args)
	}
	if expr, _ := c.SQL(""); expr != "CASE id WHEN ? THEN ? WHEN ? THEN ? END" {
		t.Errorf(`SQL("") = %q`, expr)
	}
}

// TestStatementsReceivedCounts: the benchmarks' statement count moves with
// the statements sent (global, so at least ours).
func TestStatementsReceivedCounts(t *testing.T) {
	ctx := context.Background()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	before, err := store.StatementsReceived(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := store.CountByState(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	after, err := store.StatementsReceived(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 3 {
		t.Errorf("Questions moved by %d over 3 statements", after-before)
	}
}
