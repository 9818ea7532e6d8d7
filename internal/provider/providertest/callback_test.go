package providertest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

type delivery struct {
	h    http.Header
	body []byte
}

// TestCallbacksVerifyAndDecrypt: the sandbox's MCHWITHDRAW.CHANGE callback,
// signed in either mode and AES-GCM encrypted, parses with the client's
// verifier and APIv3 key; a failed delivery is retried.
func TestCallbacksVerifyAndDecrypt(t *testing.T) {
	for _, mode := range []string{sandbox.SignPublicKey, sandbox.SignCertificate} {
		t.Run(mode, func(t *testing.T) {
			got := make(chan delivery, 8)
			var calls atomic.Int32
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if calls.Add(1) == 1 {
					w.WriteHeader(http.StatusInternalServerError) // the first delivery fails
					return
				}
				got <- delivery{r.Header.Clone(), b}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer sink.Close()
			env := providertest.Start(t, sandbox.Options{SignMode: mode, CallbackDelays: []time.Duration{10 * time.Millisecond},
				TickInterval: 5 * time.Millisecond}, providertest.Settings{NotifyURL: sink.URL + "/notify"})
			cmd := providertest.Command(withdrawal.ChannelWeChatEcommerce, "CB"+mode[:4], 321)
			_, out := provider.Submit(ctx, env.Provider(withdrawal.ChannelWeChatEcommerce), cmd)
			wantKind(t, "submit", out, provider.KindAccepted)
			var d delivery
			select {
			case d = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no callback")
			}
			n, notice, err := wechatpay.ParseWithdrawNotice(env.WeChat.Verifier(), env.WeChat.APIv3Key(), d.h, d.body)
			if err != nil {
				t.Fatal(err)
			}
			if n.EventType != wechatpay.EventWithdrawChange || n.Resource.OriginalType != wechatpay.OriginalTypeWithdraw {
				t.Fatalf("envelope %+v", n)
			}
			if notice.OutRequestNo != cmd.OutRequestNo || notice.Status != "SUCCESS" || notice.Amount != 321 ||
				notice.WithdrawID != out.ProviderRef || notice.SubMchID != providertest.SubMchID {
				t.Fatalf("notice %+v", notice)
			}
			// Tampering is detected.
			d.body[len(d.body)-2] ^= 1
			if _, _, err := wechatpay.ParseWithdrawNotice(env.WeChat.Verifier(), env.WeChat.APIv3Key(), d.h, d.body); err == nil {
				t.Fatal("tampered callback accepted")
			}
			// The sandbox counts a delivery after the sink answered it.
			deadline := time.Now().Add(5 * time.Second)
			for l := env.Ledger(); l.CallbacksSent < 2 || l.CallbacksAcked != 1; l = env.Ledger() {
				if time.Now().After(deadline) {
					t.Fatalf("callbacks sent=%d acked=%d", l.CallbacksSent, l.CallbacksAcked)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestLedgerMaxInFlight: concurrent submissions for one merchant are seen
// and counted.
func TestLedgerMaxInFlight(t *testing.T) {
	env := providertest.Start(t, sandbox.Options{})
	env.SetFaults(sandbox.EndpointPlatformSubmit, sandbox.Fault{Latency: 100 * time.Millisecond})
	p := env.Provider(withdrawal.ChannelWeChatPlatform)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, out := provider.Submit(ctx, p, providertest.Command(withdrawal.ChannelWeChatPlatform, "PAR"+itoa(i), 1))
			if out.Kind != provider.KindAccepted {
				t.Errorf("submit %d: %+v", i, out)
			}
		}()
	}
	wg.Wait()
	l := env.Ledger()
	if l.MaxInFlight[providertest.MchID] < 2 {
		t.Fatalf("max in flight %v", l.MaxInFlight)
	}
	if len(l.Orders) != 4 {
		t.Fatalf("orders %+v", l.Orders)
	}
}
