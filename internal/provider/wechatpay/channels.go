package wechatpay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// API paths (docs/providers.md). "withdrawl" is WeChat's spelling.
const (
	PathEcommerceWithdraw = "/v3/ecommerce/fund/withdraw"
	PathPlatformWithdraw  = "/v3/merchant/fund/withdraw"
	PathCancelWithdraw    = "/v3/mch_operate/risk/withdrawl-apply"
)

// Channel is a provider.Provider for one WeChat withdraw channel.
type Channel struct {
	c  *Client
	ch withdrawal.Channel
}

var _ provider.Provider = (*Channel)(nil)

// Provider returns the client's provider for a WeChat channel.
func (c *Client) Provider(ch withdrawal.Channel) (*Channel, error) {
	if !ch.IsWeChat() {
		return nil, fmt.Errorf("wechatpay: %s is not a WeChat channel", ch)
	}
	return &Channel{c: c, ch: ch}, nil
}

// Channel implements provider.Provider.
func (p *Channel) Channel() withdrawal.Channel { return p.ch }

// Account implements provider.Provider.
func (p *Channel) Account() string { return p.c.acct.Name }

// BuildSubmit implements provider.Provider.
func (p *Channel) BuildSubmit(_ context.Context, cmd *withdrawal.Command) (provider.Request, error) {
	req := provider.Request{Channel: p.ch, Account: p.c.acct.Name, OutRequestNo: cmd.OutRequestNo, Method: http.MethodPost}
	if cmd.Channel != p.ch {
		return req, fmt.Errorf("wechatpay: command of channel %s sent to %s", cmd.Channel, p.ch)
	}
	var (
		body any
		err  error
	)
	switch p.ch {
	case withdrawal.ChannelWeChatEcommerce:
		req.Path = PathEcommerceWithdraw
		body = withdrawBody{SubMchID: cmd.SubMchID, OutRequestNo: cmd.OutRequestNo, Amount: cmd.Amount,
			Remark: cmd.Remark, BankMemo: cmd.BankMemo, AccountType: cmd.AccountType, NotifyURL: p.c.acct.NotifyURL}
	case withdrawal.ChannelWeChatPlatform:
		req.Path = PathPlatformWithdraw
		body = withdrawBody{OutRequestNo: cmd.OutRequestNo, Amount: cmd.Amount,
			Remark: cmd.Remark, BankMemo: cmd.BankMemo, AccountType: cmd.AccountType, NotifyURL: p.c.acct.NotifyURL}
	case withdrawal.ChannelWeChatCancel:
		req.Path = PathCancelWithdraw
		body, req.WechatpaySerial, err = p.cancelBody(cmd)
		if err != nil {
			return req, err
		}
	}
	if req.Body, err = marshal(body); err != nil {
		return req, fmt.Errorf("wechatpay: encode %s body: %w", p.ch, err)
	}
	return req, nil
}

func (p *Channel) cancelBody(cmd *withdrawal.Command) (*cancelBody, string, error) {
	serial, pub, err := p.c.creds.Keys.EncryptionKey()
	if err != nil {
		return nil, "", err
	}
	payee, err := encryptPayee(cmd.PayeeInfo, func(s string) (string, error) { return EncryptOAEP(pub, s) })
	if err != nil {
		return nil, "", fmt.Errorf("wechatpay: payee_info: %w", err)
	}
	b := &cancelBody{SubMchID: cmd.SubMchID, OutAccountType: cmd.OutAccountType, Amount: cmd.Amount,
		OutRequestNo: cmd.OutRequestNo, PayeeType: cmd.PayeeType, PayeeMchID: cmd.PayeeMchID, PayeeInfo: payee, Remark: cmd.Remark}
	if b.ProofMediaList, err = compactRaw(cmd.ProofMediaList); err != nil {
		return nil, "", fmt.Errorf("wechatpay: proof_media_list: %w", err)
	}
	if b.AdditionalMaterials, err = compactRaw(cmd.AdditionalMaterials); err != nil {
		return nil, "", fmt.Errorf("wechatpay: additional_materials: %w", err)
	}
	return b, serial, nil
}

// Send implements provider.Provider.
func (p *Channel) Send(ctx context.Context, req provider.Request) provider.Outcome {
	if req.Method == "" || req.Path == "" || len(req.Body) == 0 {
		return provider.Outcome{Kind: provider.KindRetryLater, Code: provider.CodeBuildFailed, Alert: true,
			RetryAfter: provider.ConfigErrorDelay, Message: "empty request: BuildSubmit first"}
	}
	op := provider.OpSubmit
	if req.Resend {
		op = provider.OpResend
	}
	ans, o, ok := p.c.call(ctx, p.ch, op, req.Method, req.Path, req.Body, req.WechatpaySerial)
	if !ok {
		p.logOutcome(ctx, "submit", req.OutRequestNo, o)
		return o
	}
	var a submitAnswer
	if err := json.Unmarshal(ans.body, &a); err != nil {
		o.Kind, o.Code, o.Err, o.Alert = provider.KindAmbiguous, provider.CodeUnparseable, fmt.Errorf("submit answer: %w", err), true
		return o
	}
	if a.OutRequestNo != req.OutRequestNo {
		// An answer without our number, or with another, cannot be tied to
		// this request, and its provider id must not be stored: a query by
		// our number settles it. (The cancel application's answer marks
		// out_request_no optional; its example carries it.)
		o.Kind, o.Code, o.Alert = provider.KindAmbiguous, provider.CodeUnexpected, true
		o.Err = fmt.Errorf("submit answer is not for the out_request_no sent (present: %v)", a.OutRequestNo != "")
		return o
	}
	o.Kind, o.State = provider.KindAccepted, withdrawal.StateSubmitted
	o.ProviderRef = a.WithdrawID
	if p.ch == withdrawal.ChannelWeChatCancel {
		o.ProviderRef = a.ApplymentID
	}
	return o
}

