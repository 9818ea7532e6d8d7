package providertest_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var ctx = context.Background()

var submitEndpoint = map[withdrawal.Channel]string{
	withdrawal.ChannelWeChatEcommerce:  sandbox.EndpointEcommerceSubmit,
	withdrawal.ChannelWeChatPlatform:   sandbox.EndpointPlatformSubmit,
	withdrawal.ChannelWeChatCancel:     sandbox.EndpointCancelSubmit,
	withdrawal.ChannelAllinpayShopoint: sandbox.EndpointAllinpaySubmit,
}

var queryEndpoint = map[withdrawal.Channel]string{
	withdrawal.ChannelWeChatEcommerce:  sandbox.EndpointEcommerceQuery,
	withdrawal.ChannelWeChatPlatform:   sandbox.EndpointPlatformQuery,
	withdrawal.ChannelWeChatCancel:     sandbox.EndpointCancelQuery,
	withdrawal.ChannelAllinpayShopoint: sandbox.EndpointAllinpayQuery,
}

var successStatus = map[withdrawal.Channel]string{
	withdrawal.ChannelWeChatEcommerce:  "SUCCESS",
	withdrawal.ChannelWeChatPlatform:   "SUCCESS",
	withdrawal.ChannelWeChatCancel:     "PAY_SUCCEED",
	withdrawal.ChannelAllinpayShopoint: "2",
}

func wantKind(t *testing.T, what string, got provider.Outcome, want provider.Kind) {
	t.Helper()
	if got.Kind != want {
		t.Fatalf("%s: kind %s, want %s (code=%s msg=%s http=%d err=%v)", what, got.Kind, want, got.Code, got.Message, got.HTTPStatus, got.Err)
	}
}

// TestHappyPathEveryChannel submits, queries by number and by provider id,
// and follows the lifecycle to success, in both signing modes.
func TestHappyPathEveryChannel(t *testing.T) {
	for _, mode := range []string{sandbox.SignPublicKey, sandbox.SignCertificate} {
		clock := providertest.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, withdrawal.Beijing))
		env := providertest.Start(t, sandbox.Options{SignMode: mode, Now: clock.Now,
			Lifecycle: sandbox.Lifecycle{FinalDelay: time.Minute}})
		for _, ch := range withdrawal.Channels {
			t.Run(mode+"/"+string(ch), func(t *testing.T) {
				p := env.Provider(ch)
				cmd := providertest.Command(ch, "HP"+mode[:4]+string(ch[len(ch)-4:]), 110)
				if r := withdrawal.Validate(cmd); r != nil {
					t.Fatalf("test command invalid: %v", r)
				}
				_, out := provider.Submit(ctx, p, cmd)
				wantKind(t, "submit", out, provider.KindAccepted)
				if out.ProviderRef == "" || out.State != withdrawal.StateSubmitted {
					t.Fatalf("submit: %+v", out)
				}
				key := provider.QueryKeyOf(cmd, out.ProviderRef)
				q := p.QueryByOutRequestNo(ctx, key)
				wantKind(t, "query", q.Outcome, provider.KindAccepted)
				// The cancel query answer carries no amount.
				if q.State != withdrawal.StateSubmitted || (ch != withdrawal.ChannelWeChatCancel && q.Amount != cmd.TotalAmount()) {
					t.Fatalf("query before final: %+v", q)
				}
				clock.Advance(2 * time.Minute)
				for _, q := range []provider.QueryResult{p.QueryByOutRequestNo(ctx, key), p.QueryByProviderRef(ctx, key)} {
					wantKind(t, "query", q.Outcome, provider.KindAccepted)
					if q.State != withdrawal.StateSucceeded || q.ProviderStatus != successStatus[ch] || q.ProviderRef != out.ProviderRef {
						t.Fatalf("query after final: %+v (submit ref %s)", q, out.ProviderRef)
					}
				}
			})
		}
		env.AssertPaidAtMostOnce()
	}
}

