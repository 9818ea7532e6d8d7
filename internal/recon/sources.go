package recon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// wechatFetcher fetches one WeChat Pay bill: the signed apply request, then
// every part's download, each checked against its hash_value.
type wechatFetcher struct {
	c   *wechatpay.Client
	req wechatpay.BillRequest
}

func (f wechatFetcher) Fetch(ctx context.Context, date, dir string) ([]string, error) {
	r := f.req
	r.Date = date
	parts, err := f.c.FundFlowBill(ctx, r)
	if errors.Is(err, wechatpay.ErrBillNotReady) {
		return nil, fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if err != nil {
		return nil, err
	}
	var files []string
	for _, p := range parts {
		path, err := f.c.DownloadBill(ctx, p, dir)
		if err != nil {
			for _, f := range files {
				os.Remove(f)
			}
			if errors.Is(err, wechatpay.ErrBillHash) || errors.Is(err, wechatpay.ErrBillDecrypt) {
				return nil, fmt.Errorf("%w: %w", ErrRefused, err)
			}
			return nil, err
		}
		files = append(files, path)
	}
	return files, nil
}

// WeChatSources returns the bills of every WeChat account with a recon
// block, using the accounts' clients (by account name).
func WeChatSources(cfg *provider.Config, clients map[string]*wechatpay.Client) ([]Source, error) {
	var out []Source
	for _, acct := range cfg.Accounts {
		if acct.Provider != provider.ProtocolWeChat || acct.Recon == nil {
			continue
		}
		c, ok := clients[acct.Name]
		if !ok {
			return nil, fmt.Errorf("recon: no WeChat client for account %q", acct.Name)
		}
		rc := acct.Recon
		serves := func(chs ...withdrawal.Channel) []withdrawal.Channel {
			var out []withdrawal.Channel
			for _, ch := range chs {
				if slices.Contains(acct.Channels, ch) {
					out = append(out, ch)
				}
			}
			return out
		}
		prefix := "wechatpay/" + acct.Name + "/"
		for _, t := range rc.AccountTypes {
			out = append(out, Source{Name: prefix + "platform/" + t, Account: acct.Name,
				Channels: serves(withdrawal.ChannelWeChatPlatform), Layout: rc,
				Fetcher: wechatFetcher{c: c, req: wechatpay.BillRequest{AccountType: t}},
				Covers:  func(w *store.Withdrawal) bool { _, a := fundAccount(w); return a == t }})
		}
		sub := serves(withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatCancel)
		if rc.Ecommerce {
			out = append(out, Source{Name: prefix + "ecommerce/ALL", Account: acct.Name, Channels: sub, Layout: rc,
				Fetcher: wechatFetcher{c: c, req: wechatpay.BillRequest{Ecommerce: true}}})
		}
		for _, id := range rc.SubMchIDs {
			for _, t := range rc.SubAccountTypes {
				out = append(out, Source{Name: prefix + "sub/" + id + "/" + t, Account: acct.Name, Channels: sub, Layout: rc,
					Fetcher: wechatFetcher{c: c, req: wechatpay.BillRequest{SubMchID: id, AccountType: t}},
					Covers: func(w *store.Withdrawal) bool {
						s, a := fundAccount(w)
						return s == id && a == t
					}})
			}
		}
	}
	return out, nil
}
