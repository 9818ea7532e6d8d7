package wechatpay

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
)

// EncryptOAEP encrypts a sensitive field for WeChat Pay: RSA-OAEP with
// SHA-1 (WeChat's choice, not ours: SHA-1 here is the OAEP mask hash, which
// is still secure) and Base64. The result is randomized.
func EncryptOAEP(pub *rsa.PublicKey, plaintext string) (string, error) {
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, []byte(plaintext), nil)
	if err != nil {
		return "", fmt.Errorf("oaep encrypt: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// DecryptOAEP reverses EncryptOAEP (the sandbox uses it as WeChat Pay).
func DecryptOAEP(key *rsa.PrivateKey, b64 string) (string, error) {
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("oaep decrypt: not base64: %w", err)
	}
	pt, err := rsa.DecryptOAEP(sha1.New(), nil, key, ct, nil)
	if err != nil {
		return "", fmt.Errorf("oaep decrypt: %w", err)
	}
	return string(pt), nil
}
