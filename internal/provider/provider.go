// Package provider is the orchestrator's view of a payment provider: one
// Provider per (channel, account) that builds, sends and queries withdrawals
// and classifies every answer into an Outcome the dispatcher and the poller
// can act on without knowing the provider's protocol.
//
// The protocol clients live in the sub-packages wechatpay and allinpay; the
// sandbox sub-package is an HTTP server that behaves like both providers;
// providertest starts one for tests. The classification of every documented
// error code is the table in classify.go, the mapping of provider statuses to
// internal states is status.go.
package provider

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Provider submits and queries withdrawals of one channel at one provider
// account. Implementations are safe for concurrent use.
//
// Submission is split in two so that a withdrawal is only ever sent as the
// same bytes: BuildSubmit runs once per withdrawal and its Request is stored;
// Send may run many times with that stored Request (after a timeout, a 5xx, a
// lease expiry). Rebuilding is not equivalent: the cancel channel's payee
// fields are RSA-OAEP encrypted, and OAEP is randomized.
type Provider interface {
	// Channel is the channel this provider serves.
	Channel() withdrawal.Channel
	// Account is the name of the provider account (the command's "account").
	Account() string
	// BuildSubmit turns a validated command into the exact request to send.
	// It does no I/O. An error means the command cannot be expressed for
	// this provider (a configuration or programming error); nothing was sent.
	BuildSubmit(ctx context.Context, cmd *withdrawal.Command) (Request, error)
	// Send sends a built request (signing it afresh: timestamp, nonce and
	// signature are per send) and classifies the answer. It never returns
	// Accepted for an answer it could not verify.
	Send(ctx context.Context, req Request) Outcome
	// QueryByOutRequestNo asks the provider for the order with our number.
	QueryByOutRequestNo(ctx context.Context, key QueryKey) QueryResult
	// QueryByProviderRef asks the provider for the order with its own id
	// (WeChat withdraw_id / applyment_id). Providers without such a query
	// fall back to the out_request_no query.
	QueryByProviderRef(ctx context.Context, key QueryKey) QueryResult
}

// Request is a built submission: everything needed to send it again
// byte-for-byte. The dispatcher stores it (it is JSON-serializable) before
// the first send. For the cancel channel Body holds RSA-OAEP ciphertext of
// the payee fields, never their plaintext.
type Request struct {
	Channel      withdrawal.Channel `json:"channel"`
	Account      string             `json:"account"`
	OutRequestNo string             `json:"out_request_no"`
	// Method and Path are the HTTP method and path (with query) for WeChat;
	// for Allinpay Path holds the gateway method name.
	Method string `json:"method"`
	Path   string `json:"path"`
	// Body is the exact payload: the JSON body for WeChat, the bizContent
	// for Allinpay (the envelope around it is signed per send).
	Body []byte `json:"body"`
	// WechatpaySerial is the serial or PUB_KEY_ID of the WeChat Pay key the
	// sensitive fields of Body are encrypted with; empty when none are.
	WechatpaySerial string `json:"wechatpay_serial,omitempty"`
	// Resend is set by the caller when these bytes may already have reached
	// the provider (any earlier Send that was not a definite rejection). It
	// makes PARAM_ERROR ambiguous instead of a rejection, see classify.go.
	Resend bool `json:"-"`
}

// QueryKey identifies an order for a query.
type QueryKey struct {
	OutRequestNo string
	// ProviderRef is the provider's id of the order (withdraw_id,
	// applyment_id, Allinpay orderId echo); needed by QueryByProviderRef.
	ProviderRef string
	// SubMchID is required by the e-commerce channel's queries.
	SubMchID string
}

// QueryKeyOf returns the query key of a command and the provider reference
// recorded for it (may be empty).
func QueryKeyOf(cmd *withdrawal.Command, providerRef string) QueryKey {
	return QueryKey{OutRequestNo: cmd.OutRequestNo, ProviderRef: providerRef, SubMchID: cmd.SubMchID}
}

// Submit builds and sends a command once. It is a convenience for tests and
// tools; the dispatcher calls BuildSubmit, stores the Request, then Send.
func Submit(ctx context.Context, p Provider, cmd *withdrawal.Command) (Request, Outcome) {
	req, err := p.BuildSubmit(ctx, cmd)
	if err != nil {
		// Nothing was sent, so retrying is safe; but a build failure is a
		// configuration problem (a missing key), not the payee's: alert,
		// and do not fail the withdrawal.
		return req, Outcome{Kind: KindRetryLater, Code: CodeBuildFailed, Message: err.Error(),
			RetryAfter: ConfigErrorDelay, Alert: true, Err: err}
	}
	return req, p.Send(ctx, req)
}

// CodeBuildFailed is the Outcome code when a request could not be built; no
// provider was contacted.
const CodeBuildFailed = "BUILD_FAILED"

// Registry finds the Provider of a (channel, account). It is safe for
// concurrent use.
type Registry struct {
	mu        sync.RWMutex
	providers map[regKey]Provider
}

type regKey struct {
	channel withdrawal.Channel
	account string
}

// NewRegistry returns a registry holding ps.
func NewRegistry(ps ...Provider) *Registry {
	r := &Registry{providers: make(map[regKey]Provider)}
	for _, p := range ps {
		r.Register(p)
	}
	return r
}

// Register adds or replaces the provider of p's channel and account.
func (r *Registry) Register(p Provider) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.providers[regKey{p.Channel(), p.Account()}] = p
}

// Get returns the provider of a channel and account. An empty account means
// withdrawal.DefaultAccount.
func (r *Registry) Get(ch withdrawal.Channel, account string) (Provider, error) {
	if account == "" {
		account = withdrawal.DefaultAccount
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.providers[regKey{ch, account}]
	if !ok {
		return nil, fmt.Errorf("provider: no account %q configured for channel %s", account, ch)
	}
	return p, nil
}

// Has reports whether a provider is configured for the channel and account;
// command validation uses it for ACCOUNT_NOT_CONFIGURED.
func (r *Registry) Has(ch withdrawal.Channel, account string) bool {
	_, err := r.Get(ch, account)
	return err == nil
}

// All returns every registered provider, ordered by channel then account.
func (r *Registry) All() []Provider {
	r.mu.RLock()
	out := make([]Provider, 0, len(r.providers))
	for _, p := range r.providers {
		out = append(out, p)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel() != out[j].Channel() {
			return out[i].Channel() < out[j].Channel()
		}
		return out[i].Account() < out[j].Account()
	})
	return out
}
