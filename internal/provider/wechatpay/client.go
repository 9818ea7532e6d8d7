package wechatpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// MaxAnswerBytes bounds an answer body; a larger one is unparseable.
const MaxAnswerBytes = 1 << 20

// UserAgent is sent with every request (WeChat asks for one).
const UserAgent = "paycore-withdraw/1 (Go net/http)"

// Credentials are an account's parsed keys.
type Credentials struct {
	Signer *Signer
	Keys   *KeyStore
	// APIv3Key decrypts callbacks; may be nil when callbacks are not used.
	APIv3Key []byte
}

// LoadCredentials reads and parses the key files an account names. Errors
// name the file, never its content.
func LoadCredentials(acct provider.Account) (*Credentials, error) {
	pemKey, err := provider.ReadSecretFile("private_key_file", acct.PrivateKeyFile)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(pemKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", acct.PrivateKeyFile, err)
	}
	store := NewKeyStore()
	for _, f := range acct.PlatformCertFiles {
		b, err := provider.ReadSecretFile("platform_cert_files", f)
		if err != nil {
			return nil, err
		}
		cert, _, err := ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		store.AddCertificate(cert)
	}
	if acct.PublicKeyFile != "" {
		b, err := provider.ReadSecretFile("public_key_file", acct.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		pub, err := ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", acct.PublicKeyFile, err)
		}
		store.AddPublicKey(acct.PublicKeyID, pub)
	}
	// The key that encrypts payee fields, and so the Wechatpay-Serial sent,
	// is always the one the account names; never a guess.
	switch {
	case acct.EncryptWith == "certificate":
		if err := store.UseCertificate(); err != nil {
			return nil, err
		}
	case acct.PublicKeyID != "":
		if err := store.SetEncryptionKey(acct.PublicKeyID); err != nil {
			return nil, err
		}
	}
	creds := &Credentials{Signer: &Signer{MchID: acct.MchID, Serial: acct.CertSerial, Key: key}, Keys: store}
	if acct.APIv3KeyFile != "" {
		b, err := provider.ReadSecretFile("apiv3_key_file", acct.APIv3KeyFile)
		if err != nil {
			return nil, err
		}
		k := bytes.TrimSpace(b) // files are often written with a trailing newline
		if len(k) != APIv3KeySize {
			return nil, fmt.Errorf("%s: APIv3 key must be %d bytes, got %d", acct.APIv3KeyFile, APIv3KeySize, len(k))
		}
		creds.APIv3Key = k
	}
	return creds, nil
}

