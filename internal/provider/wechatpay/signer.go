package wechatpay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
)

// AuthScheme is the Authorization scheme of API v3.
const AuthScheme = "WECHATPAY2-SHA256-RSA2048"

// Signer signs requests with the merchant API private key.
type Signer struct {
	MchID  string
	Serial string // merchant API certificate serial
	Key    *rsa.PrivateKey
}

// RequestMessage is the string a request signature covers:
// METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE\nBODY\n.
func RequestMessage(method, pathAndQuery string, timestamp int64, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(pathAndQuery)+len(nonce)+len(body)+24)
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, pathAndQuery...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, timestamp, 10)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, body...)
	return append(b, '\n')
}

// ResponseMessage is the string an answer or callback signature covers:
// TIMESTAMP\nNONCE\nBODY\n.
func ResponseMessage(timestamp, nonce string, body []byte) []byte {
	b := make([]byte, 0, len(timestamp)+len(nonce)+len(body)+3)
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, body...)
	return append(b, '\n')
}

// SignSHA256 is SHA256withRSA (PKCS#1 v1.5) of msg, Base64. PKCS#1 v1.5 is
// deterministic, so the result equals `openssl dgst -sha256 -sign`.
func SignSHA256(key *rsa.PrivateKey, msg []byte) (string, error) {
	sum := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("rsa sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// VerifySHA256 checks a Base64 SHA256withRSA signature of msg.
func VerifySHA256(pub *rsa.PublicKey, msg []byte, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	sum := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("signature mismatch: %w", err)
	}
	return nil
}

// Authorization returns the Authorization header value for one request.
func (s *Signer) Authorization(method, pathAndQuery string, timestamp int64, nonce string, body []byte) (string, error) {
	sig, err := SignSHA256(s.Key, RequestMessage(method, pathAndQuery, timestamp, nonce, body))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`%s mchid="%s",nonce_str="%s",timestamp="%d",serial_no="%s",signature="%s"`,
		AuthScheme, s.MchID, nonce, timestamp, s.Serial, sig), nil
}

// NewNonce returns a random 32-character nonce.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
