package callback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/callback"
	"github.com/paycore/withdraw/internal/dispatch"
	"github.com/paycore/withdraw/internal/outbox"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var ctx = context.Background()

type delivery struct {
	h    http.Header
	body []byte
}

// rig is one subtest's world: a fresh database, a provider sandbox of its
// own whose callbacks go to the handler under test (every delivery is
// captured in got), and the poller's metrics and logs the handler writes
// to. Subtests with a rig each can run in parallel.
type rig struct {
	t       *testing.T
	db      *store.DB
	env     *providertest.Env
	srv     *httptest.Server
	reg     *prometheus.Registry
	logs    *logBuffer
	mu      sync.Mutex
	got     []delivery
	handler http.Handler
}

func newRig(t *testing.T, plans map[string]string) *rig {
	t.Helper()
	db, _ := storetest.MySQL(t, store.PoolOptions{MaxOpen: 20})
	r := &rig{t: t, db: db, reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	mux := http.NewServeMux()
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Clone(), b})
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
		mux.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.env = providertest.Start(t, sandbox.Options{TickInterval: 5 * time.Millisecond,
		CallbackDelays: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
		Lifecycle: sandbox.Lifecycle{FinalDelay: 200 * time.Millisecond, RefundDelay: 400 * time.Millisecond,
			Plan: func(o sandbox.OrderInfo) string { return plans[o.OutRequestNo] }}},
		providertest.Settings{NotifyURL: r.srv.URL + "/notify/wechatpay/default"})

	log := slog.New(slog.NewJSONHandler(r.logs, nil))
	p, err := poll.New(db, r.env.Registry(), poll.Options{Instance: "p1", Rules: schedule.Accelerated(), Metrics: poll.NewMetrics(r.reg), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := callback.NewWeChat(db, map[string]*wechatpay.Client{withdrawal.DefaultAccount: r.env.WeChat}, p, log)
	h.Register(mux)
	return r
}

// submit stores the commands and dispatches them (no poller runs: only
// callbacks move them on).
func (r *rig) submit(cmds ...*withdrawal.Command) map[string]string {
	r.t.Helper()
	keys, err := pii.ParseKeyring(pii.GenerateKeyLine("k1"))
	if err != nil {
		r.t.Fatal(err)
	}
	now := time.Now().UTC()
	ids := map[string]string{}
	for _, c := range cmds {
		h, _ := withdrawal.ParamsHash(c)
		row, err := store.NewWithdrawalRow(withdrawal.NewID(), c, h, keys, now)
		if err != nil {
			r.t.Fatal(err)
		}
		rec, _ := outbox.Record(row.Event(withdrawal.NewID(), "", now), now)
		if err := store.InsertWithdrawals(ctx, r.db, []store.Withdrawal{row}); err != nil {
			r.t.Fatal(err)
		}
		if err := store.InsertOutbox(ctx, r.db, []store.OutboxEvent{rec}); err != nil {
			r.t.Fatal(err)
		}
		ids[c.OutRequestNo] = row.ID
	}
	d, err := dispatch.New(r.db, r.env.Registry(), keys, dispatch.Options{Instance: "d1", Rules: schedule.Accelerated(),
		PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		r.t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = d.Run(dctx); close(done) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return ids
}

func (r *rig) row(id string) *store.Withdrawal {
	r.t.Helper()
	w, err := store.GetWithdrawal(ctx, r.db, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

func (r *rig) waitState(id string, st withdrawal.State) *store.Withdrawal {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		w := r.row(id)
		if w.State == string(st) {
			return w
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %s/%s, want %s", w.OutRequestNo, w.State, w.ProviderStatus, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) eventTypes(id string) []string {
	r.t.Helper()
	evs, err := store.EventsOf(ctx, r.db, id)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for i, e := range evs {
		if e.Version != i+1 {
			r.t.Errorf("event %d has version %d", i, e.Version)
		}
		out = append(out, e.EventType)
	}
	return out
}

// deliveryFor returns a captured callback whose decrypted notice is for no
// with status.
func (r *rig) deliveryFor(no, status string) delivery {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.got {
		_, n, err := wechatpay.ParseWithdrawNotice(r.env.WeChat.Verifier(), r.env.WeChat.APIv3Key(), d.h, d.body)
		if err == nil && n.OutRequestNo == no && n.Status == status {
			return d
		}
	}
	r.t.Fatalf("no %s callback for %s captured", status, no)
	return delivery{}
}

// post sends a callback to the handler and returns the status and body.
func (r *rig) post(path string, d delivery) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+path, bytes.NewReader(d.body))
	for k, v := range d.h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// forge builds a callback signed with the sandbox's WeChat Pay key and
// encrypted with the merchant's APIv3 key, as WeChat would send it.
func (r *rig) forge(n wechatpay.WithdrawNotice) delivery {
	r.t.Helper()
	plain, _ := json.Marshal(n)
	res, err := wechatpay.EncryptResource([]byte(providertest.APIv3Key), plain, wechatpay.OriginalTypeWithdraw, wechatpay.OriginalTypeWithdraw)
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := json.Marshal(wechatpay.Notification{ID: "forged-" + n.OutRequestNo, CreateTime: withdrawal.FormatEventTime(time.Now()),
		EventType: wechatpay.EventWithdrawChange, ResourceType: wechatpay.ResourceEncrypt, Summary: "提现状态变更", Resource: res})
	keys := r.env.Server.Keys()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := wechatpay.NewNonce()
	sig, err := wechatpay.SignSHA256(keys.PubKey, wechatpay.ResponseMessage(ts, nonce, body))
	if err != nil {
		r.t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(wechatpay.HeaderTimestamp, ts)
	h.Set(wechatpay.HeaderNonce, nonce)
	h.Set(wechatpay.HeaderSerial, keys.PubKeyID)
	h.Set(wechatpay.HeaderSignature, sig)
	return delivery{h, body}
}

func (r *rig) callbacks(result string) float64 {
	r.t.Helper()
	fams, _ := r.reg.Gather()
	for _, f := range fams {
		if f.GetName() != "withdraw_poll_callbacks_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

const notifyPath = "/notify/wechatpay/default"

// TestCallbacks: what the WeChat callback handler does with a callback —
// the sandbox's own, a repeated one, a tampered or forged one, one for an
// order or an account it does not know. No poller sweeps: only callbacks
// move a withdrawal on.
func TestCallbacks(t *testing.T) {
	t.Parallel()

	// setup gives a subtest its own database, sandbox and handler, the
	// sandbox ending each order as plans says, and stores cmds for a
	// dispatcher to submit. When the subtest ends it checks that no
	// decrypted order data was logged: remarks and bank memos stay out.
	setup := func(t *testing.T, plans map[string]string, cmds ...*withdrawal.Command) (*rig, map[string]string) {
		t.Helper()
		r := newRig(t, plans)
		t.Cleanup(func() {
			if out := r.logs.String(); strings.Contains(out, "交易提现") || strings.Contains(out, "平台提现") {
				t.Error("decrypted notice fields were logged")
			}
		})
		return r, r.submit(cmds...)
	}

	// The sandbox's own callbacks settle withdrawals of both channels
	// through the handler: succeeded, refunded, failed, with their events
	// and the callback in the audit.
	t.Run("ProviderCallbacksSettleWithdrawals", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB1": sandbox.PlanSuccess, "CB2": sandbox.PlanRefund, "CB3": sandbox.PlanFail},
			providertest.Command(withdrawal.ChannelWeChatEcommerce, "CB1", 101),
			providertest.Command(withdrawal.ChannelWeChatPlatform, "CB2", 102),
			providertest.Command(withdrawal.ChannelWeChatPlatform, "CB3", 103))
		w := r.waitState(ids["CB1"], withdrawal.StateSucceeded)
		if w.ProviderStatus != "SUCCESS" || w.Version != 3 {
			t.Errorf("CB1: %s v%d", w.ProviderStatus, w.Version)
		}
		if got := r.eventTypes(ids["CB1"]); strings.Join(got, ",") != "withdrawal.accepted,withdrawal.submitted,withdrawal.succeeded" {
			t.Errorf("CB1 events %v", got)
		}
		w = r.waitState(ids["CB2"], withdrawal.StateReversed)
		if w.ReasonCode != "REFUND" {
			t.Errorf("CB2 reason %q", w.ReasonCode)
		}
		if got := r.eventTypes(ids["CB2"]); len(got) < 3 || got[len(got)-1] != "withdrawal.reversed" {
			t.Errorf("CB2 events %v", got)
		}
		w = r.waitState(ids["CB3"], withdrawal.StateFailed)
		if w.ReasonCode != "FAIL" {
			t.Errorf("CB3 reason %q", w.ReasonCode)
		}
		atts, _ := store.AttemptsOf(ctx, r.db, ids["CB3"])
		if last := atts[len(atts)-1]; last.Operation != poll.OpCallback || last.ProviderCode != "FAIL" {
			t.Errorf("CB3 audit %+v", last)
		}
		storetest.AssertVersionsGapFree(t, r.db)
	})

	// A callback delivered again changes nothing and is counted as
	// unchanged.
	t.Run("RepeatedCallbackChangesNothing", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB1": sandbox.PlanSuccess},
			providertest.Command(withdrawal.ChannelWeChatEcommerce, "CB1", 101))
		r.waitState(ids["CB1"], withdrawal.StateSucceeded)
		before := r.row(ids["CB1"])
		events := len(r.eventTypes(ids["CB1"]))
		d := r.deliveryFor("CB1", "SUCCESS")
		for range 3 {
			if code, body := r.post(notifyPath, d); code/100 != 2 || body != "" {
				t.Fatalf("repeat: %d %q", code, body)
			}
		}
		after := r.row(ids["CB1"])
		if after.Version != before.Version || !after.UpdatedAt.Equal(before.UpdatedAt) || len(r.eventTypes(ids["CB1"])) != events {
			t.Errorf("repeated callback changed the withdrawal: v%d→v%d", before.Version, after.Version)
		}
		if r.callbacks(callback.ResultUnchanged) < 3 {
			t.Errorf("unchanged callbacks %v", r.callbacks(callback.ResultUnchanged))
		}
	})

	// A tampered callback, or one without a signature, gets 401 and
	// changes nothing.
	t.Run("TamperedCallbackIsRefused", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB4": sandbox.PlanInit},
			providertest.Command(withdrawal.ChannelWeChatPlatform, "CB4", 104))
		before := r.waitState(ids["CB4"], withdrawal.StateSubmitted) // INIT at the sandbox, no poller: stays SUBMITTED
		d := r.forge(wechatpay.WithdrawNotice{MchID: providertest.MchID, Status: "FAIL", WithdrawID: before.ProviderRef,
			OutRequestNo: "CB4", Amount: 104})
		d.body = bytes.Replace(d.body, []byte(`"summary":"`), []byte(`"summary":"x`), 1)
		code, body := r.post(notifyPath, d)
		if code != http.StatusUnauthorized || !strings.Contains(body, `"code":"FAIL"`) {
			t.Errorf("tampered: %d %q", code, body)
		}
		unsigned := delivery{h: http.Header{}, body: d.body}
		if code, _ := r.post(notifyPath, unsigned); code != http.StatusUnauthorized {
			t.Errorf("unsigned: %d", code)
		}
		if after := r.row(ids["CB4"]); after.Version != before.Version || after.State != "SUBMITTED" {
			t.Errorf("tampered callback changed CB4: %s v%d", after.State, after.Version)
		}
	})

	// A callback for an order we do not have is acknowledged, counted and
	// logged, and changes nothing.
	t.Run("UnknownOrderIsAcknowledged", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB4": sandbox.PlanInit},
			providertest.Command(withdrawal.ChannelWeChatPlatform, "CB4", 104))
		r.waitState(ids["CB4"], withdrawal.StateSubmitted) // INIT at the sandbox, no poller: stays SUBMITTED
		counts, _ := store.CountByState(ctx, r.db)
		d := r.forge(wechatpay.WithdrawNotice{MchID: providertest.MchID, Status: "SUCCESS", WithdrawID: "999", OutRequestNo: "NOSUCH1", Amount: 1})
		if code, _ := r.post(notifyPath, d); code/100 != 2 {
			t.Errorf("unknown order: %d", code)
		}
		if after, _ := store.CountByState(ctx, r.db); len(after) != len(counts) {
			t.Errorf("states changed: %v → %v", counts, after)
		}
		if r.callbacks(callback.ResultUnknownOrder) != 1 {
			t.Error("unknown order not counted")
		}
		if !strings.Contains(r.logs.String(), "NOSUCH1") {
			t.Error("unknown order not logged")
		}
	})

	// A signed callback whose amount does not match the stored one is not
	// applied (counted as a mismatch); the same notice with the right
	// amount is.
	t.Run("OnlyTheStoredAmountIsApplied", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB4": sandbox.PlanInit},
			providertest.Command(withdrawal.ChannelWeChatPlatform, "CB4", 104))
		w := r.waitState(ids["CB4"], withdrawal.StateSubmitted) // INIT at the sandbox, no poller: stays SUBMITTED
		d := r.forge(wechatpay.WithdrawNotice{MchID: providertest.MchID, Status: "SUCCESS", WithdrawID: w.ProviderRef, OutRequestNo: "CB4", Amount: 999})
		if code, _ := r.post(notifyPath, d); code/100 != 2 {
			t.Errorf("mismatch: %d", code)
		}
		if r.row(ids["CB4"]).State != "SUBMITTED" || r.callbacks(callback.ResultMismatch) != 1 {
			t.Error("a callback with another amount was applied")
		}
		d = r.forge(wechatpay.WithdrawNotice{MchID: providertest.MchID, Status: "SUCCESS", WithdrawID: w.ProviderRef, OutRequestNo: "CB4", Amount: 104})
		if code, _ := r.post(notifyPath, d); code/100 != 2 {
			t.Errorf("valid: %d", code)
		}
		if got := r.row(ids["CB4"]); got.State != "SUCCEEDED" || got.Version != w.Version+1 {
			t.Errorf("CB4 %s v%d", got.State, got.Version)
		}
	})

	// A signed notice without amount and withdraw_id, or without our
	// number's match, must not move SUCCEEDED to REVERSED.
	t.Run("SignedButIncompleteNoticeIsNotApplied", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB1": sandbox.PlanSuccess},
			providertest.Command(withdrawal.ChannelWeChatEcommerce, "CB1", 101))
		before := r.waitState(ids["CB1"], withdrawal.StateSucceeded)
		mismatches := r.callbacks(callback.ResultMismatch)
		for _, n := range []wechatpay.WithdrawNotice{
			{SpMchID: providertest.MchID, SubMchID: providertest.SubMchID, Status: "REFUND", OutRequestNo: "CB1"},
			{SpMchID: providertest.MchID, SubMchID: providertest.SubMchID, Status: "REFUND", OutRequestNo: "CB1", Amount: 101},
			{SpMchID: providertest.MchID, SubMchID: "1900000999", Status: "REFUND", OutRequestNo: "CB1", Amount: 101, WithdrawID: before.ProviderRef},
		} {
			if code, _ := r.post(notifyPath, r.forge(n)); code/100 != 2 {
				t.Errorf("incomplete notice: %d", code)
			}
		}
		if after := r.row(ids["CB1"]); after.State != "SUCCEEDED" || after.Version != before.Version {
			t.Errorf("an incomplete notice moved CB1 to %s v%d", after.State, after.Version)
		}
		if got := r.callbacks(callback.ResultMismatch) - mismatches; got < 2 {
			t.Errorf("%v mismatches counted, want the incomplete notices", got)
		}
	})

	// A genuine callback posted to an account that is not configured gets
	// 404 with a FAIL body.
	t.Run("UnknownAccountIsNotFound", func(t *testing.T) {
		t.Parallel()
		r, ids := setup(t, map[string]string{"CB1": sandbox.PlanSuccess},
			providertest.Command(withdrawal.ChannelWeChatEcommerce, "CB1", 101))
		r.waitState(ids["CB1"], withdrawal.StateSucceeded)
		d := r.deliveryFor("CB1", "SUCCESS")
		if code, body := r.post("/notify/wechatpay/nobody", d); code != http.StatusNotFound || !strings.Contains(body, "FAIL") {
			t.Errorf("unknown account: %d %q", code, body)
		}
	})
}

// logBuffer is a concurrency-safe log sink.
type logBuffer = storetest.LogBuffer