// Options tune a Client.
type Options struct {
	// HTTPClient to use; nil means a shared pooled client (DefaultHTTPClient).
	HTTPClient *http.Client
	// Now is the clock for signatures and verification; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Client talks to WeChat Pay for one account. It is safe for concurrent use.
type Client struct {
	acct provider.Account
	// cancelStates maps the cancel application's state: the table's
	// unconfirmed rows with the account's overrides.
	cancelStates map[string]provider.StatusMapping
	base         string
	creds        *Credentials
	verifier     *Verifier
	http         *http.Client
	now          func() time.Time
	log          *slog.Logger
}

// New returns a client for an account with parsed credentials.
func New(acct provider.Account, creds *Credentials, opts Options) (*Client, error) {
	if acct.BaseURL == "" {
		return nil, errors.New("wechatpay: base_url is required")
	}
	if creds == nil || creds.Signer == nil || creds.Signer.Key == nil || creds.Keys == nil {
		return nil, errors.New("wechatpay: incomplete credentials")
	}
	c := &Client{
		acct:  acct,
		base:  strings.TrimRight(acct.BaseURL, "/"),
		creds: creds,
		http:  opts.HTTPClient,
		now:   opts.Now,
		log:   opts.Logger,
	}
	if c.http == nil {
		c.http = DefaultHTTPClient
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.acct.Timeout <= 0 {
		c.acct.Timeout = provider.DefaultTimeout
	}
	c.verifier = &Verifier{Keys: creds.Keys, Now: c.now}
	c.cancelStates = provider.StatusTable(withdrawal.ChannelWeChatCancel)
	for k, st := range acct.CancelStates {
		c.cancelStates[k] = provider.StatusMapping{State: st}
	}
	return c, nil
}

// Open loads an account's credentials and returns its client.
func Open(acct provider.Account, opts Options) (*Client, error) {
	creds, err := LoadCredentials(acct)
	if err != nil {
		return nil, fmt.Errorf("wechatpay account %q: %w", acct.Name, err)
	}
	return New(acct, creds, opts)
}

// Verifier returns the client's answer verifier (callbacks use it too).
func (c *Client) Verifier() *Verifier { return c.verifier }

// APIv3Key returns the key that decrypts callbacks (nil if not configured).
func (c *Client) APIv3Key() []byte { return c.creds.APIv3Key }

// DefaultHTTPClient is shared by all clients: one connection pool, sized for
// a dispatcher with many concurrent submissions to one host. Timeouts are
// per call, from the account, through the context.
var DefaultHTTPClient = &http.Client{Transport: NewTransport()}

// NewTransport returns a pooled transport with bounded dial and TLS times.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// RoundTrip sends one request through client's transport and returns the
// answer as it came. Unlike client.Do it never follows a redirect: Do
// re-sends a POST's body on a 307 or 308 to wherever the answer points,
// which for a payment is a second submission we did not decide on (and
// would not audit). A 3xx is an answer like any other, and the callers
// classify it (unverified, ambiguous). It also skips Do's redirect and
// cookie machinery, a few microseconds per call at full load.
func RoundTrip(client *http.Client, req *http.Request) (*http.Response, error) {
	rt := client.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return rt.RoundTrip(req)
}

// answer is a raw HTTP answer.
type answer struct {
	status    int
	header    http.Header
	body      []byte
	requestID string
}

// errorBody is WeChat's error answer.
type errorBody struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// do signs and sends one request. An error means no complete answer.
func (c *Client) do(ctx context.Context, method, pathAndQuery string, body []byte, serial string) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.acct.Timeout)
	defer cancel()
	nonce := NewNonce()
	auth, err := c.creds.Signer.Authorization(method, pathAndQuery, c.now().Unix(), nonce, body)
	if err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+pathAndQuery, rd)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if serial != "" {
		req.Header.Set(HeaderSerial, serial)
	}
	resp, err := RoundTrip(c.http, req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, redactPath(pathAndQuery), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, redactPath(pathAndQuery), err)
	}
	if len(b) > MaxAnswerBytes {
		return nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, redactPath(pathAndQuery), MaxAnswerBytes)
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: b, requestID: resp.Header.Get(HeaderRequestID)}, nil
}

// redactPath drops the query string from a path for error texts.
func redactPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// call performs a request and classifies everything but a verified 2xx,
// which it returns with ok=true for the channel to parse.
func (c *Client) call(ctx context.Context, ch withdrawal.Channel, op provider.Op, method, path string, body []byte, serial string) (*answer, provider.Outcome, bool) {
	ans, err := c.do(ctx, method, path, body, serial)
	if err != nil {
		// Timeouts, resets, refused connections: the request may have been
		// processed. Never a rejection, even for a query.
		return nil, provider.Outcome{Kind: provider.KindAmbiguous, Code: provider.CodeTransport, Err: err}, false
	}
	verr := c.verifier.Verify(ans.header, ans.body)
	if ans.status >= 200 && ans.status < 300 {
		if verr != nil {
			o := provider.Outcome{Kind: provider.KindAmbiguous, Code: provider.CodeUnverified, HTTPStatus: ans.status,
				RequestID: ans.requestID, Alert: true, Err: verr}
			return nil, o, false
		}
		return ans, provider.Outcome{HTTPStatus: ans.status, RequestID: ans.requestID}, true
	}
	// Only an error answer is read as one: the channel parses a 2xx body.
	var eb errorBody
	perr := json.Unmarshal(ans.body, &eb)
	var o provider.Outcome
	switch {
	case verr != nil:
		o = provider.ClassifyUnverified(ans.status, eb.Code, verr)
	case perr != nil || eb.Code == "":
		o = provider.ClassifyUnverified(ans.status, "", fmt.Errorf("error answer without code: %w", errors.Join(perr)))
		o.Code = provider.CodeUnparseable
	default:
		o = provider.ClassifyError(ch, op, ans.status, eb.Code, eb.Message)
	}
	if o.Kind == provider.KindRetryLater {
		if d := provider.ParseRetryAfter(ans.header.Get("Retry-After")); d > 0 {
			o.RetryAfter = d
		}
	}
	if o.Message == "" {
		o.Message = eb.Message
	}
	o.HTTPStatus, o.RequestID = ans.status, ans.requestID
	return nil, o, false
}
