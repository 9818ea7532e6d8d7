package devstack

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Identities of the devstack's provider accounts (all named "default").
const (
	// MchID is the WeChat Pay merchant (the platform) of the three WeChat
	// channels.
	MchID = "1900000109"
	// AllinpayAppID is the Allinpay appId.
	AllinpayAppID = "devstack-app"
)

// Files inside the data directory.
const (
	markerFile     = ".withdraw-devstack" // proves a directory is ours before --fresh wipes it
	sqliteFile     = "withdraw.db"
	piiKeysFile    = "pii.keys"
	providersFile  = "providers.yaml"
	logFile        = "devstack.log"
	adminTokenFile = "admin.token"
	keysDir        = "keys"    // merchant keys (the orchestrator's side)
	sandboxDir     = "sandbox" // the provider's keys (the sandbox's side)
	kafkaDir       = "kafka"   // the embedded broker's log segments and offsets
)

// prepareDataDir creates dir (wiping it first when fresh) and marks it as a
// devstack directory. --fresh refuses to wipe a non-empty directory without
// the marker: a mistyped --data-dir must never delete someone's files.
func prepareDataDir(dir string, fresh bool) error {
	if fresh {
		entries, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case len(entries) > 0:
			if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
				return fmt.Errorf("--fresh: %s is not empty and was not created by the devstack (no %s): refusing to wipe it", dir, markerFile)
			}
			for _, e := range entries {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("--fresh: %w", err)
				}
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); errors.Is(err, os.ErrNotExist) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("data dir %s is not empty and was not created by the devstack; pick another --data-dir", dir)
		}
		note := "Created by cmd/devstack: local development data (SQLite, keys, embedded Kafka). Safe to delete.\n"
		if err := os.WriteFile(filepath.Join(dir, markerFile), []byte(note), 0o600); err != nil {
			return err
		}
	}
	for _, sub := range []string{keysDir, sandboxDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// keyring holds every key of the devstack, generated on first start and
// loaded from the data directory afterwards.
type keyring struct {
	sandbox        *sandbox.Keys
	merchant       *rsa.PrivateKey // WeChat apiclient_key
	merchantSerial string
	apiv3Key       []byte
	allinpay       *rsa.PrivateKey // Allinpay merchant RSA2 key

	// Files written for the clients.
	merchantKeyFile, apiv3KeyFile, allinpayKeyFile   string
	platformCertFile, publicKeyFile, allinpayPubFile string
	piiKeysFile                                      string
}

// loadOrCreateKeys reads the keys of dir, generating the missing ones.
func loadOrCreateKeys(dir string) (*keyring, error) {
	k := &keyring{
		merchantKeyFile:  filepath.Join(dir, keysDir, "apiclient_key.pem"),
		apiv3KeyFile:     filepath.Join(dir, keysDir, "apiv3.key"),
		allinpayKeyFile:  filepath.Join(dir, keysDir, "allinpay_merchant_key.pem"),
		platformCertFile: filepath.Join(dir, keysDir, "wechatpay_platform_cert.pem"),
		publicKeyFile:    filepath.Join(dir, keysDir, "wechatpay_pub_key.pem"),
		allinpayPubFile:  filepath.Join(dir, keysDir, "allinpay_public.pem"),
		piiKeysFile:      filepath.Join(dir, piiKeysFile),
	}
	var err error
	sbDir := filepath.Join(dir, sandboxDir)
	if _, statErr := os.Stat(filepath.Join(sbDir, sandbox.FilePubKeyID)); statErr == nil {
		if k.sandbox, err = sandbox.LoadKeys(sbDir); err != nil {
			return nil, fmt.Errorf("%w (start with --fresh to regenerate)", err)
		}
	} else {
		if k.sandbox, err = sandbox.GenerateKeys(); err != nil {
			return nil, err
		}
		if err := k.sandbox.WriteKeys(sbDir); err != nil {
			return nil, err
		}
	}
	if k.merchant, err = loadOrCreateRSA(k.merchantKeyFile); err != nil {
		return nil, err
	}
	if k.allinpay, err = loadOrCreateRSA(k.allinpayKeyFile); err != nil {
		return nil, err
	}
	// The merchant certificate serial: stable for a key, 40 hex digits
	// like WeChat's.
	sum := sha1.Sum(sandbox.PublicPEM(&k.merchant.PublicKey))
	k.merchantSerial = strings.ToUpper(hex.EncodeToString(sum[:]))

	if k.apiv3Key, err = loadOrCreate(k.apiv3KeyFile, func() ([]byte, error) {
		return []byte(rand.Text()[:26] + "devAPI"), nil // 32 bytes, like WeChat's APIv3 key
	}); err != nil {
		return nil, err
	}
	k.apiv3Key = []byte(strings.TrimSpace(string(k.apiv3Key)))
	if len(k.apiv3Key) != 32 {
		return nil, fmt.Errorf("%s: the APIv3 key must be 32 bytes (start with --fresh to regenerate)", k.apiv3KeyFile)
	}
	if _, err = loadOrCreate(k.piiKeysFile, func() ([]byte, error) {
		return []byte("# payee data keys of the devstack (see internal/pii); current key first\n" + pii.GenerateKeyLine("dev1") + "\n"), nil
	}); err != nil {
		return nil, err
	}
	return k, nil
}

// adminToken writes token to file, or, when token is empty, returns the
// file's token, generating one on first start.
func adminToken(file, token string) (string, error) {
	if token != "" {
		if strings.ContainsAny(token, " \t\r\n") {
			return "", errors.New("--admin-token must not contain white space")
		}
		return token, os.WriteFile(file, []byte(token+"\n"), 0o600)
	}
	b, err := loadOrCreate(file, func() ([]byte, error) { return []byte("dev-" + rand.Text() + "\n"), nil })
	return strings.TrimSpace(string(b)), err
}

func loadOrCreate(file string, gen func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if b, err = gen(); err != nil {
		return nil, err
	}
	return b, os.WriteFile(file, b, 0o600)
}

func loadOrCreateRSA(file string) (*rsa.PrivateKey, error) {
	b, err := loadOrCreate(file, func() ([]byte, error) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return sandbox.PrivatePEM(k), nil
	})
	if err != nil {
		return nil, err
	}
	k, err := wechatpay.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (start with --fresh to regenerate)", file, err)
	}
	return k, nil
}

