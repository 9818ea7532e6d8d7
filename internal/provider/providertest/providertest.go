// Package providertest starts a provider sandbox on 127.0.0.1 with
// generated keys and returns configured clients, for the tests of the
// dispatcher, the poller and the providers themselves:
//
//	env := providertest.Start(t, sandbox.Options{})
//	p := env.Provider(withdrawal.ChannelWeChatPlatform)
//	_, out := provider.Submit(ctx, p, cmd)
//	env.Ledger() // what the sandbox saw
package providertest

import (
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/paycore/withdraw/internal/invariant"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Identities of the test merchants.
const (
	MchID          = "1900000109"
	MerchantSerial = "3775B6A45ACD588826D15E583A95F5DD12345678"
	SubMchID       = "1900000110"
	AllinpayAppID  = "sandbox-app"
	// APIv3Key is the test APIv3 key (32 bytes). Test-only, not a secret.
	APIv3Key = "sandboxAPIv3Key0123456789abcdefX"
)

// Env is a running sandbox with clients configured for it.
type Env struct {
	// URL is the sandbox base URL.
	URL string
	// Server is the sandbox itself (faults, balances, clock).
	Server *sandbox.Server
	// Config holds the accounts the clients were built from (key files in
	// a temporary directory).
	Config *provider.Config
	// WeChat is the WeChat client of the "default" account, for callbacks.
	WeChat *wechatpay.Client

	t        testing.TB
	registry *provider.Registry
}

// Settings adjust the accounts Start configures.
type Settings struct {
	// NotifyURL is passed as notify_url (callbacks go there).
	NotifyURL string
	// EncryptWith is the WeChat account's encrypt_with ("" = public key).
	EncryptWith string
	// AllinpayQueryMethod overrides both the client's and the sandbox's
	// query method when set.
	AllinpayQueryMethod string
	// HTTPClient for the clients; nil means the shared pooled default.
	HTTPClient *http.Client
	// Logger for the sandbox and the clients; nil discards (tests inject
	// faults on purpose, their error logs are noise).
	Logger *slog.Logger
}

var (
	keysOnce sync.Once
	keys     struct {
		sandbox  *sandbox.Keys
		merchant *rsa.PrivateKey
		allinpay *rsa.PrivateKey
		err      error
	}
)

// sharedKeys generates the RSA keys once per test binary: generation is the
// slowest part of starting an environment.
func sharedKeys() error {
	keysOnce.Do(func() {
		if keys.sandbox, keys.err = sandbox.GenerateKeys(); keys.err != nil {
			return
		}
		if keys.merchant, keys.err = rsa.GenerateKey(rand.Reader, 2048); keys.err != nil {
			return
		}
		keys.allinpay, keys.err = rsa.GenerateKey(rand.Reader, 2048)
	})
	return keys.err
}

// Start starts a sandbox with opts (Keys, merchants and apps are filled in
// unless set) and returns clients for every channel under the account
// "default". Everything is stopped by t.Cleanup.
func Start(t testing.TB, opts sandbox.Options, settings ...Settings) *Env {
	t.Helper()
	var set Settings
	if len(settings) > 0 {
		set = settings[0]
	}
	if err := sharedKeys(); err != nil {
		t.Fatalf("providertest: keys: %v", err)
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Logger == nil {
		opts.Logger = set.Logger
	}
	if opts.Keys == nil {
		opts.Keys = keys.sandbox
	}
	if set.AllinpayQueryMethod != "" {
		opts.AllinpayQueryMethod = set.AllinpayQueryMethod
	}
	opts.WeChatMerchants = append(opts.WeChatMerchants, sandbox.WeChatMerchant{
		MchID: MchID, Serial: MerchantSerial, PublicKey: &keys.merchant.PublicKey, APIv3Key: []byte(APIv3Key)})
	opts.AllinpayApps = append(opts.AllinpayApps, sandbox.AllinpayApp{AppID: AllinpayAppID, PublicKey: &keys.allinpay.PublicKey})
	srv, err := sandbox.New(opts)
	if err != nil {
		t.Fatalf("providertest: sandbox: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})

	cfg := writeConfig(t, hs.URL, srv.PublicKeys(), set)
	copts := clients.Options{HTTPClient: set.HTTPClient, Now: opts.Now, Logger: set.Logger}
	reg, err := clients.New(cfg, copts)
	if err != nil {
		t.Fatalf("providertest: clients: %v", err)
	}
	wc, err := clients.WeChatClients(cfg, copts)
	if err != nil {
		t.Fatalf("providertest: clients: %v", err)
	}
	return &Env{URL: hs.URL, Server: srv, Config: cfg, WeChat: wc[withdrawal.DefaultAccount], t: t, registry: reg}
}

// writeConfig writes the key files and returns the accounts naming them.
func writeConfig(t testing.TB, url string, pk sandbox.PublicKeys, set Settings) *provider.Config {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatalf("providertest: %v", err)
		}
		return p
	}
	wx := provider.Account{
		Name: withdrawal.DefaultAccount, Provider: provider.ProtocolWeChat, BaseURL: url,
		MchID: MchID, CertSerial: MerchantSerial,
		PrivateKeyFile:    write("apiclient_key.pem", sandbox.PrivatePEM(keys.merchant)),
		PlatformCertFiles: []string{write("wechatpay_cert.pem", []byte(pk.PlatformCertPEM))},
		PublicKeyID:       pk.PublicKeyID,
		PublicKeyFile:     write("pub_key.pem", []byte(pk.PublicKeyPEM)),
		APIv3KeyFile:      write("apiv3.key", []byte(APIv3Key+"\n")),
		NotifyURL:         set.NotifyURL,
		EncryptWith:       set.EncryptWith,
	}
	ap := provider.Account{
		Name: withdrawal.DefaultAccount, Provider: provider.ProtocolAllinpay, BaseURL: url + sandbox.AllinpayGatewayPath,
		AppID:                 AllinpayAppID,
		PrivateKeyFile:        write("allinpay_merchant_key.pem", sandbox.PrivatePEM(keys.allinpay)),
		AllinpayPublicKeyFile: write("allinpay_public.pem", []byte(pk.AllinpayPublicPEM)),
		QueryMethod:           set.AllinpayQueryMethod,
	}
	cfg := &provider.Config{Accounts: []provider.Account{wx, ap}}
	for i := range cfg.Accounts {
		if err := cfg.Accounts[i].Normalize(); err != nil {
			t.Fatalf("providertest: %v", err)
		}
	}
	return cfg
}

// Provider returns the client of a channel (account "default").
func (e *Env) Provider(ch withdrawal.Channel) provider.Provider {
	e.t.Helper()
	p, err := e.registry.Get(ch, withdrawal.DefaultAccount)
	if err != nil {
		e.t.Fatalf("providertest: %v", err)
	}
	return p
}

// Registry returns the registry of every channel's client.
func (e *Env) Registry() *provider.Registry { return e.registry }

// Ledger returns what the sandbox saw.
func (e *Env) Ledger() sandbox.Ledger { return e.Server.Ledger() }

// SetFaults sets the fault of an endpoint (sandbox.Endpoint*, or "*").
func (e *Env) SetFaults(endpoint string, f sandbox.Fault) {
	e.t.Helper()
	if err := e.Server.SetFault(endpoint, f); err != nil {
		e.t.Fatalf("providertest: %v", err)
	}
}

// ClearFaults removes every fault.
func (e *Env) ClearFaults() { e.Server.ClearFaults() }

// AssertPaidAtMostOnce fails the test if the sandbox created any order
// more than once.
func (e *Env) AssertPaidAtMostOnce() {
	e.t.Helper()
	for _, v := range invariant.PaidAtMostOnce(e.Ledger().Orders, nil).Violations {
		e.t.Error(v)
	}
}
