// Package sandboxstack provisions a stack of the orchestrator's services to
// run against the provider sandbox: the keys on both sides (the sandbox's
// own, the merchant keys the services sign with, the APIv3 and PII keys),
// the files of what the services trust of the sandbox, and the provider
// accounts naming them, written as a WITHDRAW_CONFIG file.
//
// Its users are the devstack (an in-process sandbox, keys kept in a data
// directory across restarts) and the harnesses that start cmd/sandbox as a
// process (internal/bench's end-to-end benchmark, internal/chaos). It is
// product code (cmd/devstack links it): no test-only dependency here.
//
// A harness does, in order:
//
//	k, err := sandboxstack.LoadOrCreate(sandboxstack.HarnessFiles(dir), gen) // fresh dir: generates
//	args := k.Files.SandboxArgs(id)                                         // cmd/sandbox flags
//	// start cmd/sandbox with args, then, once it listens at url:
//	cfgFile, err := sandboxstack.HarnessConfig(ctx, url, dir, "providers.yaml", k.Files, settings)
package sandboxstack

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
)

// Identity names a stack's provider accounts: the WeChat Pay merchant (the
// platform of the three WeChat channels) and the Allinpay app. The sandbox
// is told the same values (SandboxArgs), so that it verifies what the
// services sign.
type Identity struct {
	MchID      string
	CertSerial string // the merchant certificate serial (40 hex digits at WeChat)
	AppID      string // the Allinpay appId
}

// Files are the paths of a stack's own keys. LoadOrCreate reads them,
// generating (mode 0600) those that are missing.
type Files struct {
	// SandboxKeys is the directory of the sandbox's own keys
	// (sandbox.WriteKeys/LoadKeys, cmd/sandbox --keys-dir); created 0700.
	SandboxKeys string
	// MerchantKey is the WeChat Pay merchant key (apiclient_key, PKCS#8 PEM)
	// the services sign with; MerchantPub, when set, receives its public
	// key for cmd/sandbox --merchant.
	MerchantKey, MerchantPub string
	// APIv3Key holds the 32-byte APIv3 key (callback decryption).
	APIv3Key string
	// AllinpayKey is the Allinpay merchant RSA2 key; AllinpayPub, when set,
	// receives its public key for cmd/sandbox --allinpay-app.
	AllinpayKey, AllinpayPub string
	// PIIKeys is the payee data keyring (WITHDRAW_PII_KEYS_FILE).
	PIIKeys string
}

// HarnessFiles is the layout of the harnesses: every file directly in dir,
// the sandbox's keys in dir/sandbox-keys.
func HarnessFiles(dir string) Files {
	return Files{
		SandboxKeys: filepath.Join(dir, "sandbox-keys"),
		MerchantKey: filepath.Join(dir, "merchant_key.pem"),
		MerchantPub: filepath.Join(dir, "merchant_pub.pem"),
		APIv3Key:    filepath.Join(dir, "apiv3.key"),
		AllinpayKey: filepath.Join(dir, "allinpay_key.pem"),
		AllinpayPub: filepath.Join(dir, "allinpay_pub.pem"),
		PIIKeys:     filepath.Join(dir, "pii.keys"),
	}
}

// SandboxArgs are the cmd/sandbox flags that load the sandbox's keys and
// register the stack's merchant and Allinpay app (their public keys from
// MerchantPub and AllinpayPub, which must be set).
func (f Files) SandboxArgs(id Identity) []string {
	return []string{
		"--keys-dir", f.SandboxKeys,
		"--merchant", strings.Join([]string{id.MchID, id.CertSerial, f.MerchantPub, f.APIv3Key}, ":"),
		"--allinpay-app", id.AppID + ":" + f.AllinpayPub,
	}
}

// Generate says what LoadOrCreate writes where a file is missing.
type Generate struct {
	// APIv3Key is the APIv3 key to write (32 bytes); empty: a random one.
	APIv3Key string
	// PIIKeyID names the generated PII data key (pii.GenerateKeyLine);
	// PIIComment, when set, is written before it as a "# " comment line.
	PIIKeyID, PIIComment string
}