// TestEveryDocumentedCodeThroughHTTP injects each code of the table at the
// endpoint it belongs to and checks the client classifies it as the table
// says.
func TestEveryDocumentedCodeThroughHTTP(t *testing.T) {
	env := providertest.Start(t, sandbox.Options{})
	n := 0
	for _, rule := range provider.Table {
		if rule.Status {
			continue
		}
		for _, ch := range rule.Channels {
			op := rule.Op
			n++
			cmd := providertest.Command(ch, "C"+string(rune('A'+n%26))+itoa(n), 100)
			p := env.Provider(ch)
			var got provider.Outcome
			endpoint := submitEndpoint[ch]
			if op == provider.OpQuery {
				endpoint = queryEndpoint[ch]
			}
			env.SetFaults(endpoint, sandbox.Fault{Errors: map[string]float64{rule.Code: 1}})
			switch op {
			case provider.OpSubmit, provider.OpResend:
				req, err := p.BuildSubmit(ctx, cmd)
				if err != nil {
					t.Fatal(err)
				}
				req.Resend = op == provider.OpResend
				got = p.Send(ctx, req)
			default:
				got = p.QueryByOutRequestNo(ctx, provider.QueryKeyOf(cmd, "")).Outcome
			}
			env.ClearFaults()
			if got.Kind != rule.Kind || got.Code != rule.Code || got.Alert != rule.Alert || got.QueryNow != rule.QueryNow || got.Refusal != rule.Refusal {
				t.Errorf("%s %s %s: got kind=%s code=%s alert=%v query_now=%v refusal=%v, table says %s alert=%v query_now=%v refusal=%v",
					ch, op, rule.Code, got.Kind, got.Code, got.Alert, got.QueryNow, got.Refusal, rule.Kind, rule.Alert, rule.QueryNow, rule.Refusal)
			}
			if (rule.Kind == provider.KindRejected) != (got.State == withdrawal.StateFailed) {
				t.Errorf("%s %s %s: only a rejection maps to FAILED, got %q", ch, op, rule.Code, got.State)
			}
		}
	}
	// An undocumented code is never a rejection.
	env.SetFaults(sandbox.EndpointPlatformSubmit, sandbox.Fault{Errors: map[string]float64{"SOMETHING_NEW": 1}})
	_, got := provider.Submit(ctx, env.Provider(withdrawal.ChannelWeChatPlatform), providertest.Command(withdrawal.ChannelWeChatPlatform, "UNKNOWN1", 1))
	wantKind(t, "unknown code", got, provider.KindAmbiguous)
	env.AssertPaidAtMostOnce()
	for _, o := range env.Ledger().Orders {
		if o.Created != 0 {
			t.Errorf("an injected error must not create an order: %+v", o)
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestAmbiguousCases: an order created but never answered, or answered with
// a bad signature, is ambiguous; resending the same bytes settles it
// without a second order.
func TestAmbiguousCases(t *testing.T) {
	env := providertest.Start(t, sandbox.Options{})
	for _, ch := range withdrawal.Channels {
		for _, f := range []struct {
			name  string
			fault sandbox.Fault
			code  string
		}{
			{"timeout-after-commit", sandbox.Fault{TimeoutAfterCommit: 1}, provider.CodeTransport},
			{"bad-signature", sandbox.Fault{BadSignature: 1}, provider.CodeUnverified},
			{"5xx", sandbox.Fault{Rate5xx: 1}, ""},
		} {
			t.Run(string(ch)+"/"+f.name, func(t *testing.T) {
				p := env.Provider(ch)
				cmd := providertest.Command(ch, "AMB"+itoa(len(f.name))+string(ch[:3]), 100)
				req, err := p.BuildSubmit(ctx, cmd)
				if err != nil {
					t.Fatal(err)
				}
				env.SetFaults(submitEndpoint[ch], f.fault)
				out := p.Send(ctx, req)
				env.ClearFaults()
				wantKind(t, f.name, out, provider.KindAmbiguous)
				if f.code != "" && out.Code != f.code {
					t.Fatalf("code %s, want %s", out.Code, f.code)
				}
				req.Resend = true
				again := p.Send(ctx, req)
				if ch == withdrawal.ChannelWeChatCancel && f.name != "5xx" {
					// The order exists: RESOURCE_ALREADY_EXISTS, query now.
					wantKind(t, "resend", again, provider.KindAmbiguous)
					if !again.QueryNow {
						t.Fatalf("resend: want QueryNow, got %+v", again)
					}
				} else {
					wantKind(t, "resend", again, provider.KindAccepted)
				}
				lo, ok := env.Ledger().Find(string(ch), cmd.OutRequestNo)
				wantCreated := 1
				if !ok || lo.Created != wantCreated {
					t.Fatalf("ledger: %+v", lo)
				}
			})
		}
	}
}

// TestRetryLater: 429 and our own bad signature process nothing.
func TestRetryLater(t *testing.T) {
	env := providertest.Start(t, sandbox.Options{})
	for _, ch := range withdrawal.Channels {
		env.SetFaults(submitEndpoint[ch], sandbox.Fault{Rate429: 1})
		_, out := provider.Submit(ctx, env.Provider(ch), providertest.Command(ch, "RL"+string(ch[:5]), 1))
		env.ClearFaults()
		wantKind(t, string(ch)+" 429", out, provider.KindRetryLater)
		if out.RetryAfter <= 0 {
			t.Fatalf("429 without delay: %+v", out)
		}
	}
	// A client whose key the sandbox does not know: SIGN_ERROR.
	cfg := *env.Config
	cfg.Accounts = append([]provider.Account(nil), cfg.Accounts...)
	bad := env.Config.Accounts[0]
	bad.PrivateKeyFile = env.Config.Accounts[1].PrivateKeyFile // the Allinpay key: wrong for WeChat
	cfg.Accounts = []provider.Account{bad}
	reg := mustRegistry(t, &cfg)
	p, _ := reg.Get(withdrawal.ChannelWeChatPlatform, "default")
	_, out := provider.Submit(ctx, p, providertest.Command(withdrawal.ChannelWeChatPlatform, "SIGNERR1", 1))
	wantKind(t, "SIGN_ERROR", out, provider.KindRetryLater)
	if out.Code != "SIGN_ERROR" || !out.Alert || out.RetryAfter < time.Minute {
		t.Fatalf("SIGN_ERROR: %+v", out)
	}
	if _, ok := env.Ledger().Find(string(withdrawal.ChannelWeChatPlatform), "SIGNERR1"); ok {
		t.Fatal("an unauthenticated request reached the order book")
	}
}

// TestIdempotencyAndConflicts covers the sandbox's real (not injected)
// answers: replay, PARAM_ERROR on conflict, NOT_ENOUGH, INIT.
func TestIdempotencyAndConflicts(t *testing.T) {
	env := providertest.Start(t, sandbox.Options{Lifecycle: sandbox.Lifecycle{
		Plan: func(o sandbox.OrderInfo) string {
			if o.OutRequestNo == "INIT1" {
				return sandbox.PlanInit
			}
			return ""
		}}})
	p := env.Provider(withdrawal.ChannelWeChatPlatform)
	cmd := providertest.Command(withdrawal.ChannelWeChatPlatform, "IDEM1", 100)
	req, out := provider.Submit(ctx, p, cmd)
	wantKind(t, "first", out, provider.KindAccepted)
	again := p.Send(ctx, req)
	wantKind(t, "replay", again, provider.KindAccepted)
	if again.ProviderRef != out.ProviderRef {
		t.Fatalf("replay ref %s, first %s", again.ProviderRef, out.ProviderRef)
	}
	lo, _ := env.Ledger().Find(string(withdrawal.ChannelWeChatPlatform), "IDEM1")
	if lo.Submissions != 2 || lo.Created != 1 {
		t.Fatalf("ledger %+v", lo)
	}

	other := *cmd
	other.Amount = 200
	_, conflict := provider.Submit(ctx, p, &other)
	wantKind(t, "conflict", conflict, provider.KindRejected)
	if conflict.Code != "PARAM_ERROR" {
		t.Fatalf("conflict code %s", conflict.Code)
	}
	creq, _ := p.BuildSubmit(ctx, &other)
	creq.Resend = true
	wantKind(t, "conflict on resend", p.Send(ctx, creq), provider.KindAmbiguous)

	env.Server.SetBalance(providertest.SubMchID, 50)
	for _, ch := range []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatCancel} {
		_, short := provider.Submit(ctx, env.Provider(ch), providertest.Command(ch, "SHORT"+string(ch[10:13]), 100))
		// Neither document lets a refusal end these withdrawals: the
		// e-commerce error table is unconfirmed, the cancel one says
		// "query first". A query decides.
		wantKind(t, string(ch)+" short", short, provider.KindAmbiguous)
		if !short.Refusal || !short.QueryNow || short.State != "" {
			t.Fatalf("%s short: %+v, want a refusal to query now", ch, short)
		}
		if short.Code != map[withdrawal.Channel]string{withdrawal.ChannelWeChatEcommerce: "NOT_ENOUGH", withdrawal.ChannelWeChatCancel: "NOTENOUGH"}[ch] {
			t.Fatalf("short code %s", short.Code)
		}
	}

	ireq, first := provider.Submit(ctx, p, providertest.Command(withdrawal.ChannelWeChatPlatform, "INIT1", 1))
	wantKind(t, "init submit", first, provider.KindAccepted)
	q := p.QueryByOutRequestNo(ctx, provider.QueryKey{OutRequestNo: "INIT1"})
	if q.ProviderStatus != "INIT" || !q.Resubmit || q.State != withdrawal.StateSubmitted {
		t.Fatalf("INIT query: %+v", q)
	}
	ireq.Resend = true
	wantKind(t, "init resend", p.Send(ctx, ireq), provider.KindAccepted)
	if q := p.QueryByOutRequestNo(ctx, provider.QueryKey{OutRequestNo: "INIT1"}); q.Resubmit {
		t.Fatalf("after resend still INIT: %+v", q)
	}
	env.AssertPaidAtMostOnce()
}

// TestLifecycleAndVisibility: orders are invisible to queries until the
// configured delay, then follow their plan; failures, closes and refunds map
// to the documented states.
func TestLifecycleAndVisibility(t *testing.T) {
	clock := providertest.NewClock(time.Date(2026, 11, 22, 10, 0, 0, 0, withdrawal.Beijing))
	plans := map[string]string{"F": sandbox.PlanFail, "C": sandbox.PlanClose, "R": sandbox.PlanRefund}
	env := providertest.Start(t, sandbox.Options{Now: clock.Now, Lifecycle: sandbox.Lifecycle{
		FinalDelay: time.Minute, RefundDelay: time.Hour, VisibleNextMorning: true,
		Plan: func(o sandbox.OrderInfo) string { return plans[o.OutRequestNo[:1]] }}})
	want := map[withdrawal.Channel]map[string]withdrawal.State{
		withdrawal.ChannelWeChatPlatform:   {"F": withdrawal.StateFailed, "C": withdrawal.StateFailed, "R": withdrawal.StateReversed},
		withdrawal.ChannelWeChatEcommerce:  {"F": withdrawal.StateFailed, "C": withdrawal.StateFailed, "R": withdrawal.StateReversed},
		withdrawal.ChannelWeChatCancel:     {"F": withdrawal.StateFailed, "C": withdrawal.StateFailed, "R": withdrawal.StateReversed},
		withdrawal.ChannelAllinpayShopoint: {"F": withdrawal.StateFailed, "C": withdrawal.StateFailed},
	}
	type sub struct {
		ch   withdrawal.Channel
		cmd  *withdrawal.Command
		want withdrawal.State
	}
	var subs []sub
	for ch, m := range want {
		for prefix, st := range m {
			cmd := providertest.Command(ch, prefix+"LC"+string(ch[:4])+string(ch[len(ch)-3:]), 100)
			_, out := provider.Submit(ctx, env.Provider(ch), cmd)
			wantKind(t, "submit", out, provider.KindAccepted)
			subs = append(subs, sub{ch, cmd, st})
		}
	}
	for _, s := range subs {
		q := env.Provider(s.ch).QueryByOutRequestNo(ctx, provider.QueryKeyOf(s.cmd, ""))
		wantKind(t, "query before 08:00 next day", q.Outcome, provider.KindNotFound)
	}
	clock.Advance(23 * time.Hour) // 09:00 the next day; refunds are due too
	env.Server.Advance()
	for _, s := range subs {
		q := env.Provider(s.ch).QueryByOutRequestNo(ctx, provider.QueryKeyOf(s.cmd, ""))
		wantKind(t, "query", q.Outcome, provider.KindAccepted)
		if q.State != s.want {
			t.Errorf("%s %s: state %s (%s), want %s", s.ch, s.cmd.OutRequestNo, q.State, q.ProviderStatus, s.want)
		}
		if s.want == withdrawal.StateFailed && q.Reason == "" {
			t.Errorf("%s %s: failure without reason", s.ch, s.cmd.OutRequestNo)
		}
	}
}

func mustRegistry(t *testing.T, cfg *provider.Config) *provider.Registry {
	t.Helper()
	reg, err := clientsNew(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// redirectFirst answers the first request it sees with a 307 back to the
// same URL, and passes every later one to the sandbox.
type redirectFirst struct{ calls atomic.Int32 }

func (r *redirectFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.calls.Add(1) == 1 {
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusTemporaryRedirect, Status: "307 Temporary Redirect",
			Header: http.Header{"Location": {req.URL.String()}}, Body: http.NoBody, Request: req,
			ProtoMajor: 1, ProtoMinor: 1}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestRedirectIsNotFollowed: a 307 to a submission is an answer, never a
// re-post of the payment behind the dispatcher's back (http.Client.Do
// would follow it with the same body): the outcome is not an acceptance,
// one request left, and the sandbox created nothing.
func TestRedirectIsNotFollowed(t *testing.T) {
	rt := &redirectFirst{}
	env := providertest.Start(t, sandbox.Options{}, providertest.Settings{HTTPClient: &http.Client{Transport: rt}})
	for _, ch := range withdrawal.Channels {
		t.Run(string(ch), func(t *testing.T) {
			rt.calls.Store(0)
			p := env.Provider(ch)
			cmd := providertest.Command(ch, "RDR"+string(ch[:3])+itoa(len(ch)), 100)
			req, err := p.BuildSubmit(ctx, cmd)
			if err != nil {
				t.Fatal(err)
			}
			out := p.Send(ctx, req)
			if out.Kind == provider.KindAccepted || out.HTTPStatus != http.StatusTemporaryRedirect {
				t.Fatalf("a 307 gave %+v, want a non-accepted outcome with HTTP 307", out)
			}
			if n := rt.calls.Load(); n != 1 {
				t.Fatalf("%d requests sent, want 1 (the redirect was followed)", n)
			}
			if lo, ok := env.Ledger().Find(string(ch), cmd.OutRequestNo); ok {
				t.Fatalf("the sandbox has the order: %+v", lo)
			}
		})
	}
}

// TestEncryptWithFollowsTheAccount: the key that encrypts the cancel
// channel's payee fields, and the Wechatpay-Serial sent with them, are the
// ones the account names, also when both a certificate and a public key are
// configured; the sandbox decrypts with the key the serial names.
func TestEncryptWithFollowsTheAccount(t *testing.T) {
	for mode, want := range map[string]func(sandbox.PublicKeys) string{
		"certificate": func(k sandbox.PublicKeys) string { return k.PlatformCertSerial },
		"public_key":  func(k sandbox.PublicKeys) string { return k.PublicKeyID },
	} {
		t.Run(mode, func(t *testing.T) {
			env := providertest.Start(t, sandbox.Options{}, providertest.Settings{EncryptWith: mode})
			cmd := providertest.Command(withdrawal.ChannelWeChatCancel, "ENC"+mode[:4], 100)
			req, out := provider.Submit(ctx, env.Provider(withdrawal.ChannelWeChatCancel), cmd)
			if req.WechatpaySerial != want(env.Server.PublicKeys()) || req.WechatpaySerial == "" {
				t.Errorf("encrypt_with %s: Wechatpay-Serial %q", mode, req.WechatpaySerial)
			}
			wantKind(t, "submit", out, provider.KindAccepted)
		})
	}
}

// TestForgedSubmitAnswerIsNotBelieved: a signed submit answer about another
// order (no out_request_no, another id) is Ambiguous, on every WeChat
// channel, and its id is not returned for storing.
func TestForgedSubmitAnswerIsNotBelieved(t *testing.T) {
	env := providertest.Start(t, sandbox.Options{})
	for _, ch := range []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform, withdrawal.ChannelWeChatCancel} {
		env.SetFaults(submitEndpoint[ch], sandbox.Fault{ForgedAnswer: 1})
		_, out := provider.Submit(ctx, env.Provider(ch), providertest.Command(ch, "FORGE"+string(ch[10:13]), 100))
		env.ClearFaults()
		if out.Kind != provider.KindAmbiguous || out.Code != provider.CodeUnexpected || out.ProviderRef != "" {
			t.Errorf("%s: %+v, want an ambiguous UNEXPECTED_ANSWER without a provider id", ch, out)
		}
	}
}