// writePublic writes what the clients must trust of the provider (the
// sandbox): WeChat Pay's platform certificate and public key, Allinpay's
// public key.
func (k *keyring) writePublic(pub sandbox.PublicKeys) error {
	for file, b := range map[string]string{
		k.platformCertFile: pub.PlatformCertPEM,
		k.publicKeyFile:    pub.PublicKeyPEM,
		k.allinpayPubFile:  pub.AllinpayPublicPEM,
	} {
		if err := os.WriteFile(file, []byte(b), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// providerAccounts are the clients' accounts: "default" for WeChat (three
// channels) and Allinpay, against the sandbox at sandboxURL, WeChat
// callbacks to notifyURL.
func (k *keyring) providerAccounts(sandboxURL, notifyURL string) []provider.Account {
	return []provider.Account{
		{
			Name: withdrawal.DefaultAccount, Provider: provider.ProtocolWeChat, BaseURL: sandboxURL,
			Timeout: providerTimeout, MchID: MchID, CertSerial: k.merchantSerial,
			PrivateKeyFile:    k.merchantKeyFile,
			PlatformCertFiles: []string{k.platformCertFile},
			PublicKeyID:       k.sandbox.PubKeyID,
			PublicKeyFile:     k.publicKeyFile,
			APIv3KeyFile:      k.apiv3KeyFile,
			NotifyURL:         notifyURL,
		},
		{
			Name: withdrawal.DefaultAccount, Provider: provider.ProtocolAllinpay, BaseURL: sandboxURL + sandbox.AllinpayGatewayPath,
			Timeout: providerTimeout, AppID: AllinpayAppID,
			PrivateKeyFile:        k.allinpayKeyFile,
			AllinpayPublicKeyFile: k.allinpayPubFile,
		},
	}
}

// writeProviders writes the accounts as a WITHDRAW_CONFIG file, which the
// devstack's pipeline loads the way the binaries do (and a cmd/consumer or
// cmd/poller can be pointed at the same sandbox).
func writeProviders(file string, accounts []provider.Account) error {
	var b strings.Builder
	b.WriteString("# Written by cmd/devstack at every start: the provider accounts of the devstack's sandbox.\n" +
		"# Usable as WITHDRAW_CONFIG for cmd/consumer and cmd/poller while the devstack runs.\n" +
		"accounts:\n")
	kv := func(first bool, key, v string) {
		if v == "" {
			return
		}
		prefix := "    "
		if first {
			prefix = "  - "
		}
		q, _ := yaml.Marshal(v)
		fmt.Fprintf(&b, "%s%s: %s", prefix, key, q)
	}
	for _, a := range accounts {
		kv(true, "name", a.Name)
		kv(false, "provider", string(a.Provider))
		kv(false, "base_url", a.BaseURL)
		kv(false, "timeout", a.Timeout.String())
		kv(false, "private_key_file", a.PrivateKeyFile)
		kv(false, "mchid", a.MchID)
		kv(false, "cert_serial", a.CertSerial)
		if len(a.PlatformCertFiles) > 0 {
			q, _ := yaml.Marshal(a.PlatformCertFiles)
			fmt.Fprintf(&b, "    platform_cert_files:\n%s", indent(string(q), "      "))
		}
		kv(false, "public_key_id", a.PublicKeyID)
		kv(false, "public_key_file", a.PublicKeyFile)
		kv(false, "apiv3_key_file", a.APIv3KeyFile)
		kv(false, "notify_url", a.NotifyURL)
		kv(false, "app_id", a.AppID)
		kv(false, "allinpay_public_key_file", a.AllinpayPublicKeyFile)
	}
	return os.WriteFile(file, []byte(b.String()), 0o600)
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}
