// Package clients builds the provider.Registry of a configuration: one
// protocol client per account, one provider.Provider per (channel, account).
package clients

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/allinpay"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
)

// Options are passed to every client.
type Options struct {
	// HTTPClient is shared by all clients; nil means the pooled default.
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
}

// New reads every account's keys and returns the registry. Errors name the
// account and the file, never key material.
func New(cfg *provider.Config, opts Options) (*provider.Registry, error) {
	reg := provider.NewRegistry()
	for _, acct := range cfg.Accounts {
		switch acct.Provider {
		case provider.ProtocolWeChat:
			c, err := wechatpay.Open(acct, wechatpay.Options{HTTPClient: opts.HTTPClient, Now: opts.Now, Logger: opts.Logger})
			if err != nil {
				return nil, err
			}
			for _, ch := range acct.Channels {
				p, err := c.Provider(ch)
				if err != nil {
					return nil, fmt.Errorf("account %q: %w", acct.Name, err)
				}
				reg.Register(p)
			}
		case provider.ProtocolAllinpay:
			c, err := allinpay.Open(acct, allinpay.Options{HTTPClient: opts.HTTPClient, Now: opts.Now, Logger: opts.Logger})
			if err != nil {
				return nil, err
			}
			reg.Register(c)
		default:
			return nil, fmt.Errorf("account %q: unknown provider %q", acct.Name, acct.Provider)
		}
	}
	return reg, nil
}

// WeChatClients returns the WeChat client of every WeChat account by name,
// for the callback handler (it verifies and decrypts with the account's
// keys).
func WeChatClients(cfg *provider.Config, opts Options) (map[string]*wechatpay.Client, error) {
	out := make(map[string]*wechatpay.Client)
	for _, acct := range cfg.Accounts {
		if acct.Provider != provider.ProtocolWeChat {
			continue
		}
		c, err := wechatpay.Open(acct, wechatpay.Options{HTTPClient: opts.HTTPClient, Now: opts.Now, Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		out[acct.Name] = c
	}
	return out, nil
}
