package wechatpay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Callback constants for withdrawals.
const (
	EventWithdrawChange  = "MCHWITHDRAW.CHANGE"
	ResourceEncrypt      = "encrypt-resource"
	AlgorithmAESGCM      = "AEAD_AES_256_GCM"
	OriginalTypeWithdraw = "mch_withdraw"
)

// APIv3KeySize is the length of the APIv3 key in bytes.
const APIv3KeySize = 32

// Notification is the envelope of a WeChat Pay callback.
type Notification struct {
	ID           string   `json:"id"`
	CreateTime   string   `json:"create_time"`
	EventType    string   `json:"event_type"`
	ResourceType string   `json:"resource_type"`
	Summary      string   `json:"summary"`
	Resource     Resource `json:"resource"`
}

// Resource is the encrypted payload of a callback.
type Resource struct {
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
	OriginalType   string `json:"original_type"`
}

// WithdrawNotice is the decrypted resource of MCHWITHDRAW.CHANGE: the same
// fields as the withdraw query answer.
type WithdrawNotice struct {
	SpMchID      string `json:"sp_mchid,omitempty"`
	SubMchID     string `json:"sub_mchid,omitempty"`
	MchID        string `json:"mchid,omitempty"`
	Status       string `json:"status"`
	WithdrawID   string `json:"withdraw_id"`
	OutRequestNo string `json:"out_request_no"`
	Amount       int64  `json:"amount"`
	CreateTime   string `json:"create_time,omitempty"`
	UpdateTime   string `json:"update_time,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Remark       string `json:"remark,omitempty"`
	BankMemo     string `json:"bank_memo,omitempty"`
	AccountType  string `json:"account_type,omitempty"`
	Solution     string `json:"solution,omitempty"`
}

// DecryptResource decrypts a callback resource with the APIv3 key
// (AES-256-GCM; the ciphertext carries the 16-byte tag at its end).
func DecryptResource(apiv3Key []byte, r Resource) ([]byte, error) {
	if r.Algorithm != AlgorithmAESGCM {
		return nil, fmt.Errorf("callback: unsupported algorithm %q", r.Algorithm)
	}
	aead, err := newGCM(apiv3Key)
	if err != nil {
		return nil, err
	}
	if len(r.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("callback: nonce of %d bytes, want %d", len(r.Nonce), aead.NonceSize())
	}
	ct, err := base64.StdEncoding.DecodeString(r.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("callback: ciphertext is not base64: %w", err)
	}
	pt, err := aead.Open(nil, []byte(r.Nonce), ct, []byte(r.AssociatedData))
	if err != nil {
		return nil, fmt.Errorf("callback: decrypt: %w", err)
	}
	return pt, nil
}

// EncryptResource is the inverse of DecryptResource, as WeChat Pay does it:
// a random 12-character nonce (the nonce is text in the envelope).
func EncryptResource(apiv3Key, plaintext []byte, associatedData, originalType string) (Resource, error) {
	aead, err := newGCM(apiv3Key)
	if err != nil {
		return Resource{}, err
	}
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	for i := range nonce {
		nonce[i] = letters[int(nonce[i])%len(letters)]
	}
	ct := aead.Seal(nil, nonce, plaintext, []byte(associatedData))
	return Resource{
		Algorithm:      AlgorithmAESGCM,
		Ciphertext:     base64.StdEncoding.EncodeToString(ct),
		AssociatedData: associatedData,
		Nonce:          string(nonce),
		OriginalType:   originalType,
	}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != APIv3KeySize {
		return nil, fmt.Errorf("callback: APIv3 key must be %d bytes, got %d", APIv3KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("callback: %w", err)
	}
	return cipher.NewGCM(block)
}

// ParseNotification verifies a callback's signature, then decrypts its
// resource. It returns the envelope and the plaintext resource. The
// plaintext must not be logged: it is order data.
func ParseNotification(v *Verifier, apiv3Key []byte, h http.Header, body []byte) (*Notification, []byte, error) {
	if err := v.Verify(h, body); err != nil {
		return nil, nil, fmt.Errorf("callback: %w", err)
	}
	var n Notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, nil, fmt.Errorf("callback: envelope: %w", err)
	}
	if n.Resource.Ciphertext == "" {
		return nil, nil, errors.New("callback: no resource")
	}
	pt, err := DecryptResource(apiv3Key, n.Resource)
	if err != nil {
		return nil, nil, err
	}
	return &n, pt, nil
}

// ParseWithdrawNotice parses and decrypts a MCHWITHDRAW.CHANGE callback.
func ParseWithdrawNotice(v *Verifier, apiv3Key []byte, h http.Header, body []byte) (*Notification, *WithdrawNotice, error) {
	n, pt, err := ParseNotification(v, apiv3Key, h, body)
	if err != nil {
		return nil, nil, err
	}
	if n.EventType != EventWithdrawChange {
		return n, nil, fmt.Errorf("callback: event %q is not %s", n.EventType, EventWithdrawChange)
	}
	var w WithdrawNotice
	if err := json.Unmarshal(pt, &w); err != nil {
		return n, nil, fmt.Errorf("callback: resource: %w", err)
	}
	return n, &w, nil
}
