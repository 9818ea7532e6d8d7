package recon_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/recon"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// day is a bill date with its withdrawals on both sides.
type day struct {
	date  string
	start time.Time
	ids   map[string]string // out_request_no → withdrawal id
}

// seedDay creates n withdrawals first sent on date (Beijing): the sandbox's
// orders (status per statusOf, SUCCESS by default) and our rows (state per
// stateOf, SUCCEEDED by default). Platform ones are P…, e-commerce E….
func seedDay(t *testing.T, db *store.DB, srv *sandbox.Server, date string, nPlatform, nEcommerce int,
	statusOf map[string]string, stateOf map[string]withdrawal.State) *day {
	t.Helper()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		t.Fatal(err)
	}
	start, err := time.ParseInLocation(recon.DateLayout, date, withdrawal.Beijing)
	if err != nil {
		t.Fatal(err)
	}
	d := &day{date: date, start: start, ids: map[string]string{}}
	var cmds []*withdrawal.Command
	var orders []sandbox.SeedOrder
	tag := start.Format("0102")
	for i := 0; i < nPlatform+nEcommerce; i++ {
		ch, no := withdrawal.ChannelWeChatPlatform, fmt.Sprintf("P%s%05d", tag, i)
		if i >= nPlatform {
			ch, no = withdrawal.ChannelWeChatEcommerce, fmt.Sprintf("E%s%05d", tag, i-nPlatform)
		}
		amount := int64(100 + i%997*13)
		cmd := providertest.Command(ch, no, amount)
		created := start.Add(9*time.Hour + time.Duration(i)*time.Second)
		so := sandbox.SeedOrder{Channel: ch, MchID: providertest.MchID, SubMchID: cmd.SubMchID, OutRequestNo: no,
			Amount: amount, AccountType: cmd.AccountType, Created: created, Status: "SUCCESS"}
		if st, ok := statusOf[no]; ok {
			so.Status, so.Returned = st, created.Add(3*time.Hour)
		}
		cmds, orders = append(cmds, cmd), append(orders, so)
	}
	refs, err := srv.SeedOrders(orders)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]store.Withdrawal, 0, len(cmds))
	for i, cmd := range cmds {
		h, err := withdrawal.ParamsHash(cmd)
		if err != nil {
			t.Fatal(err)
		}
		sent := orders[i].Created.UTC()
		row, err := store.NewWithdrawalRow(withdrawal.NewID(), cmd, h, keys, sent)
		if err != nil {
			t.Fatal(err)
		}
		st := withdrawal.StateSucceeded
		if s, ok := stateOf[cmd.OutRequestNo]; ok {
			st = s
		}
		final := sent.Add(time.Minute)
		row.State, row.Version, row.ProviderRef, row.ProviderStatus = string(st), 3, refs[i], "SUCCESS"
		row.FirstSentAt, row.SubmittedAt, row.FinalAt, row.Submissions = &sent, &sent, &final, 1
		if st == withdrawal.StateFailed {
			row.ProviderStatus = "FAIL"
		}
		row.NextAttemptAt = decide.FarFuture
		rows = append(rows, row)
		d.ids[cmd.OutRequestNo] = row.ID
	}
	// GORM writes every column (the intake's insert leaves provider data
	// out): these rows are already submitted and settled.
	if err := db.Gorm().WithContext(context.Background()).CreateInBatches(rows, 500).Error; err != nil {
		t.Fatal(err)
	}
	return d
}

// reconEnv is a sandbox over HTTP, the local MariaDB and a reconciler of
// the default account's platform BASIC bill and e-commerce bill.
type reconEnv struct {
	db      *store.DB
	env     *providertest.Env
	rec     *recon.Reconciler
	reg     *prometheus.Registry
	sources []recon.Source
}

