package dispatch_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// rig is one subtest's world: a fresh database (its DSN too, for the
// children of the system test), a provider sandbox of its own over HTTP,
// and the keyring of the withdrawals it seeds. Subtests with a rig each can
// run in parallel.
type rig struct {
	t       *testing.T
	dsn     string
	db      *store.DB
	keyLine string
	keys    *pii.Keyring
	env     *providertest.Env
}

func newRig(t *testing.T, opts sandbox.Options) *rig {
	t.Helper()
	db, dsn := storetest.MySQL(t, store.PoolOptions{MaxOpen: 40})
	keyLine := pii.GenerateKeyLine("k1")
	keys, err := pii.ParseKeyring(keyLine)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, dsn: dsn, db: db, keyLine: keyLine, keys: keys, env: providertest.Start(t, opts)}
}

// seed stores commands as ACCEPTED withdrawals, as the intake would.
func (r *rig) seed(cmds ...*withdrawal.Command) { storetest.Seed(r.t, r.db, r.keys, cmds...) }

func (r *rig) dispatcher(name string, opts dispatch.Options) *dispatch.Dispatcher {
	opts.Instance = name
	if opts.Rules == (schedule.Rules{}) {
		opts.Rules = schedule.Accelerated()
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	d, err := dispatch.New(r.db, r.env.Registry(), r.keys, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func run(t *testing.T, d *dispatch.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}
}

// waitSettled waits until no withdrawal is ACCEPTED, SUBMITTING or UNKNOWN.
func (r *rig) waitSettled(timeout time.Duration) {
	r.t.Helper()
	r.waitFor(timeout, func(c map[string]int64) bool { return c["ACCEPTED"]+c["SUBMITTING"]+c["UNKNOWN"] == 0 })
}

// waitFor polls the count of withdrawals per state until done says so.
func (r *rig) waitFor(timeout time.Duration, done func(map[string]int64) bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counts, err := store.CountByState(context.Background(), r.db)
		if err != nil {
			r.t.Fatal(err)
		}
		if done(counts) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("condition not reached after %s: %v", timeout, counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exportKeyring(_ *testing.T, r *rig) string { return r.keyLine }

// commandFor is a valid command of the channel numbered i.
func commandFor(ch withdrawal.Channel, i int) *withdrawal.Command {
	return providertest.Command(ch, fmt.Sprintf("S%d", i), int64(100+i))
}

// mixed is n valid commands numbered prefix0…, over every channel in turn,
// those with a sub-merchant spread over that many sub-merchants.
func mixed(n, merchants int, prefix string) []*withdrawal.Command {
	var cmds []*withdrawal.Command
	for i := range n {
		ch := withdrawal.Channels[i%len(withdrawal.Channels)]
		c := providertest.Command(ch, fmt.Sprintf("%s%d", prefix, i), int64(100+i))
		if c.SubMchID != "" {
			c.SubMchID = fmt.Sprintf("19%08d", i%merchants)
			if c.PayeeType == "CONTRIBUTION_MERCHANT" {
				c.PayeeMchID = c.SubMchID
			}
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// TestDispatcherSubmission: what the dispatcher makes of accepted
// withdrawals and of the provider's answers to their submission.
func TestDispatcherSubmission(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and sandbox, started with opts.
	setup := func(t *testing.T, opts sandbox.Options) *rig {
		t.Helper()
		return newRig(t, opts)
	}

	// Withdrawals of every channel over ten merchants are all submitted,
	// each created once at the provider, versions 1..n without gaps; a
	// submitted row carries the provider's reference, the time, the count
	// and the request sent, with one accepted submit in its audit.
	t.Run("EveryChannelIsSubmitted", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour}})
		r.seed(mixed(40, 10, "H")...)
		stop := run(t, r.dispatcher("d1", dispatch.Options{}))
		r.waitSettled(60 * time.Second)
		stop()

		counts, _ := store.CountByState(context.Background(), r.db)
		if counts["SUBMITTED"] != 40 {
			t.Errorf("states %v, want 40 SUBMITTED", counts)
		}
		r.env.AssertPaidAtMostOnce()
		storetest.AssertVersionsGapFree(t, r.db)
		var w store.Withdrawal
		r.db.Gorm().Where("channel = ?", "wechatpay_platform").First(&w)
		if w.ProviderRef == "" || w.SubmittedAt == nil || w.Submissions != 1 || len(w.ProviderRequest) == 0 {
			t.Errorf("submitted row incomplete: ref %q submitted_at %v submissions %d", w.ProviderRef, w.SubmittedAt, w.Submissions)
		}
		attempts, _ := store.AttemptsOf(context.Background(), r.db, w.ID)
		if len(attempts) != 1 || attempts[0].Operation != "submit" || attempts[0].Outcome != "ACCEPTED" || attempts[0].HTTPStatus != 200 {
			t.Errorf("attempts %+v", attempts)
		}
	})

	// A definite rejection (NOT_ENOUGH) fails the withdrawal with the
	// provider's code.
	t.Run("DefiniteRejectionFails", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Balances: map[string]int64{providertest.MchID: 1}})
		r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "NE1", 500))
		stop := run(t, r.dispatcher("d1", dispatch.Options{}))
		r.waitSettled(30 * time.Second)
		stop()
		w, err := store.GetWithdrawalByKey(context.Background(), r.db, "wechatpay_platform", "default", "NE1")
		if err != nil {
			t.Fatal(err)
		}
		if w.State != "FAILED" || w.ReasonCode != "NOT_ENOUGH" {
			t.Errorf("state %s reason %s, want FAILED NOT_ENOUGH", w.State, w.ReasonCode)
		}
		storetest.AssertVersionsGapFree(t, r.db)
	})
}

