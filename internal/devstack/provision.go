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

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/sandbox/sandboxstack"
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
// loaded from the data directory afterwards (see sandboxstack.LoadOrCreate),
// with the merchant certificate serial derived from the merchant key.
type keyring struct {
	sandbox        *sandbox.Keys
	merchant       *rsa.PrivateKey // WeChat apiclient_key
	merchantSerial string
	apiv3Key       []byte
	allinpay       *rsa.PrivateKey // Allinpay merchant RSA2 key
	piiKeysFile    string

	// Files written for the clients.
	files   sandboxstack.Files
	trusted sandboxstack.Trusted
}

// loadOrCreateKeys reads the keys of dir, generating the missing ones.
func loadOrCreateKeys(dir string) (*keyring, error) {
	keys, err := sandboxstack.LoadOrCreate(sandboxstack.Files{
		SandboxKeys: filepath.Join(dir, sandboxDir),
		MerchantKey: filepath.Join(dir, keysDir, "apiclient_key.pem"),
		APIv3Key:    filepath.Join(dir, keysDir, "apiv3.key"),
		AllinpayKey: filepath.Join(dir, keysDir, "allinpay_merchant_key.pem"),
		PIIKeys:     filepath.Join(dir, piiKeysFile),
	}, sandboxstack.Generate{
		// No fixed APIv3 key: a random one on first start.
		PIIKeyID:   "dev1",
		PIIComment: "payee data keys of the devstack (see internal/pii); current key first",
	})
	if errors.Is(err, sandboxstack.ErrUnusable) {
		return nil, fmt.Errorf("%w (start with --fresh to regenerate)", err)
	}
	if err != nil {
		return nil, err
	}
	k := &keyring{
		sandbox: keys.Sandbox, merchant: keys.Merchant, apiv3Key: keys.APIv3Key, allinpay: keys.Allinpay,
		piiKeysFile: keys.Files.PIIKeys,
		files:       keys.Files,
		trusted: sandboxstack.Trusted{
			PlatformCert:   filepath.Join(dir, keysDir, "wechatpay_platform_cert.pem"),
			PublicKey:      filepath.Join(dir, keysDir, "wechatpay_pub_key.pem"),
			AllinpayPublic: filepath.Join(dir, keysDir, "allinpay_public.pem"),
			PublicKeyID:    keys.Sandbox.PubKeyID,
		},
	}
	// The merchant certificate serial: stable for a key, 40 hex digits
	// like WeChat's.
	sum := sha1.Sum(sandbox.PublicPEM(&k.merchant.PublicKey))
	k.merchantSerial = strings.ToUpper(hex.EncodeToString(sum[:]))
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
	b, err := sandboxstack.ReadOrCreate(file, func() ([]byte, error) { return []byte("dev-" + rand.Text() + "\n"), nil })
	return strings.TrimSpace(string(b)), err
}

// writePublic writes what the clients must trust of the provider (the
// sandbox): WeChat Pay's platform certificate and public key, Allinpay's
// public key.
func (k *keyring) writePublic(pub sandbox.PublicKeys) error {
	return k.trusted.Write(pub)
}

// providerAccounts are the clients' accounts: "default" for WeChat (three
// channels) and Allinpay, against the sandbox at sandboxURL, WeChat
// callbacks to notifyURL.
func (k *keyring) providerAccounts(sandboxURL, notifyURL string) []provider.Account {
	return sandboxstack.Accounts(sandboxURL, k.files, k.trusted, sandboxstack.Settings{
		Identity: sandboxstack.Identity{MchID: MchID, CertSerial: k.merchantSerial, AppID: AllinpayAppID},
		Timeout:  providerTimeout, NotifyURL: notifyURL,
	})
}

// writeProviders writes the accounts as a WITHDRAW_CONFIG file (so that a
// cmd/consumer or cmd/poller can be pointed at the same sandbox) and loads
// it back the way the binaries do.
func writeProviders(file string, accounts []provider.Account) (*provider.Config, error) {
	return sandboxstack.WriteConfig(file,
		"Written by cmd/devstack at every start: the provider accounts of the devstack's sandbox.\n"+
			"Usable as WITHDRAW_CONFIG for cmd/consumer and cmd/poller while the devstack runs.",
		accounts)
}
