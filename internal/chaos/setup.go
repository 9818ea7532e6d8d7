package chaos

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Identities of the suite's provider accounts.
const (
	mchID    = "1900000109"
	serial   = "CHAOS00000000000000000000000000000000000"
	appID    = "chaos-app"
	apiv3Key = "chaosAPIv3Key0123456789abcdefXYZ" // 32 bytes, test only
)

// keys are the files of the sandbox's and the merchants' keys.
type keys struct {
	sandboxDir, merchantKey, merchantPub, apiv3 string
	allinpayKey, allinpayPub, piiKeys           string
}

func writeKeys(dir string) (*keys, error) {
	k := &keys{sandboxDir: filepath.Join(dir, "sandbox-keys")}
	sk, err := sandbox.GenerateKeys()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(k.sandboxDir, 0o700); err != nil {
		return nil, err
	}
	if err := sk.WriteKeys(k.sandboxDir); err != nil {
		return nil, err
	}
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	allinpay, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path *string
		name string
		b    []byte
	}{
		{&k.merchantKey, "merchant_key.pem", sandbox.PrivatePEM(merchant)},
		{&k.merchantPub, "merchant_pub.pem", sandbox.PublicPEM(&merchant.PublicKey)},
		{&k.apiv3, "apiv3.key", []byte(apiv3Key + "\n")},
		{&k.allinpayKey, "allinpay_key.pem", sandbox.PrivatePEM(allinpay)},
		{&k.allinpayPub, "allinpay_pub.pem", sandbox.PublicPEM(&allinpay.PublicKey)},
		{&k.piiKeys, "pii.keys", []byte(pii.GenerateKeyLine("chaos") + "\n")},
	} {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.b, 0o600); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// providersConfig writes the provider accounts (WITHDRAW_CONFIG) for the
// sandbox at sandboxURL, its public keys read from GET /_sandbox/keys;
// WeChat callbacks go to notifyURL.
func providersConfig(ctx context.Context, dir string, k *keys, sandboxURL, notifyURL string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sandboxURL+"/_sandbox/keys", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var pk sandbox.PublicKeys
	if err := json.NewDecoder(resp.Body).Decode(&pk); err != nil {
		return "", fmt.Errorf("sandbox keys: %w", err)
	}
	write := func(name, s string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(s), 0o600)
	}
	cert, err := write("wechatpay_cert.pem", pk.PlatformCertPEM)
	if err != nil {
		return "", err
	}
	pub, err := write("wechatpay_pub.pem", pk.PublicKeyPEM)
	if err != nil {
		return "", err
	}
	apub, err := write("allinpay_public.pem", pk.AllinpayPublicPEM)
	if err != nil {
		return "", err
	}
	// 5s: a killed sandbox connection (timeout_after_commit) must not hold
	// a claim long; the dispatcher's lease (15s) must exceed it.
	cfg := provider.Config{Accounts: []provider.Account{{
		Name: withdrawal.DefaultAccount, Provider: provider.ProtocolWeChat, BaseURL: sandboxURL, Timeout: 5 * time.Second,
		MchID: mchID, CertSerial: serial, PrivateKeyFile: k.merchantKey,
		PlatformCertFiles: []string{cert}, PublicKeyID: pk.PublicKeyID, PublicKeyFile: pub, APIv3KeyFile: k.apiv3,
		NotifyURL: notifyURL,
	}, {
		Name: withdrawal.DefaultAccount, Provider: provider.ProtocolAllinpay, BaseURL: sandboxURL + sandbox.AllinpayGatewayPath,
		Timeout: 5 * time.Second, AppID: appID, PrivateKeyFile: k.allinpayKey, AllinpayPublicKeyFile: apub,
	}}}
	for i := range cfg.Accounts {
		if err := cfg.Accounts[i].Normalize(); err != nil {
			return "", err
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	return write("providers.yaml", string(b))
}

// buildBinaries builds the product's binaries (without -race, as deployed).
func buildBinaries(ctx context.Context, root, dir string) (map[string]string, error) {
	out := map[string]string{}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, name := range []string{"consumer", "poller", "sandbox"} {
		args = append(args, "./cmd/"+name)
		out[name] = filepath.Join(dir, name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %v: %v\n%s", args, err, b)
	}
	return out, nil
}

// freePort asks the kernel for a port nobody listens on. A process that
// restarts must come back on the same address (the WeChat notify_url names
// the poller's), so the port is fixed up front rather than :0 per start.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
