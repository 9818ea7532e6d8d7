package provider

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// DefaultTimeout bounds one provider call when an account sets none.
const DefaultTimeout = 10 * time.Second

// Account is one provider account from configuration. Secrets are given
// only as file paths; the account never holds or prints their content.
type Account struct {
	// Name is what commands put in "account" (default "default").
	Name string `yaml:"name"`
	// Provider is "wechatpay" or "allinpay".
	Provider Protocol `yaml:"provider"`
	// Channels served by this account; default: every channel of Provider.
	Channels []withdrawal.Channel `yaml:"channels"`
	// BaseURL: WeChat https://api.mch.weixin.qq.com; Allinpay the gateway
	// URL (unconfirmed); the sandbox's URL in development.
	BaseURL string `yaml:"base_url"`
	// Timeout bounds one call (connect to last byte).
	Timeout time.Duration `yaml:"timeout"`
	// PrivateKeyFile is the PEM merchant private key (WeChat apiclient_key,
	// Allinpay RSA2 key).
	PrivateKeyFile string `yaml:"private_key_file"`

	// WeChat Pay.
	MchID      string `yaml:"mchid"`
	CertSerial string `yaml:"cert_serial"`
	// PlatformCertFiles are WeChat Pay platform certificates (PEM); each is
	// trusted under its serial number.
	PlatformCertFiles []string `yaml:"platform_cert_files"`
	// PublicKeyID (PUB_KEY_ID_…) and PublicKeyFile are the WeChat Pay
	// public key. Certificates and the public key may both be configured
	// during a migration: answers signed by either verify.
	PublicKeyID   string `yaml:"public_key_id"`
	PublicKeyFile string `yaml:"public_key_file"`
	// APIv3KeyFile holds the 32-byte APIv3 key that decrypts callbacks.
	APIv3KeyFile string `yaml:"apiv3_key_file"`
	// NotifyURL is passed as notify_url on submission.
	NotifyURL string `yaml:"notify_url"`
	// EncryptWith chooses the key for sensitive fields: "public_key"
	// (default when PublicKeyID is set) or "certificate".
	EncryptWith string `yaml:"encrypt_with"`
	// CancelStates overrides withdrawl_apply.state → internal state entries
	// of the cancelled-merchant withdraw, whose value set is unconfirmed.
	CancelStates map[string]withdrawal.State `yaml:"cancel_states"`
	// Recon, when set, reconciles the account daily against its fund-flow
	// bills (see Recon).
	Recon *Recon `yaml:"recon"`

	// Allinpay.
	AppID                 string `yaml:"app_id"`
	AllinpayPublicKeyFile string `yaml:"allinpay_public_key_file"`
	// QueryMethod is the gateway method of the status query (unconfirmed).
	QueryMethod string `yaml:"query_method"`
	// AllinpayNotFoundCode overrides the query code meaning "no such order".
	AllinpayNotFoundCode string `yaml:"allinpay_not_found_code"`
	// AllinpayStatuses overrides withdrawStatus → internal state entries.
	AllinpayStatuses map[string]withdrawal.State `yaml:"allinpay_statuses"`
}

// Config is the provider part of the WITHDRAW_CONFIG file.
type Config struct {
	Accounts []Account `yaml:"accounts"`
}