func newReconEnv(t *testing.T, partLines int) *reconEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("system test: needs the local MariaDB")
	}
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 8})
	env := providertest.Start(t, sandbox.Options{BillReadyHour: -1, BillPartLines: partLines})
	acct := &env.Config.Accounts[0]
	acct.Recon = &provider.Recon{AccountTypes: []string{"BASIC"}, Ecommerce: true}
	if err := acct.Recon.Normalize(); err != nil {
		t.Fatal(err)
	}
	c, err := wechatpay.New(*acct, mustCreds(t, *acct), wechatpay.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	sources, err := recon.WeChatSources(env.Config, map[string]*wechatpay.Client{acct.Name: c})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rec, err := recon.New(db, sources, recon.Options{Logger: quiet(), Metrics: recon.NewMetrics(reg), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return &reconEnv{db: db, env: env, rec: rec, reg: reg, sources: sources}
}

func mustCreds(t *testing.T, acct provider.Account) *wechatpay.Credentials {
	t.Helper()
	c, err := wechatpay.LoadCredentials(acct)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// items returns the day's items by outcome, as "source|out_request_no|kind".
func (e *reconEnv) items(t *testing.T, date string) map[string][]string {
	t.Helper()
	var rows []store.ReconItem
	if err := e.db.Gorm().Where("bill_date = ?", date).Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, it := range rows {
		out[it.Outcome] = append(out[it.Outcome], it.Source+"|"+it.OutRequestNo+"|"+it.LineKind)
	}
	return out
}

func (e *reconEnv) row(t *testing.T, id string) *store.Withdrawal {
	t.Helper()
	w, err := store.GetWithdrawal(context.Background(), e.db, id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSystemReconcileDay reconciles a day of 10,000 withdrawals against
// the sandbox's bills over HTTP with one of every mismatch injected, and
// finds each exactly once; the refund becomes REVERSED only through the
// poller's confirming query; a bill not ready and a corrupted download are
// retried; a re-run and a resumed run find nothing new.
func TestSystemReconcileDay(t *testing.T) {
	e := newReconEnv(t, 3000)
	ctx := context.Background()
	y := time.Now().In(withdrawal.Beijing).AddDate(0, 0, -1)
	date := y.Format(recon.DateLayout)
	tag := y.Format("0102")
	P := func(i int) string { return fmt.Sprintf("P%s%05d", tag, i) }
	E := func(i int) string { return fmt.Sprintf("E%s%05d", tag, i) }
	d := seedDay(t, e.db, e.env.Server, date, 6000, 4000,
		map[string]string{E(400): "REFUND", E(500): "FAIL"},
		map[string]withdrawal.State{E(500): withdrawal.StateFailed})

	e.env.Server.SetBillFaults(sandbox.BillFaults{
		Omit:             []string{P(100), E(100)},
		Extra:            1,
		WrongAmount:      []string{P(200)},
		Refund:           []string{P(300)},
		CorruptDownloads: 1,
		NotReady:         1,
	})

	// First run: one bill is not ready; the other is read (its first
	// download corrupted, refused and fetched again). The day stays
	// PENDING and nothing is called missing yet.
	day, err := e.rec.Reconcile(ctx, date)
	if err == nil || day.Status != store.ReconPending || day.SourcesDone != 1 || day.MissingCount != 0 {
		t.Fatalf("first run: err %v, day %+v; want a not-ready error and one bill of two", err, day)
	}
	if got := e.failures("refused"); got != 1 {
		t.Errorf("refused downloads counted %v, want 1", got)
	}
	if f := e.env.Server.BillFaults(); f.CorruptDownloads != 0 || f.NotReady != 0 {
		t.Fatalf("faults not consumed: %+v", f)
	}

	// Second run: the other bill, then the missing ones.
	day, err = e.rec.Reconcile(ctx, date)
	if err != nil {
		t.Fatal(err)
	}
	platform, ecommerce := "wechatpay/default/platform/BASIC", "wechatpay/default/ecommerce/ALL"
	want := map[string][]string{
		store.ReconNotOurs:        {platform + "|NOTOURS" + y.Format("20060102") + "0000|withdraw", ecommerce + "|NOTOURS" + y.Format("20060102") + "0000|withdraw"},
		store.ReconMissing:        {platform + "|" + P(100) + "|", ecommerce + "|" + E(100) + "|"},
		store.ReconAmountMismatch: {platform + "|" + P(200) + "|withdraw"},
		store.ReconRefund:         {platform + "|" + P(300) + "|refund", ecommerce + "|" + E(400) + "|refund"},
	}
	got := e.items(t, date)
	for outcome, w := range want {
		if !sameSet(got[outcome], w) {
			t.Errorf("%s: got %v, want %v", outcome, got[outcome], w)
		}
	}
	if n := len(got[store.ReconMatched]); n != 9998 {
		t.Errorf("matched %d, want 9998 (10,000 withdrawal lines − 2 omitted − 1 wrong amount + 1 refund of a FAILED one)", n)
	}
	if day.Status != store.ReconDone || day.MatchedCount != 9998 || day.NotOursCount != 2 || day.MissingCount != 2 ||
		day.AmountMismatchCount != 1 || day.RefundCount != 2 || day.BillLines != 6001+4002 {
		t.Errorf("summary %+v", day)
	}

	// Only the refund and missing rows were made due for a query; states
	// are untouched by the bill.
	for _, no := range []string{P(100), E(100), P(300), E(400)} {
		w := e.row(t, d.ids[no])
		if w.State != string(withdrawal.StateSucceeded) || w.NextAttemptAt.After(time.Now()) {
			t.Errorf("%s: %s due %v; want SUCCEEDED and due now", no, w.State, w.NextAttemptAt)
		}
	}
	if w := e.row(t, d.ids[P(1)]); !w.NextAttemptAt.Equal(decide.FarFuture) {
		t.Errorf("a matched withdrawal was made due: %v", w.NextAttemptAt)
	}

	// The poller's sweep queries them: the real refund is confirmed and
	// reversed with its event; the phantom refund and the missing ones
	// stay SUCCEEDED (the provider says SUCCESS).
	p, err := poll.New(e.db, e.env.Registry(), poll.Options{Rules: schedule.Production(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Sweep(ctx)
	if err != nil || st.Queried < 4 {
		t.Fatalf("sweep: %+v, %v", st, err)
	}
	if w := e.row(t, d.ids[E(400)]); w.State != string(withdrawal.StateReversed) {
		t.Errorf("refunded withdrawal is %s, want REVERSED after the confirming query", w.State)
	}
	evs, err := store.EventsOf(ctx, e.db, d.ids[E(400)])
	if err != nil || len(evs) != 1 || evs[0].EventType != string(withdrawal.EventReversed) {
		t.Errorf("events of the reversed withdrawal: %v %v", evs, err)
	}
	for _, no := range []string{P(100), E(100), P(300)} {
		if w := e.row(t, d.ids[no]); w.State != string(withdrawal.StateSucceeded) {
			t.Errorf("%s is %s: the bill alone must never move a state", no, w.State)
		}
	}

	// A re-run changes nothing: same items, same summary, no new query.
	before := map[string]time.Time{}
	for _, no := range []string{P(100), E(100), P(300), E(400)} {
		before[no] = e.row(t, d.ids[no]).NextAttemptAt
	}
	itemsBefore := e.findings(store.ReconMissing) + e.findings(store.ReconMatched)
	again, err := e.rec.Reconcile(ctx, date)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDay(again, day) {
		t.Errorf("re-run changed the summary:\n%+v\n%+v", again, day)
	}
	// Resumed after a crash that lost the sources' DONE marks: the bills
	// are read again, and still nothing is new.
	if err := e.db.Gorm().Model(&store.ReconSource{}).Where("bill_date = ?", date).Update("status", store.ReconPending).Error; err != nil {
		t.Fatal(err)
	}
	again, err = e.rec.Reconcile(ctx, date)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDay(again, day) {
		t.Errorf("resumed run changed the summary:\n%+v\n%+v", again, day)
	}
	if got2 := e.items(t, date); len(got2[store.ReconMatched]) != 9998 || !sameSet(got2[store.ReconRefund], want[store.ReconRefund]) {
		t.Errorf("re-runs changed the items")
	}
	if n := e.findings(store.ReconMissing) + e.findings(store.ReconMatched); n != itemsBefore {
		t.Errorf("re-runs recorded %v new items", n-itemsBefore)
	}
	for no, at := range before {
		if w := e.row(t, d.ids[no]); !w.NextAttemptAt.Equal(at) {
			t.Errorf("%s: re-run made it due again (%v, was %v)", no, w.NextAttemptAt, at)
		}
	}
}

func (e *reconEnv) failures(reason string) float64 {
	return metric(e.reg, "withdraw_recon_bill_failures_total", map[string]string{"reason": reason})
}

func (e *reconEnv) findings(outcome string) float64 {
	return metric(e.reg, "withdraw_recon_items_total", map[string]string{"outcome": outcome})
}

// metric sums the series of a metric family whose labels include want.
func metric(reg *prometheus.Registry, name string, want map[string]string) float64 {
	var sum float64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func sameDay(a, b *store.ReconDay) bool {
	x, y := *a, *b
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	return x == y
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

// TestSystemRunTakesTurns runs the cron job while another instance holds
// the reconciliation's lock: it skips, and reconciles the due days once
// the lock is free.
func TestSystemRunTakesTurns(t *testing.T) {
	e := newReconEnv(t, 3000)
	ctx := context.Background()
	// Two days back is due whatever the hour (ReadyHour the day after).
	date := time.Now().In(withdrawal.Beijing).AddDate(0, 0, -2).Format(recon.DateLayout)
	release, ok, err := store.TryAdvisoryLock(ctx, e.db, "withdraw.recon")
	if err != nil || !ok {
		t.Fatalf("take the lock: ok %v, %v", ok, err)
	}
	if err := e.rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if srcs, err := store.ReconSources(ctx, e.db, date); err != nil || len(srcs) != 0 {
		t.Fatalf("ran under another instance's lock: %+v, %v", srcs, err)
	}
	release()
	if err := e.rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	srcs, err := store.ReconSources(ctx, e.db, date)
	if err != nil || len(srcs) != len(e.sources) {
		t.Fatalf("after the lock was freed: %+v, %v; want every bill of %s", srcs, err, date)
	}
	for _, s := range srcs {
		if s.Status != store.ReconDone {
			t.Errorf("%s: %s (%s)", s.Source, s.Status, s.LastError)
		}
	}
}
