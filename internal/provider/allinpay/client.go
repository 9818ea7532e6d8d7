package allinpay

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// MaxAnswerBytes bounds an answer body.
const MaxAnswerBytes = 1 << 20

// Options tune a Client.
type Options struct {
	HTTPClient *http.Client // nil: wechatpay.DefaultHTTPClient (one shared pool)
	Codec      BizCodec     // nil: PlainJSON
	Now        func() time.Time
	Logger     *slog.Logger
}

// Client is the provider.Provider of the allinpay_shopoint channel for one
// account. It is safe for concurrent use.
type Client struct {
	acct     provider.Account
	key      *rsa.PrivateKey
	pub      *rsa.PublicKey
	statuses map[string]provider.StatusMapping
	http     *http.Client
	codec    BizCodec
	now      func() time.Time
	log      *slog.Logger
}

var _ provider.Provider = (*Client)(nil)

// New returns a client with parsed keys: the merchant's private key and
// Allinpay's public key.
func New(acct provider.Account, key *rsa.PrivateKey, allinpayPub *rsa.PublicKey, opts Options) (*Client, error) {
	if acct.BaseURL == "" || acct.AppID == "" || key == nil || allinpayPub == nil {
		return nil, errors.New("allinpay: base_url, app_id and both keys are required")
	}
	if acct.Timeout <= 0 {
		acct.Timeout = provider.DefaultTimeout
	}
	if acct.QueryMethod == "" {
		acct.QueryMethod = provider.DefaultAllinpayQueryMethod
	}
	if acct.AllinpayNotFoundCode == "" {
		acct.AllinpayNotFoundCode = provider.AllinpayNotFoundCode
	}
	c := &Client{acct: acct, key: key, pub: allinpayPub, http: opts.HTTPClient, codec: opts.Codec, now: opts.Now, log: opts.Logger}
	c.statuses = provider.StatusTable(withdrawal.ChannelAllinpayShopoint)
	for k, st := range acct.AllinpayStatuses {
		c.statuses[k] = provider.StatusMapping{State: st}
	}
	if c.http == nil {
		c.http = wechatpay.DefaultHTTPClient
	}
	if c.codec == nil {
		c.codec = PlainJSON{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// Open reads the account's key files and returns its client.
func Open(acct provider.Account, opts Options) (*Client, error) {
	b, err := provider.ReadSecretFile("private_key_file", acct.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("allinpay account %q: %w", acct.Name, err)
	}
	key, err := wechatpay.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("allinpay account %q: %s: %w", acct.Name, acct.PrivateKeyFile, err)
	}
	b, err = provider.ReadSecretFile("allinpay_public_key_file", acct.AllinpayPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("allinpay account %q: %w", acct.Name, err)
	}
	pub, err := wechatpay.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("allinpay account %q: %s: %w", acct.Name, acct.AllinpayPublicKeyFile, err)
	}
	return New(acct, key, pub, opts)
}

// Channel implements provider.Provider.
func (c *Client) Channel() withdrawal.Channel { return withdrawal.ChannelAllinpayShopoint }

// Account implements provider.Provider.
func (c *Client) Account() string { return c.acct.Name }

// BuildSubmit implements provider.Provider: Body is the bizContent JSON.
func (c *Client) BuildSubmit(_ context.Context, cmd *withdrawal.Command) (provider.Request, error) {
	req := provider.Request{Channel: c.Channel(), Account: c.acct.Name, OutRequestNo: cmd.OutRequestNo,
		Method: http.MethodPost, Path: MethodWithdraw}
	if cmd.Channel != withdrawal.ChannelAllinpayShopoint {
		return req, fmt.Errorf("allinpay: command of channel %s", cmd.Channel)
	}
	biz, err := BuildWithdrawBiz(cmd)
	if err != nil {
		return req, err
	}
	if req.Body, err = json.Marshal(biz); err != nil {
		return req, fmt.Errorf("allinpay: encode bizContent: %w", err)
	}
	return req, nil
}

// Envelope returns the signed form of one gateway call.
func (c *Client) Envelope(method string, biz []byte) (url.Values, error) {
	enc, err := c.codec.Encode(biz)
	if err != nil {
		return nil, fmt.Errorf("allinpay: encode bizContent: %w", err)
	}
	p := map[string]string{
		"appId": c.acct.AppID, "method": method, "version": Version, "charset": "UTF-8", "format": "JSON",
		"timestamp": c.now().In(withdrawal.Beijing).Format(TimestampLayout), "bizContent": enc, "signType": SignType,
	}
	sig, err := signSHA256(c.key, []byte(SigningString(p)))
	if err != nil {
		return nil, fmt.Errorf("allinpay: %w", err)
	}
	p["sign"] = sig
	form := make(url.Values, len(p))
	for k, v := range p {
		form.Set(k, v)
	}
	return form, nil
}

// Send implements provider.Provider.
func (c *Client) Send(ctx context.Context, req provider.Request) provider.Outcome {
	if len(req.Body) == 0 || req.Path == "" {
		return provider.Outcome{Kind: provider.KindRetryLater, Code: provider.CodeBuildFailed, Alert: true,
			RetryAfter: provider.ConfigErrorDelay, Message: "empty request: BuildSubmit first"}
	}
	op := provider.OpSubmit
	if req.Resend {
		op = provider.OpResend
	}
	r := c.call(ctx, op, req.Path, req.Body)
	if r.Kind == provider.KindAccepted && r.OutRequestNo != "" && r.OutRequestNo != req.OutRequestNo {
		r.Outcome = provider.Outcome{Kind: provider.KindAmbiguous, HTTPStatus: r.HTTPStatus, Code: provider.CodeUnexpected,
			Alert: true, Err: errors.New("allinpay: withdraw answer is for another orderId")}
	}
	if r.Kind != provider.KindAccepted {
		c.log.Log(ctx, level(r.Outcome), "allinpay: withdraw not accepted", "out_request_no", req.OutRequestNo, "outcome", r.Outcome)
	}
	return r.Outcome
}

// QueryByOutRequestNo implements provider.Provider (method configurable:
// Account.QueryMethod, unconfirmed).
func (c *Client) QueryByOutRequestNo(ctx context.Context, k provider.QueryKey) provider.QueryResult {
	biz, _ := json.Marshal(QueryBiz{OrderID: k.OutRequestNo}) // a struct of one string cannot fail
	return c.call(ctx, provider.OpQuery, c.acct.QueryMethod, biz)
}

// QueryByProviderRef implements provider.Provider. No query by Allinpay's
// withdrawTId is known: it queries by orderId.
func (c *Client) QueryByProviderRef(ctx context.Context, k provider.QueryKey) provider.QueryResult {
	return c.QueryByOutRequestNo(ctx, k)
}

func (c *Client) call(ctx context.Context, op provider.Op, method string, biz []byte) provider.QueryResult {
	var r provider.QueryResult
	form, err := c.Envelope(method, biz)
	if err != nil {
		r.Kind, r.Code, r.Alert, r.RetryAfter, r.Err = provider.KindRetryLater, provider.CodeBuildFailed, true, provider.ConfigErrorDelay, err
		return r
	}
	status, body, err := c.post(ctx, form)
	r.HTTPStatus = status
	if err != nil {
		r.Kind, r.Code, r.Err = provider.KindAmbiguous, provider.CodeTransport, err
		return r
	}
	if status != http.StatusOK {
		// The gateway answers 200 with a code; anything else carries no
		// verified meaning. 429 and 401 processed nothing.
		o := provider.ClassifyUnverified(status, "", fmt.Errorf("allinpay: HTTP %d", status))
		o.Code = fmt.Sprintf("HTTP_%d", status)
		r.Outcome = o
		return r
	}
	params, err := AnswerParams(body)
	if err == nil {
		err = verifySHA256(c.pub, []byte(SigningString(params)), params["sign"])
	}
	var a answer
	if err == nil {
		err = json.Unmarshal(body, &a)
	}
	if err != nil || a.Code == "" {
		r.Kind, r.Code, r.Alert, r.Err = provider.KindAmbiguous, provider.CodeUnverified, true, fmt.Errorf("allinpay: answer: %w", errors.Join(err))
		return r
	}
	code := a.Code.String()
	if code != "0" {
		if op == provider.OpQuery && code == c.acct.AllinpayNotFoundCode {
			r.Outcome = provider.Outcome{Kind: provider.KindNotFound, HTTPStatus: status, Code: code, Message: a.Msg}
			return r
		}
		r.Outcome = provider.ClassifyError(withdrawal.ChannelAllinpayShopoint, op, 0, code, a.Msg)
		r.HTTPStatus = status
		return r
	}
	var d answerData
	if err := json.Unmarshal(a.Data, &d); err != nil {
		r.Kind, r.Code, r.Alert, r.Err = provider.KindAmbiguous, provider.CodeUnparseable, true, fmt.Errorf("allinpay: answer data: %w", err)
		return r
	}
	if err := summarize(c.statuses, d, &r); err != nil {
		r = provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindAmbiguous, HTTPStatus: status,
			Code: provider.CodeUnexpected, Alert: true, Err: fmt.Errorf("allinpay: %w", err)}}
		return r
	}
	r.Kind, r.Code, r.Message, r.OutRequestNo = provider.KindAccepted, code, a.Msg, d.OrderID
	return r
}

func (c *Client) post(ctx context.Context, form url.Values) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.acct.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.acct.BaseURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, fmt.Errorf("allinpay: new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	req.Header.Set("Accept", "application/json")
	resp, err := wechatpay.RoundTrip(c.http, req) // never follows a redirect
	if err != nil {
		return 0, nil, fmt.Errorf("allinpay: %s: %w", form.Get("method"), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("allinpay: read answer: %w", err)
	}
	if len(b) > MaxAnswerBytes {
		return resp.StatusCode, nil, fmt.Errorf("allinpay: answer larger than %d bytes", MaxAnswerBytes)
	}
	return resp.StatusCode, b, nil
}

func level(o provider.Outcome) slog.Level {
	switch {
	case o.Alert:
		return slog.LevelError
	case o.Kind == provider.KindAmbiguous:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
