package sandboxstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Trusted are the files of what the services trust of the sandbox: WeChat
// Pay's platform certificate and public key, Allinpay's public key.
type Trusted struct {
	PlatformCert, PublicKey, AllinpayPublic string
	// PublicKeyID is the id of PublicKey (PUB_KEY_ID_…); Write records it.
	PublicKeyID string
}

// HarnessTrusted is the layout of the harnesses: the files directly in dir.
func HarnessTrusted(dir string) Trusted {
	return Trusted{
		PlatformCert:   filepath.Join(dir, "wechatpay_cert.pem"),
		PublicKey:      filepath.Join(dir, "wechatpay_pub.pem"),
		AllinpayPublic: filepath.Join(dir, "allinpay_public.pem"),
	}
}

// Write writes the sandbox's public keys pk (from FetchPublicKeys or
// sandbox.Server.PublicKeys) to the files of t, mode 0600, and records
// their public key id.
func (t *Trusted) Write(pk sandbox.PublicKeys) error {
	for _, f := range []struct{ file, pem string }{
		{t.PlatformCert, pk.PlatformCertPEM},
		{t.PublicKey, pk.PublicKeyPEM},
		{t.AllinpayPublic, pk.AllinpayPublicPEM},
	} {
		if err := os.WriteFile(f.file, []byte(f.pem), 0o600); err != nil {
			return err
		}
	}
	t.PublicKeyID = pk.PublicKeyID
	return nil
}

// FetchPublicKeys reads the public keys of the sandbox at sandboxURL
// (GET /_sandbox/keys): what a sandbox started as a process publishes.
func FetchPublicKeys(ctx context.Context, sandboxURL string) (sandbox.PublicKeys, error) {
	var pk sandbox.PublicKeys
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sandboxURL+"/_sandbox/keys", nil)
	if err != nil {
		return pk, fmt.Errorf("sandbox keys: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return pk, fmt.Errorf("sandbox keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return pk, fmt.Errorf("sandbox keys: GET %s/_sandbox/keys: %s", sandboxURL, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&pk); err != nil {
		return pk, fmt.Errorf("sandbox keys: %w", err)
	}
	return pk, nil
}

// Settings are what differs between the stacks' provider accounts.
type Settings struct {
	Identity
	// Timeout bounds one provider call; each stack explains its choice.
	Timeout time.Duration
	// NotifyURL receives WeChat Pay callbacks; empty: no callbacks (the
	// services learn outcomes by querying).
	NotifyURL string
}

// Accounts are the services' provider accounts against the sandbox at
// sandboxURL, both named "default": WeChat Pay (its three channels) and
// Allinpay, signing with the keys of f and trusting the files of t.
func Accounts(sandboxURL string, f Files, t Trusted, s Settings) []provider.Account {
	return []provider.Account{
		{
			Name: withdrawal.DefaultAccount, Provider: provider.ProtocolWeChat, BaseURL: sandboxURL,
			Timeout: s.Timeout, MchID: s.MchID, CertSerial: s.CertSerial,
			PrivateKeyFile:    f.MerchantKey,
			PlatformCertFiles: []string{t.PlatformCert},
			PublicKeyID:       t.PublicKeyID,
			PublicKeyFile:     t.PublicKey,
			APIv3KeyFile:      f.APIv3Key,
			NotifyURL:         s.NotifyURL,
		},
		{
			Name: withdrawal.DefaultAccount, Provider: provider.ProtocolAllinpay, BaseURL: sandboxURL + sandbox.AllinpayGatewayPath,
			Timeout: s.Timeout, AppID: s.AppID,
			PrivateKeyFile:        f.AllinpayKey,
			AllinpayPublicKeyFile: t.AllinpayPublic,
		},
	}
}

// WriteConfig writes accounts as a WITHDRAW_CONFIG file (mode 0600) and
// loads it back the way the binaries do, so that a stack never starts on a
// file they would reject. header, when set, opens the file as "# "
// comment lines. Only the fields that are set are written: the file is
// for people to read too (the devstack's users point their own binaries
// at it).
func WriteConfig(file, header string, accounts []provider.Account) (*provider.Config, error) {
	var doc yaml.Node
	if err := doc.Encode(provider.Config{Accounts: accounts}); err != nil {
		return nil, fmt.Errorf("provider config: %w", err)
	}
	dropEmpty(&doc)
	var b bytes.Buffer
	if header != "" {
		for line := range strings.Lines(header) {
			b.WriteString("# " + strings.TrimSuffix(line, "\n") + "\n")
		}
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("provider config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("provider config: %w", err)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return provider.LoadConfig(file)
}

// dropEmpty removes from every mapping below n the keys whose value is
// empty: null, "", [] or {}.
func dropEmpty(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; !isEmpty(v) {
				kept = append(kept, n.Content[i], v)
			}
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		dropEmpty(c)
	}
}

func isEmpty(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Tag == "!!null" || (n.Tag == "!!str" && n.Value == "")
	case yaml.SequenceNode, yaml.MappingNode:
		return len(n.Content) == 0
	}
	return false
}

// HarnessConfig provisions the services of a harness for the sandbox
// process at sandboxURL: it fetches the sandbox's public keys, writes them
// into dir (HarnessTrusted) and writes dir/name, the WITHDRAW_CONFIG of the
// accounts of s signing with the keys of f; it returns that file's path.
func HarnessConfig(ctx context.Context, sandboxURL, dir, name string, f Files, s Settings) (string, error) {
	pk, err := FetchPublicKeys(ctx, sandboxURL)
	if err != nil {
		return "", err
	}
	t := HarnessTrusted(dir)
	if err := t.Write(pk); err != nil {
		return "", err
	}
	file := filepath.Join(dir, name)
	if _, err := WriteConfig(file, "", Accounts(sandboxURL, f, t, s)); err != nil {
		return "", err
	}
	return file, nil
}
