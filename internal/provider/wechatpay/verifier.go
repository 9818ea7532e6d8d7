package wechatpay

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Answer and callback headers.
const (
	HeaderTimestamp = "Wechatpay-Timestamp"
	HeaderNonce     = "Wechatpay-Nonce"
	HeaderSignature = "Wechatpay-Signature"
	HeaderSerial    = "Wechatpay-Serial"
	HeaderRequestID = "Request-ID"
)

// MaxClockSkew is how far an answer's timestamp may be from our clock.
const MaxClockSkew = 5 * time.Minute

// ErrUnknownSerial is returned for an answer signed by a key we do not hold.
var ErrUnknownSerial = errors.New("wechatpay: unknown Wechatpay-Serial")

// KeyStore holds the WeChat Pay keys an account trusts: platform
// certificates by serial AND public keys by PUB_KEY_ID at the same time, so
// that a merchant migrating from certificates to the public key verifies
// answers signed either way. It is safe for concurrent use.
type KeyStore struct {
	mu    sync.RWMutex
	keys  map[string]*rsa.PublicKey
	certs map[string]*x509.Certificate
	// encSerial is the serial/id used to encrypt sensitive fields.
	encSerial string
}

// NewKeyStore returns an empty store.
func NewKeyStore() *KeyStore {
	return &KeyStore{keys: make(map[string]*rsa.PublicKey), certs: make(map[string]*x509.Certificate)}
}

// AddCertificate trusts a platform certificate under its serial.
func (s *KeyStore) AddCertificate(cert *x509.Certificate) string {
	serial := SerialHex(cert)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[serial] = cert.PublicKey.(*rsa.PublicKey)
	s.certs[serial] = cert
	return serial
}

// AddPublicKey trusts a WeChat Pay public key under its id (PUB_KEY_ID_…).
func (s *KeyStore) AddPublicKey(id string, key *rsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = key
}

// Key returns the key trusted under a serial or public key id.
func (s *KeyStore) Key(serial string) (*rsa.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[serial]
	return k, ok
}

// SetEncryptionKey chooses the serial or id whose key encrypts sensitive
// fields; it must be in the store.
func (s *KeyStore) SetEncryptionKey(serial string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[serial]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownSerial, serial)
	}
	s.encSerial = serial
	return nil
}

// EncryptionKey returns the key for sensitive fields and the serial or id to
// send as Wechatpay-Serial. Without an explicit choice it prefers a public
// key id, else the certificate that expires last.
func (s *KeyStore) EncryptionKey() (string, *rsa.PublicKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.encSerial != "" {
		return s.encSerial, s.keys[s.encSerial], nil
	}
	for serial, key := range s.keys {
		if strings.HasPrefix(serial, PublicKeyIDPrefix) {
			return serial, key, nil
		}
	}
	best := s.latestCertificate()
	if best == "" {
		return "", nil, errors.New("wechatpay: no platform certificate or public key to encrypt with")
	}
	return best, s.keys[best], nil
}

// UseCertificate makes the platform certificate that expires last the
// encryption key, whatever public key is also trusted: the account's
// encrypt_with: certificate. Callers hold no lock.
func (s *KeyStore) UseCertificate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := s.latestCertificate()
	if best == "" {
		return errors.New("wechatpay: encrypt_with certificate, but no platform certificate is configured")
	}
	s.encSerial = best
	return nil
}

// latestCertificate is the serial of the certificate that expires last, ""
// when there is none. Callers hold s.mu.
func (s *KeyStore) latestCertificate() string {
	best := ""
	for serial, cert := range s.certs {
		if best == "" || cert.NotAfter.After(s.certs[best].NotAfter) {
			best = serial
		}
	}
	return best
}

// Verifier checks the signature of answers and callbacks.
type Verifier struct {
	Keys *KeyStore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks the Wechatpay-* headers against body: a known serial, a
// timestamp within MaxClockSkew and a valid signature.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	serial := h.Get(HeaderSerial)
	ts := h.Get(HeaderTimestamp)
	nonce := h.Get(HeaderNonce)
	sig := h.Get(HeaderSignature)
	if serial == "" || ts == "" || nonce == "" || sig == "" {
		return errors.New("wechatpay: answer is not signed (missing Wechatpay-* headers)")
	}
	key, ok := v.Keys.Key(serial)
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownSerial, serial)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("wechatpay: bad Wechatpay-Timestamp %q", ts)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if skew := now().Sub(time.Unix(sec, 0)); skew > MaxClockSkew || skew < -MaxClockSkew {
		return fmt.Errorf("wechatpay: answer timestamp is %s off our clock", skew.Round(time.Second))
	}
	if err := VerifySHA256(key, ResponseMessage(ts, nonce, body), sig); err != nil {
		return fmt.Errorf("wechatpay: answer %w", err)
	}
	return nil
}
