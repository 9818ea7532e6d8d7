package sandboxstack_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/clients"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/sandbox/sandboxstack"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

const testAPIv3Key = "testAPIv3Key0123456789abcdefXYZ0" // 32 bytes, test only

var testIdentity = sandboxstack.Identity{MchID: providertest.MchID, CertSerial: "TEST0000000000000000000000000000000000000", AppID: "test-app"}

func wantMode(t *testing.T, file string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %o, want %o", file, got, want)
	}
}

// TestLoadOrCreate: a fresh directory gets every key, private files 0600;
// a second call loads the same keys rather than generating new ones.
func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	f := sandboxstack.HarnessFiles(dir)
	g := sandboxstack.Generate{APIv3Key: testAPIv3Key, PIIKeyID: "t1", PIIComment: "test keys"}
	k, err := sandboxstack.LoadOrCreate(f, g)
	if err != nil {
		t.Fatal(err)
	}
	wantMode(t, f.SandboxKeys, 0o700)
	for _, file := range []string{f.MerchantKey, f.MerchantPub, f.APIv3Key, f.AllinpayKey, f.AllinpayPub, f.PIIKeys,
		filepath.Join(f.SandboxKeys, sandbox.FilePubKeyID)} {
		wantMode(t, file, 0o600)
	}
	if string(k.APIv3Key) != testAPIv3Key {
		t.Fatalf("APIv3 key %q", k.APIv3Key)
	}
	if b, _ := os.ReadFile(f.APIv3Key); string(b) != testAPIv3Key+"\n" {
		t.Fatalf("APIv3 key file %q", b)
	}
	b, _ := os.ReadFile(f.PIIKeys)
	if !strings.HasPrefix(string(b), "# test keys\nt1 ") {
		t.Fatalf("pii keys file %q", b)
	}
	ring, err := pii.LoadKeyringFile(f.PIIKeys)
	if err != nil || ring.CurrentKeyID() != "t1" {
		t.Fatalf("pii keys: %v %v", ring, err)
	}
	for file, want := range map[string]*rsa.PublicKey{f.MerchantPub: &k.Merchant.PublicKey, f.AllinpayPub: &k.Allinpay.PublicKey} {
		b, _ := os.ReadFile(file)
		got, err := wechatpay.ParsePublicKey(b)
		if err != nil || !got.Equal(want) {
			t.Fatalf("%s: not the public key of the private key (%v)", file, err)
		}
	}

	again, err := sandboxstack.LoadOrCreate(f, sandboxstack.Generate{PIIKeyID: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Merchant.Equal(k.Merchant) || !again.Allinpay.Equal(k.Allinpay) || string(again.APIv3Key) != testAPIv3Key ||
		again.Sandbox.PubKeyID != k.Sandbox.PubKeyID || again.Sandbox.CertSerial != k.Sandbox.CertSerial {
		t.Fatal("second LoadOrCreate generated new keys")
	}
	if b2, _ := os.ReadFile(f.PIIKeys); string(b2) != string(b) {
		t.Fatal("second LoadOrCreate rewrote the PII keys")
	}
}

// TestLoadOrCreateRandomAPIv3Key: without a given APIv3 key, a random
// 32-byte one.
func TestLoadOrCreateRandomAPIv3Key(t *testing.T) {
	f := sandboxstack.HarnessFiles(t.TempDir())
	f.MerchantPub, f.AllinpayPub = "", ""
	k, err := sandboxstack.LoadOrCreate(f, sandboxstack.Generate{PIIKeyID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.APIv3Key) != 32 || string(k.APIv3Key) == testAPIv3Key {
		t.Fatalf("APIv3 key %q", k.APIv3Key)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(f.MerchantKey), "merchant_pub.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("public key written though not asked for: %v", err)
	}
}

// TestLoadOrCreateUnusable: a key file that exists but is broken is
// ErrUnusable, named in the error, and never silently replaced.
func TestLoadOrCreateUnusable(t *testing.T) {
	for name, breakIt := range map[string]func(f sandboxstack.Files) string{
		"merchant key": func(f sandboxstack.Files) string { return f.MerchantKey },
		"allinpay key": func(f sandboxstack.Files) string { return f.AllinpayKey },
		"apiv3 key":    func(f sandboxstack.Files) string { return f.APIv3Key },
		"sandbox keys": func(f sandboxstack.Files) string { return filepath.Join(f.SandboxKeys, sandbox.FileCert) },
	} {
		t.Run(name, func(t *testing.T) {
			f := sandboxstack.HarnessFiles(t.TempDir())
			g := sandboxstack.Generate{APIv3Key: testAPIv3Key, PIIKeyID: "t1"}
			if _, err := sandboxstack.LoadOrCreate(f, g); err != nil {
				t.Fatal(err)
			}
			file := breakIt(f)
			if err := os.WriteFile(file, []byte("garbage\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := sandboxstack.LoadOrCreate(f, g)
			if !errors.Is(err, sandboxstack.ErrUnusable) || !strings.Contains(err.Error(), filepath.Base(file)) {
				t.Fatalf("err = %v, want ErrUnusable naming %s", err, filepath.Base(file))
			}
			if b, _ := os.ReadFile(file); string(b) != "garbage\n" {
				t.Fatal("the broken file was replaced")
			}
		})
	}
	// A missing file is generated, not unusable.
	f := sandboxstack.HarnessFiles(t.TempDir())
	if _, err := sandboxstack.LoadOrCreate(f, sandboxstack.Generate{PIIKeyID: "t1"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(f.AllinpayKey)
	if _, err := sandboxstack.LoadOrCreate(f, sandboxstack.Generate{PIIKeyID: "t1"}); err != nil {
		t.Fatalf("missing key not regenerated: %v", err)
	}
}

func TestSandboxArgs(t *testing.T) {
	f := sandboxstack.HarnessFiles("/d")
	got := f.SandboxArgs(testIdentity)
	want := []string{"--keys-dir", "/d/sandbox-keys",
		"--merchant", testIdentity.MchID + ":" + testIdentity.CertSerial + ":/d/merchant_pub.pem:/d/apiv3.key",
		"--allinpay-app", "test-app:/d/allinpay_pub.pem"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// TestWriteConfig: the header, only the fields that are set, mode 0600, and
// the file loads back as the normalized accounts.
func TestWriteConfig(t *testing.T) {
	dir := t.TempDir()
	f := sandboxstack.HarnessFiles(dir)
	tr := sandboxstack.HarnessTrusted(dir)
	tr.PublicKeyID = "PUB_KEY_ID_X"
	accounts := sandboxstack.Accounts("http://127.0.0.1:1", f, tr, sandboxstack.Settings{Identity: testIdentity, Timeout: 3 * time.Second})
	file := filepath.Join(dir, "providers.yaml")
	cfg, err := sandboxstack.WriteConfig(file, "line one\nline two", accounts)
	if err != nil {
		t.Fatal(err)
	}
	wantMode(t, file, 0o600)
	b, _ := os.ReadFile(file)
	text := string(b)
	if !strings.HasPrefix(text, "# line one\n# line two\naccounts:\n  - name: default\n    provider: wechatpay\n") {
		t.Fatalf("file:\n%s", text)
	}
	for _, unset := range []string{"notify_url", "channels", "recon", "encrypt_with", "cancel_states", ": \"\"", "[]", "{}", "null"} {
		if strings.Contains(text, unset) {
			t.Fatalf("file writes an unset field (%s):\n%s", unset, text)
		}
	}
	for i := range accounts {
		if err := accounts[i].Normalize(); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(cfg.Accounts, accounts) {
		t.Fatalf("loaded %+v\nwant %+v", cfg.Accounts, accounts)
	}
	if cfg.Accounts[0].Timeout != 3*time.Second || cfg.Accounts[1].BaseURL != "http://127.0.0.1:1"+sandbox.AllinpayGatewayPath {
		t.Fatalf("loaded %+v", cfg.Accounts)
	}

	// An account the binaries would reject fails here, not at their start.
	accounts[0].MchID = ""
	if _, err := sandboxstack.WriteConfig(file, "", accounts); err == nil || !strings.Contains(err.Error(), "mchid") {
		t.Fatalf("err = %v, want mchid is required", err)
	}
}

// TestHarnessConfig provisions a stack the way the harnesses do, against a
// sandbox loading its keys and merchants from the written files (as
// cmd/sandbox --keys-dir/--merchant/--allinpay-app does), and submits a
// withdrawal on every channel through clients built from the config.
func TestHarnessConfig(t *testing.T) {
	dir := t.TempDir()
	k, err := sandboxstack.LoadOrCreate(sandboxstack.HarnessFiles(dir), sandboxstack.Generate{APIv3Key: testAPIv3Key, PIIKeyID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	f := k.Files
	sk, err := sandbox.LoadKeys(f.SandboxKeys)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(file string) *rsa.PublicKey {
		b, _ := os.ReadFile(file)
		p, err := wechatpay.ParsePublicKey(b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv, err := sandbox.New(sandbox.Options{
		Keys: sk, Logger: slog.New(slog.DiscardHandler),
		WeChatMerchants: []sandbox.WeChatMerchant{{MchID: testIdentity.MchID, Serial: testIdentity.CertSerial,
			PublicKey: pub(f.MerchantPub), APIv3Key: []byte(testAPIv3Key)}},
		AllinpayApps: []sandbox.AllinpayApp{{AppID: testIdentity.AppID, PublicKey: pub(f.AllinpayPub)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })

	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfgFile, err := sandboxstack.HarnessConfig(ctx, hs.URL, run, "withdraw.yaml", f,
		sandboxstack.Settings{Identity: testIdentity, Timeout: 5 * time.Second, NotifyURL: "http://127.0.0.1:1/notify/wechatpay/default"})
	if err != nil {
		t.Fatal(err)
	}
	if cfgFile != filepath.Join(run, "withdraw.yaml") {
		t.Fatalf("config file %s", cfgFile)
	}
	tr := sandboxstack.HarnessTrusted(run)
	for _, file := range []string{cfgFile, tr.PlatformCert, tr.PublicKey, tr.AllinpayPublic} {
		wantMode(t, file, 0o600)
	}
	cfg, err := provider.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Accounts[0]; a.PublicKeyID != sk.PubKeyID || a.NotifyURL == "" || a.Timeout != 5*time.Second {
		t.Fatalf("wechat account %+v", a)
	}
	reg, err := clients.New(cfg, clients.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range withdrawal.Channels {
		p, err := reg.Get(ch, withdrawal.DefaultAccount)
		if err != nil {
			t.Fatal(err)
		}
		cmd := providertest.Command(ch, "STACK"+string(ch[len(ch)-4:]), 110)
		if _, out := provider.Submit(ctx, p, cmd); out.Kind != provider.KindAccepted {
			t.Fatalf("%s: submit %+v", ch, out)
		}
	}

	// A URL that is not a sandbox fails with the status.
	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	if _, err := sandboxstack.HarnessConfig(ctx, bad.URL, run, "x.yaml", f, sandboxstack.Settings{Identity: testIdentity}); err == nil ||
		!strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want the 404", err)
	}
}
