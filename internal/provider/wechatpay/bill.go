package wechatpay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/provider"
)

// Fund-flow bills (资金账单). Three ways to ask for one day of an account's
// balance movements:
//
//   - GET /v3/bill/fundflowbill?bill_date=&account_type=BASIC|OPERATION|FEES&tar_type=GZIP
//     the merchant's own account (platform withdrawals): one file, hash_value
//     the SHA1 of the decompressed file;
//   - GET /v3/ecommerce/bill/fundflowbill?bill_date=&account_type=ALL&algorithm=AEAD_AES_256_GCM&tar_type=GZIP
//     every sub-merchant of an e-commerce platform: download_bill_list, one
//     entry per part, each encrypted with its own key;
//   - GET /v3/bill/sub-merchant-fundflowbill?sub_mchid=&bill_date=&account_type=&algorithm=&tar_type=GZIP
//     one sub-merchant, same answer shape as the e-commerce one.
//
// The answer naming the file is a signed v3 answer and is verified like any
// other; the download itself (GET download_url, signed like any request) is
// not signed by WeChat Pay, so its body is trusted only once its SHA1 equals
// the hash_value of the verified answer.

// Bill account types and algorithms.
const (
	BillAccountBasic     = "BASIC"
	BillAccountOperation = "OPERATION"
	BillAccountFees      = "FEES"
	BillAccountAll       = "ALL"
	BillAlgorithmAESGCM  = "AEAD_AES_256_GCM"
)

// Bill error codes that mean "not (yet) available": the day's bill is
// generated from 09:00 Beijing the next day. WeChat's spellings are listed
// as unconfirmed in docs/reconciliation.md; both are treated alike.
var billNotReadyCodes = map[string]bool{"NO_STATEMENT_EXIST": true, "STATEMENT_CREATING": true, "BILL_CREATING": true, "NO_BILL_EXIST": true}

// ErrBillNotReady is returned when WeChat Pay has no bill for the day yet.
var ErrBillNotReady = errors.New("wechatpay: bill not ready")

// ErrBillHash is returned when a downloaded file does not match the
// hash_value of the signed answer that named it: the file is refused.
var ErrBillHash = errors.New("wechatpay: bill file does not match its hash_value")

// ErrBillDecrypt is returned when an encrypted part does not decrypt (a
// wrong key, or a body altered in transit): the file is refused.
var ErrBillDecrypt = errors.New("wechatpay: bill file does not decrypt")

// BillPart is one file of a bill (platform bills have one).
type BillPart struct {
	Sequence    int    `json:"bill_sequence"`
	DownloadURL string `json:"download_url"`
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	// EncryptKey is the file's AES key encrypted with the merchant's
	// certificate public key (RSA-OAEP, Base64); empty for plain files.
	EncryptKey string `json:"encrypt_key,omitempty"`
	Nonce      string `json:"nonce,omitempty"`
}

// BillRequest names one bill.
type BillRequest struct {
	// Date is the bill date, YYYY-MM-DD (Beijing).
	Date string
	// AccountType: BASIC, OPERATION or FEES (platform and sub-merchant
	// bills), ALL (e-commerce).
	AccountType string
	// Ecommerce asks for the e-commerce platform's bill of all its
	// sub-merchants (/v3/ecommerce/bill/fundflowbill).
	Ecommerce bool
	// SubMchID asks for one sub-merchant's bill
	// (/v3/bill/sub-merchant-fundflowbill).
	SubMchID string
	// Algorithm encrypts e-commerce and sub-merchant files (default
	// AEAD_AES_256_GCM).
	Algorithm string
}