// TestDispatcherMoneySafety: a withdrawal is sent again only when that
// cannot pay it twice — whatever the provider answers, when an instance
// dies holding a claim, when the provider left an order at INIT.
func TestDispatcherMoneySafety(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and sandbox, started with opts.
	setup := func(t *testing.T, opts sandbox.Options) *rig {
		t.Helper()
		return newRig(t, opts)
	}

	// Two dispatchers run against a sandbox that fails a fifth of the
	// submissions in every way it can: nothing is created twice, no
	// merchant ever has two submissions in flight, every withdrawal ends
	// SUBMITTED with versions 1..n without gaps.
	t.Run("ProviderFaultsNeverPayTwice", func(t *testing.T) {
		t.Parallel()
		fault := sandbox.Fault{
			Latency:            2 * time.Millisecond,
			Rate5xx:            0.05,
			Rate429:            0.05,
			Errors:             map[string]float64{"SYSTEM_ERROR": 0.04},
			TimeoutAfterCommit: 0.04,
			BadSignature:       0.02,
		}
		r := setup(t, sandbox.Options{Seed: 7, Lifecycle: sandbox.Lifecycle{FinalDelay: time.Hour},
			Faults: map[string]sandbox.Fault{"*": fault}})
		n := 400
		if testing.Short() {
			n = 100
		}
		r.seed(mixed(n, 50, "F")...)
		opts := dispatch.Options{LeaseTTL: 20 * time.Second}
		stopA := run(t, r.dispatcher("a", opts))
		stopB := run(t, r.dispatcher("b", opts))
		r.waitSettled(3 * time.Minute)
		stopA()
		stopB()

		r.env.AssertPaidAtMostOnce()
		ledger := r.env.Ledger()
		for m, max := range ledger.MaxInFlight {
			if max > 1 {
				t.Errorf("merchant %s had %d submissions in flight, cap 1", m, max)
			}
		}
		counts, _ := store.CountByState(context.Background(), r.db)
		if counts["SUBMITTED"] != int64(n) {
			t.Errorf("states %v, want all %d SUBMITTED", counts, n)
		}
		storetest.AssertVersionsGapFree(t, r.db)
	})

	// A claim abandoned by a dead instance turns UNKNOWN; the next query
	// finds nothing (it was never sent), and once that is conclusive the
	// identical request is sent.
	t.Run("ExpiredLeaseBecomesUnknownThenSettles", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{})
		r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "L1", 100))
		ctx := context.Background()
		// Claimed by an instance that crashed: its lease ended a second ago.
		l1, err := store.GetWithdrawalByKey(ctx, r.db, "wechatpay_platform", "default", "L1")
		if err != nil {
			t.Fatal(err)
		}
		if lost, err := store.ClaimWithdrawals(ctx, r.db, []store.Claim{{ID: l1.ID, Version: l1.Version}}, "dead:0",
			time.Now().UTC().Add(-time.Second), time.Now().UTC()); err != nil || len(lost) > 0 {
			t.Fatalf("claim L1: lost %v, %v", lost, err)
		}
		d := r.dispatcher("d1", dispatch.Options{})
		n, err := d.ExpireLeases(ctx)
		if err != nil || n != 1 {
			t.Fatalf("expired %d, err %v", n, err)
		}
		w, _ := store.GetWithdrawalByKey(ctx, r.db, "wechatpay_platform", "default", "L1")
		if w.State != "UNKNOWN" || w.Version != 2 {
			t.Fatalf("after expiry: %s v%d", w.State, w.Version)
		}
		stop := run(t, d)
		r.waitSettled(30 * time.Second)
		stop()
		w, _ = store.GetWithdrawalByKey(ctx, r.db, "wechatpay_platform", "default", "L1")
		if w.State != "SUBMITTED" {
			t.Fatalf("final state %s", w.State)
		}
		attempts, _ := store.AttemptsOf(ctx, r.db, w.ID)
		var ops []string
		for _, a := range attempts {
			ops = append(ops, a.Operation+":"+a.Outcome)
		}
		// It must have asked before it re-sent.
		if len(ops) < 2 || ops[0] != "query:NOT_FOUND" || ops[len(ops)-1] != "resubmit:ACCEPTED" {
			t.Errorf("attempts %v, want a NOT_FOUND query first and an accepted resubmit last", ops)
		}
		r.env.AssertPaidAtMostOnce()
		storetest.AssertVersionsGapFree(t, r.db)
	})

	// When the poller asks for the INIT order to be driven again, the
	// dispatcher re-sends the stored bytes; the provider creates nothing
	// new and the withdrawal stays SUBMITTED without an event.
	t.Run("InitIsRedrivenWithoutANewOrder", func(t *testing.T) {
		t.Parallel()
		r := setup(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{PInit: 1, FinalDelay: time.Hour}})
		r.seed(providertest.Command(withdrawal.ChannelWeChatPlatform, "INIT1", 100))
		ctx := context.Background()
		stop := run(t, r.dispatcher("d1", dispatch.Options{}))
		defer stop()
		r.waitSettled(30 * time.Second)
		w, _ := store.GetWithdrawalByKey(ctx, r.db, "wechatpay_platform", "default", "INIT1")
		if w.State != "SUBMITTED" || w.Version != 2 {
			t.Fatalf("after submit: %s v%d", w.State, w.Version)
		}
		// What the poller does on INIT.
		if err := r.db.Gorm().Exec("UPDATE withdrawals SET resubmit_requested = 1, next_attempt_at = ? WHERE id = ?", time.Now().UTC(), w.ID).Error; err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			w, _ = store.GetWithdrawalByKey(ctx, r.db, "wechatpay_platform", "default", "INIT1")
			if !w.ResubmitRequested && w.State == "SUBMITTED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("re-drive not done: %+v", w)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if w.Version != 2 || w.Submissions != 2 {
			t.Errorf("after re-drive: v%d, %d submissions; want v2, 2", w.Version, w.Submissions)
		}
		for _, o := range r.env.Ledger().Orders {
			if o.OutRequestNo == "INIT1" && (o.Submissions != 2 || o.Created != 1) {
				t.Errorf("ledger %+v, want 2 submissions and 1 creation", o)
			}
		}
		r.env.AssertPaidAtMostOnce()
		storetest.AssertVersionsGapFree(t, r.db)
	})
}