// QueryByOutRequestNo implements provider.Provider.
func (p *Channel) QueryByOutRequestNo(ctx context.Context, k provider.QueryKey) provider.QueryResult {
	no := url.PathEscape(k.OutRequestNo)
	var path string
	switch p.ch {
	case withdrawal.ChannelWeChatEcommerce:
		path = PathEcommerceWithdraw + "/out-request-no/" + no + "?sub_mchid=" + url.QueryEscape(k.SubMchID)
	case withdrawal.ChannelWeChatPlatform:
		path = PathPlatformWithdraw + "/out-request-no/" + no
	case withdrawal.ChannelWeChatCancel:
		path = PathCancelWithdraw + "/out-request-no/" + no
	}
	return p.query(ctx, path, k.OutRequestNo)
}

// QueryByProviderRef implements provider.Provider.
func (p *Channel) QueryByProviderRef(ctx context.Context, k provider.QueryKey) provider.QueryResult {
	if k.ProviderRef == "" {
		return p.QueryByOutRequestNo(ctx, k)
	}
	ref := url.PathEscape(k.ProviderRef)
	var path string
	switch p.ch {
	case withdrawal.ChannelWeChatEcommerce:
		path = PathEcommerceWithdraw + "/" + ref + "?sub_mchid=" + url.QueryEscape(k.SubMchID)
	case withdrawal.ChannelWeChatPlatform:
		path = PathPlatformWithdraw + "/withdraw-id/" + ref
	case withdrawal.ChannelWeChatCancel:
		path = PathCancelWithdraw + "/applyment-id/" + ref
	}
	return p.query(ctx, path, k.OutRequestNo)
}

func (p *Channel) query(ctx context.Context, path, outRequestNo string) provider.QueryResult {
	ans, o, ok := p.c.call(ctx, p.ch, provider.OpQuery, http.MethodGet, path, nil, "")
	r := provider.QueryResult{Outcome: o}
	if !ok {
		p.logOutcome(ctx, "query", outRequestNo, o)
		return r
	}
	var a queryAnswer
	if err := json.Unmarshal(ans.body, &a); err != nil {
		r.Kind, r.Code, r.Err, r.Alert = provider.KindAmbiguous, provider.CodeUnparseable, fmt.Errorf("query answer: %w", err), true
		return r
	}
	if w := a.WithdrawlApply; w != nil {
		a.Status, a.WithdrawID, a.OutRequestNo, a.Reason = w.State, w.ApplymentID, w.OutRequestNo, w.FailReason
	}
	if a.Status == "" {
		r.Kind, r.Code, r.Alert = provider.KindAmbiguous, provider.CodeUnexpected, true
		r.Err = fmt.Errorf("query answer without status")
		return r
	}
	// The answer's identity (out_request_no, amount, ids) is checked
	// against the stored order by the decision module, which has it.
	r.Kind = provider.KindAccepted
	r.ProviderRef, r.ProviderStatus, r.Amount, r.Reason, r.Solution = a.WithdrawID, a.Status, a.Amount, a.Reason, a.Solution
	r.OutRequestNo, r.SubMchID = a.OutRequestNo, a.SubMchID
	if m, ok := p.mapStatus(a.Status); ok {
		r.State, r.Resubmit = m.State, m.Resubmit
	} else {
		// An undocumented status: keep the state, record the raw value.
		p.c.log.WarnContext(ctx, "wechatpay: unmapped status", "channel", p.ch, "status", a.Status)
	}
	return r
}

// mapStatus maps a status of the channel: the answer table, with the
// account's overrides for the cancel application's unconfirmed states.
func (p *Channel) mapStatus(status string) (provider.StatusMapping, bool) {
	if p.ch == withdrawal.ChannelWeChatCancel {
		m, ok := p.c.cancelStates[status]
		return m, ok
	}
	return provider.MapStatus(p.ch, status)
}

func (p *Channel) logOutcome(ctx context.Context, op, outRequestNo string, o provider.Outcome) {
	lvl := slogLevel(o)
	p.c.log.Log(ctx, lvl, "wechatpay: "+op+" not accepted", "channel", p.ch, "account", p.c.acct.Name,
		"out_request_no", outRequestNo, "outcome", o)
}