// Path is the request's path and query.
func (r BillRequest) Path() string {
	q := url.Values{}
	q.Set("bill_date", r.Date)
	q.Set("tar_type", "GZIP")
	alg := r.Algorithm
	if alg == "" {
		alg = BillAlgorithmAESGCM
	}
	switch {
	case r.Ecommerce:
		q.Set("account_type", BillAccountAll)
		q.Set("algorithm", alg)
		return "/v3/ecommerce/bill/fundflowbill?" + q.Encode()
	case r.SubMchID != "":
		q.Set("sub_mchid", r.SubMchID)
		q.Set("account_type", orDefault(r.AccountType, BillAccountBasic))
		q.Set("algorithm", alg)
		return "/v3/bill/sub-merchant-fundflowbill?" + q.Encode()
	default:
		q.Set("account_type", orDefault(r.AccountType, BillAccountBasic))
		return "/v3/bill/fundflowbill?" + q.Encode()
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// BillError is a bill request answered with an error.
type BillError struct {
	HTTPStatus int
	Code       string
	Message    string
}

func (e *BillError) Error() string {
	return fmt.Sprintf("wechatpay bill: %d %s: %s", e.HTTPStatus, e.Code, e.Message)
}

// FundFlowBill asks for a bill and returns its parts in sequence order. A
// bill not generated yet is ErrBillNotReady (wrapping the BillError); an
// answer whose signature does not verify is an error, never used.
func (c *Client) FundFlowBill(ctx context.Context, r BillRequest) ([]BillPart, error) {
	path := r.Path()
	ans, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	if verr := c.verifier.Verify(ans.header, ans.body); verr != nil {
		return nil, fmt.Errorf("wechatpay bill: answer %d not verified: %w", ans.status, verr)
	}
	if ans.status < 200 || ans.status >= 300 {
		var eb errorBody
		_ = json.Unmarshal(ans.body, &eb)
		be := &BillError{HTTPStatus: ans.status, Code: eb.Code, Message: eb.Message}
		if billNotReadyCodes[eb.Code] {
			return nil, fmt.Errorf("%w: %w", ErrBillNotReady, be)
		}
		return nil, be
	}
	var parts []BillPart
	if r.Ecommerce || r.SubMchID != "" {
		var b struct {
			Count int        `json:"download_bill_count"`
			List  []BillPart `json:"download_bill_list"`
		}
		if err := json.Unmarshal(ans.body, &b); err != nil {
			return nil, fmt.Errorf("wechatpay bill: answer: %w", err)
		}
		if b.Count != len(b.List) {
			return nil, fmt.Errorf("wechatpay bill: download_bill_count %d but %d entries", b.Count, len(b.List))
		}
		parts = b.List
		for i := 1; i < len(parts); i++ { // sort by sequence (few parts)
			for j := i; j > 0 && parts[j].Sequence < parts[j-1].Sequence; j-- {
				parts[j], parts[j-1] = parts[j-1], parts[j]
			}
		}
		for i, p := range parts {
			if p.Sequence != i+1 {
				return nil, fmt.Errorf("wechatpay bill: bill_sequence %d where %d was expected", p.Sequence, i+1)
			}
			if p.EncryptKey == "" || p.Nonce == "" {
				return nil, fmt.Errorf("wechatpay bill: part %d has no encrypt_key or nonce", p.Sequence)
			}
		}
	} else {
		var p BillPart
		if err := json.Unmarshal(ans.body, &p); err != nil {
			return nil, fmt.Errorf("wechatpay bill: answer: %w", err)
		}
		p.Sequence = 1
		parts = []BillPart{p}
	}
	for _, p := range parts {
		if !strings.EqualFold(p.HashType, "SHA1") {
			return nil, fmt.Errorf("wechatpay bill: hash_type %q (only SHA1 is known)", p.HashType)
		}
		if p.DownloadURL == "" || p.HashValue == "" {
			return nil, errors.New("wechatpay bill: answer without download_url or hash_value")
		}
	}
	return parts, nil
}

// DefaultBillDownloadTimeout bounds one file download: bills are large, the
// account's per-call timeout is for small answers.
const DefaultBillDownloadTimeout = 10 * time.Minute

// DownloadBill fetches one part into a file in dir and returns the path of
// the plain (decompressed, decrypted) file after checking it against the
// part's hash_value; on any error nothing is left behind. The download goes
// only to the host of the account's base_url: a signed request is never sent
// elsewhere, whatever the answer said.
//
// Gzip is recognised by its magic bytes before and after decryption, so the
// order of compression and encryption of encrypted parts (unconfirmed) does
// not matter. An encrypted part is decrypted in memory: AES-GCM
// authenticates at the end, and the standard library has no streaming Open.
func (c *Client) DownloadBill(ctx context.Context, p BillPart, dir string) (string, error) {
	u, err := url.Parse(p.DownloadURL)
	if err != nil {
		return "", fmt.Errorf("wechatpay bill: download_url: %w", err)
	}
	base, err := url.Parse(c.base)
	if err != nil {
		return "", err
	}
	if u.Scheme != base.Scheme || u.Host != base.Host {
		return "", fmt.Errorf("wechatpay bill: download_url host %q is not the account's base_url host %q: refused", u.Host, base.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultBillDownloadTimeout)
	defer cancel()
	pathAndQuery := u.RequestURI()
	auth, err := c.creds.Signer.Authorization(http.MethodGet, pathAndQuery, c.now().Unix(), NewNonce(), nil)
	if err != nil {
		return "", fmt.Errorf("sign request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+pathAndQuery, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("User-Agent", UserAgent)
	resp, err := RoundTrip(c.http, req)
	if err != nil {
		return "", fmt.Errorf("wechatpay bill: download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var eb errorBody
		_ = json.Unmarshal(b, &eb)
		return "", &BillError{HTTPStatus: resp.StatusCode, Code: eb.Code, Message: eb.Message}
	}

	raw, err := os.CreateTemp(dir, "bill-raw-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(raw.Name())
	defer raw.Close()
	if _, err := io.Copy(raw, resp.Body); err != nil {
		return "", fmt.Errorf("wechatpay bill: download: %w", err)
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return "", err
	}

	var src io.Reader = bufio.NewReaderSize(raw, 64<<10)
	src, err = maybeGunzip(src)
	if err != nil {
		return "", err
	}
	if p.EncryptKey != "" {
		pt, err := c.decryptBill(src, p)
		if err != nil {
			return "", err
		}
		src, err = maybeGunzip(bufio.NewReader(bytes.NewReader(pt)))
		if err != nil {
			return "", err
		}
	}
	out, err := os.CreateTemp(dir, "bill-*.csv")
	if err != nil {
		return "", err
	}
	h := sha1.New()
	_, err = io.Copy(io.MultiWriter(out, h), src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("wechatpay bill: decode: %w", err)
	}
	want, herr := hex.DecodeString(strings.TrimSpace(p.HashValue))
	if got := h.Sum(nil); herr != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		os.Remove(out.Name())
		return "", fmt.Errorf("%w (part %d: got %x)", ErrBillHash, p.Sequence, got)
	}
	return out.Name(), nil
}

// maybeGunzip returns a gzip reader when r starts with the gzip magic.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	head, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("wechatpay bill: gzip: %w", err)
		}
		return bufio.NewReaderSize(zr, 64<<10), nil
	}
	return br, nil
}

// decryptBill opens an encrypted part: the AES key is encrypt_key
// decrypted with the merchant private key (RSA-OAEP), the GCM nonce the
// answer's nonce, no associated data; the tag ends the ciphertext.
func (c *Client) decryptBill(r io.Reader, p BillPart) ([]byte, error) {
	key, err := DecryptBillKey(c.creds.Signer.Key, p.EncryptKey)
	if err != nil {
		return nil, err
	}
	ct, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("wechatpay bill: read: %w", err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(p.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("wechatpay bill: nonce of %d bytes, want %d", len(p.Nonce), aead.NonceSize())
	}
	pt, err := aead.Open(ct[:0], []byte(p.Nonce), ct, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: part %d: %w", ErrBillDecrypt, p.Sequence, err)
	}
	return pt, nil
}

// DecryptBillKey decrypts a part's encrypt_key with the merchant key.
func DecryptBillKey(key *rsa.PrivateKey, encryptKey string) ([]byte, error) {
	s, err := DecryptOAEP(key, encryptKey)
	if err != nil {
		return nil, fmt.Errorf("wechatpay bill: encrypt_key: %w", err)
	}
	k := []byte(s)
	if len(k) != APIv3KeySize {
		// Some documents show the key Base64-encoded: accept that too.
		if d, derr := base64.StdEncoding.DecodeString(s); derr == nil && len(d) == APIv3KeySize {
			k = d
		} else {
			return nil, fmt.Errorf("wechatpay bill: encrypt_key holds %d bytes, want %d", len(k), APIv3KeySize)
		}
	}
	return k, nil
}

// Account is the configured account the client serves (the reconciliation
// reads its recon settings).
func (c *Client) Account() provider.Account { return c.acct }