// Keys are a stack's keys, loaded or generated, and the files holding them.
type Keys struct {
	Files    Files
	Sandbox  *sandbox.Keys
	Merchant *rsa.PrivateKey // WeChat Pay apiclient_key
	APIv3Key []byte
	Allinpay *rsa.PrivateKey // Allinpay merchant RSA2 key
}

// ErrUnusable marks a key file that exists but cannot be used (it does not
// parse, has the wrong size, or the sandbox's key directory is
// incomplete): regenerating the keys is the fix. The error's text is the
// problem alone, so that callers can add their own remedy.
var ErrUnusable = errors.New("unusable key file")

type unusableError struct{ err error }

func (e unusableError) Error() string        { return e.err.Error() }
func (e unusableError) Unwrap() error        { return e.err }
func (e unusableError) Is(target error) bool { return target == ErrUnusable }

// LoadOrCreate reads the keys of f, generating and writing (mode 0600) the
// missing ones as g says; a fresh directory gets a whole new set. The
// public key files (MerchantPub, AllinpayPub), when named, are rewritten
// from the private keys every time. The sandbox's keys count as present
// when their sandbox.FilePubKeyID file is.
func LoadOrCreate(f Files, g Generate) (*Keys, error) {
	k := &Keys{Files: f}
	if err := os.MkdirAll(f.SandboxKeys, 0o700); err != nil {
		return nil, err
	}
	var err error
	if _, statErr := os.Stat(filepath.Join(f.SandboxKeys, sandbox.FilePubKeyID)); statErr == nil {
		if k.Sandbox, err = sandbox.LoadKeys(f.SandboxKeys); err != nil {
			return nil, unusableError{err}
		}
	} else {
		if k.Sandbox, err = sandbox.GenerateKeys(); err != nil {
			return nil, err
		}
		if err := k.Sandbox.WriteKeys(f.SandboxKeys); err != nil {
			return nil, err
		}
	}
	if k.Merchant, err = loadOrCreateRSA(f.MerchantKey, f.MerchantPub); err != nil {
		return nil, err
	}
	if k.Allinpay, err = loadOrCreateRSA(f.AllinpayKey, f.AllinpayPub); err != nil {
		return nil, err
	}
	if k.APIv3Key, err = ReadOrCreate(f.APIv3Key, func() ([]byte, error) {
		if g.APIv3Key != "" {
			return []byte(g.APIv3Key + "\n"), nil
		}
		return []byte(rand.Text()[:26] + "devAPI"), nil // 32 bytes, like WeChat's APIv3 key
	}); err != nil {
		return nil, err
	}
	k.APIv3Key = []byte(strings.TrimSpace(string(k.APIv3Key)))
	if len(k.APIv3Key) != 32 {
		return nil, unusableError{fmt.Errorf("%s: the APIv3 key must be 32 bytes", f.APIv3Key)}
	}
	if _, err = ReadOrCreate(f.PIIKeys, func() ([]byte, error) {
		var b strings.Builder
		if g.PIIComment != "" {
			b.WriteString("# " + g.PIIComment + "\n")
		}
		b.WriteString(pii.GenerateKeyLine(g.PIIKeyID) + "\n")
		return []byte(b.String()), nil
	}); err != nil {
		return nil, err
	}
	return k, nil
}

// ReadOrCreate returns the content of file, or, when it does not exist,
// writes gen's (mode 0600) and returns that: the rule of every key file of
// a stack, and of other secrets kept beside them (the devstack's admin
// token).
func ReadOrCreate(file string, gen func() ([]byte, error)) ([]byte, error) {
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

// loadOrCreateRSA reads the RSA private key of file, generating a 2048-bit
// one when it is missing, and writes its public key to pubFile when set.
func loadOrCreateRSA(file, pubFile string) (*rsa.PrivateKey, error) {
	b, err := ReadOrCreate(file, func() ([]byte, error) {
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
		return nil, unusableError{fmt.Errorf("%s: %w", file, err)}
	}
	if pubFile != "" {
		if err := os.WriteFile(pubFile, sandbox.PublicPEM(&k.PublicKey), 0o600); err != nil {
			return nil, err
		}
	}
	return k, nil
}