// LoadConfig reads and validates the YAML file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provider config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("provider config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates YAML. Unknown keys are errors, so that a
// misspelt key never silently drops a setting; other top-level sections of
// the shared file must therefore be parsed by their owners from the same
// bytes (this function reads only "accounts").
func ParseConfig(b []byte) (*Config, error) {
	var doc struct {
		Accounts yaml.Node `yaml:"accounts"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var cfg Config
	if doc.Accounts.Kind != 0 {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(&doc.Accounts); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		if err := dec.Decode(&cfg.Accounts); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
	}
	seen := make(map[string]bool)
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if err := a.Normalize(); err != nil {
			return nil, fmt.Errorf("accounts[%d]: %w", i, err)
		}
		for _, ch := range a.Channels {
			k := string(ch) + "/" + a.Name
			if seen[k] {
				return nil, fmt.Errorf("accounts[%d]: account %q configured twice for %s", i, a.Name, ch)
			}
			seen[k] = true
		}
	}
	return &cfg, nil
}

// Normalize fills defaults and checks that the account is complete. It does
// not read the key files (the clients do, with errors naming the file).
func (a *Account) Normalize() error {
	if a.Name == "" {
		a.Name = withdrawal.DefaultAccount
	}
	if a.Timeout == 0 {
		a.Timeout = DefaultTimeout
	}
	if a.Timeout < 0 {
		return fmt.Errorf("account %q: timeout must be positive", a.Name)
	}
	var errs []error
	need := func(field, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("account %q: %s is required", a.Name, field))
		}
	}
	need("base_url", a.BaseURL)
	need("private_key_file", a.PrivateKeyFile)
	if a.BaseURL != "" {
		if u, err := url.Parse(a.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("account %q: base_url %q is not an absolute URL", a.Name, a.BaseURL))
		}
	}
	switch a.Provider {
	case ProtocolWeChat:
		if len(a.Channels) == 0 {
			a.Channels = []withdrawal.Channel{withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform, withdrawal.ChannelWeChatCancel}
		}
		need("mchid", a.MchID)
		need("cert_serial", a.CertSerial)
		if len(a.PlatformCertFiles) == 0 && a.PublicKeyFile == "" {
			errs = append(errs, fmt.Errorf("account %q: platform_cert_files or public_key_id+public_key_file is required to verify answers", a.Name))
		}
		if (a.PublicKeyID == "") != (a.PublicKeyFile == "") {
			errs = append(errs, fmt.Errorf("account %q: public_key_id and public_key_file go together", a.Name))
		}
		switch a.EncryptWith {
		case "":
			a.EncryptWith = "certificate"
			if a.PublicKeyID != "" {
				a.EncryptWith = "public_key"
			}
		case "public_key":
			if a.PublicKeyID == "" {
				errs = append(errs, fmt.Errorf("account %q: encrypt_with public_key needs public_key_id and public_key_file", a.Name))
			}
		case "certificate":
			if len(a.PlatformCertFiles) == 0 {
				errs = append(errs, fmt.Errorf("account %q: encrypt_with certificate needs platform_cert_files", a.Name))
			}
		default:
			errs = append(errs, fmt.Errorf("account %q: encrypt_with must be public_key or certificate", a.Name))
		}
		errs = append(errs, checkStates(a.Name, "cancel_states", a.CancelStates)...)
		if a.Recon != nil {
			if err := a.Recon.Normalize(); err != nil {
				errs = append(errs, fmt.Errorf("account %q: %w", a.Name, err))
			}
		}
	case ProtocolAllinpay:
		if a.Recon != nil {
			errs = append(errs, fmt.Errorf("account %q: recon: Allinpay has no bill API in our documents; its withdrawals are reconciled by query only", a.Name))
		}
		errs = append(errs, checkStates(a.Name, "allinpay_statuses", a.AllinpayStatuses)...)
		if len(a.Channels) == 0 {
			a.Channels = []withdrawal.Channel{withdrawal.ChannelAllinpayShopoint}
		}
		need("app_id", a.AppID)
		need("allinpay_public_key_file", a.AllinpayPublicKeyFile)
		if a.QueryMethod == "" {
			a.QueryMethod = DefaultAllinpayQueryMethod
		}
		if a.AllinpayNotFoundCode == "" {
			a.AllinpayNotFoundCode = AllinpayNotFoundCode
		}
	default:
		errs = append(errs, fmt.Errorf("account %q: provider must be %q or %q", a.Name, ProtocolWeChat, ProtocolAllinpay))
	}
	for _, ch := range a.Channels {
		if !ch.Valid() || ch.IsWeChat() != (a.Provider == ProtocolWeChat) {
			errs = append(errs, fmt.Errorf("account %q: channel %q is not a %s channel", a.Name, ch, a.Provider))
		}
	}
	return errors.Join(errs...)
}

// checkStates refuses a status override to a state a provider status
// cannot mean.
func checkStates(account, key string, m map[string]withdrawal.State) []error {
	var errs []error
	for status, st := range m {
		switch st {
		case withdrawal.StateSubmitted, withdrawal.StateSucceeded, withdrawal.StateFailed, withdrawal.StateReversed:
		default:
			errs = append(errs, fmt.Errorf("account %q: %s: %q maps to %q; want SUBMITTED, SUCCEEDED, FAILED or REVERSED", account, key, status, st))
		}
	}
	return errs
}

// DefaultAllinpayQueryMethod is the assumed name of Allinpay's withdraw
// query method. Unconfirmed: no primary source was found; configure it.
const DefaultAllinpayQueryMethod = "allinpay.shopoint.fundService.withdrawQuery"

// LogValue implements slog.LogValuer. It prints identifiers and file paths,
// never key material (the account holds none).
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", a.Name),
		slog.String("provider", string(a.Provider)),
		slog.String("base_url", a.BaseURL),
		slog.String("mchid", a.MchID),
		slog.String("cert_serial", a.CertSerial),
		slog.String("public_key_id", a.PublicKeyID),
		slog.String("app_id", a.AppID),
		slog.Duration("timeout", a.Timeout),
	)
}

// String implements fmt.Stringer like LogValue.
func (a Account) String() string {
	return fmt.Sprintf("%s account %q (mchid=%s app_id=%s base_url=%s)", a.Provider, a.Name, a.MchID, a.AppID, a.BaseURL)
}

// ReadSecretFile reads a key file, naming the file (never its content) in
// errors.
func ReadSecretFile(kind, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: no file configured", kind)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return b, nil
}