// TestDispatcherFairness: how the dispatcher shares its calls between
// merchants — in turns, and with the ones it has not been told about.
func TestDispatcherFairness(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database and a sandbox that answers
	// every call after 5ms, so that a backlog takes a while.
	setup := func(t *testing.T) *rig {
		t.Helper()
		return newRig(t, sandbox.Options{Faults: map[string]sandbox.Fault{"*": {Latency: 5 * time.Millisecond}}})
	}

	// A merchant with a long queue does not starve one with a few
	// withdrawals.
	t.Run("SmallMerchantIsNotStarved", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		var cmds []*withdrawal.Command
		for i := range 200 {
			c := providertest.Command(withdrawal.ChannelWeChatEcommerce, fmt.Sprintf("BIG%d", i), 100)
			c.SubMchID = "1900000001"
			cmds = append(cmds, c)
		}
		r.seed(cmds...)
		var small []*withdrawal.Command
		for i := range 3 {
			c := providertest.Command(withdrawal.ChannelWeChatEcommerce, fmt.Sprintf("SMALL%d", i), 100)
			c.SubMchID = "1900000002"
			small = append(small, c)
		}
		r.seed(small...)
		stop := run(t, r.dispatcher("d1", dispatch.Options{}))
		r.waitSettled(2 * time.Minute)
		stop()

		var rows []store.Withdrawal
		r.db.Gorm().Order("submitted_at").Find(&rows)
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].SubmittedAt.Before(*rows[j].SubmittedAt) })
		lastSmall := -1
		for i, w := range rows {
			if w.MerchantKey == "wechatpay:default:1900000002" {
				lastSmall = i
			}
		}
		// Served in turns, the small merchant's third withdrawal is done
		// after at most a handful of the big merchant's.
		if lastSmall < 0 || lastSmall > 10 {
			t.Errorf("the small merchant finished at position %d of %d", lastSmall, len(rows))
		}
	})

	// While a backlog keeps every claim productive from the reused
	// due-merchant list (two merchants, one call at a time, so a claim
	// always finds one of them ready), a merchant whose withdrawal was
	// stored without telling this dispatcher (another instance's intake) is
	// still found by the periodic scan, long before the backlog is done.
	t.Run("MerchantStoredElsewhereIsFoundWhileBusy", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		var big []*withdrawal.Command
		for i := range 300 {
			c := providertest.Command(withdrawal.ChannelWeChatEcommerce, fmt.Sprintf("BUSY%d", i), 100)
			c.SubMchID = fmt.Sprintf("190000000%d", 1+i%2)
			big = append(big, c)
		}
		r.seed(big...)
		stop := run(t, r.dispatcher("d1", dispatch.Options{MaxInFlight: 1}))
		r.waitFor(time.Minute, func(c map[string]int64) bool { return c["SUBMITTED"] >= 20 })
		late := providertest.Command(withdrawal.ChannelWeChatEcommerce, "LATE1", 100)
		late.SubMchID = "1900000003"
		r.seed(late)
		r.waitSettled(2 * time.Minute)
		stop()

		var rows []store.Withdrawal
		r.db.Gorm().Find(&rows)
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].SubmittedAt.Before(*rows[j].SubmittedAt) })
		for i, w := range rows {
			if w.OutRequestNo == "LATE1" {
				// Found within about dueScanMaxAge (500ms), while the
				// backlog needs 300 calls of at least 5ms one after another.
				if after := len(rows) - 1 - i; after < 100 {
					t.Errorf("the late merchant was submitted with only %d of the backlog after it", after)
				}
				return
			}
		}
		t.Error("the late withdrawal was never submitted")
	})
}
