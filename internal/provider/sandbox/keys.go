package sandbox

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
)

// Keys are the provider-side keys of the sandbox. Platform-certificate and
// public-key modes use different key pairs, as at WeChat Pay.
type Keys struct {
	// CertKey signs in certificate mode; Cert is its self-signed
	// certificate, CertSerial the serial clients see.
	CertKey    *rsa.PrivateKey
	Cert       *x509.Certificate
	CertSerial string
	// PubKey signs in public-key mode under PubKeyID.
	PubKey   *rsa.PrivateKey
	PubKeyID string
	// AllinpayKey signs Allinpay answers.
	AllinpayKey *rsa.PrivateKey
}

// GenerateKeys creates fresh RSA-2048 keys and a self-signed certificate.
// Key generation uses crypto/rand: Options.Seed only drives lifecycles.
func GenerateKeys() (*Keys, error) {
	var ks [3]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("sandbox: generate key: %w", err)
		}
		ks[i] = k
	}
	return newKeys(ks[0], ks[1], ks[2], "PUB_KEY_ID_0110000000000000000000000000SANDBOX")
}

func newKeys(certKey, pubKey, allinpayKey *rsa.PrivateKey, pubKeyID string) (*Keys, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("sandbox: serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // never zero
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Tenpay.com Root CA (sandbox)", Organization: []string{"paycore sandbox"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &certKey.PublicKey, certKey)
	if err != nil {
		return nil, fmt.Errorf("sandbox: certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sandbox: certificate: %w", err)
	}
	return &Keys{CertKey: certKey, Cert: cert, CertSerial: wechatpay.SerialHex(cert), PubKey: pubKey, PubKeyID: pubKeyID, AllinpayKey: allinpayKey}, nil
}

// Key file names inside a key directory.
const (
	FileCertKey     = "platform_cert_key.pem"
	FileCert        = "platform_cert.pem"
	FilePubKey      = "pub_key_private.pem"
	FilePubKeyID    = "pub_key_id"
	FileAllinpayKey = "allinpay_key.pem"
)

// LoadKeys reads keys written by WriteKeys from dir.
func LoadKeys(dir string) (*Keys, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("sandbox keys: %w", err)
		}
		return b, nil
	}
	priv := func(name string) (*rsa.PrivateKey, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		k, err := wechatpay.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("sandbox keys: %s: %w", name, err)
		}
		return k, nil
	}
	k := &Keys{}
	var err error
	if k.CertKey, err = priv(FileCertKey); err != nil {
		return nil, err
	}
	if k.PubKey, err = priv(FilePubKey); err != nil {
		return nil, err
	}
	if k.AllinpayKey, err = priv(FileAllinpayKey); err != nil {
		return nil, err
	}
	b, err := read(FileCert)
	if err != nil {
		return nil, err
	}
	if k.Cert, k.CertSerial, err = wechatpay.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("sandbox keys: %s: %w", FileCert, err)
	}
	id, err := read(FilePubKeyID)
	if err != nil {
		return nil, err
	}
	k.PubKeyID = string(trimSpace(id))
	return k, nil
}

// WriteKeys writes the keys to dir (mode 0600), for LoadKeys.
func (k *Keys) WriteKeys(dir string) error {
	files := map[string][]byte{
		FileCertKey:     PrivatePEM(k.CertKey),
		FilePubKey:      PrivatePEM(k.PubKey),
		FileAllinpayKey: PrivatePEM(k.AllinpayKey),
		FileCert:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw}),
		FilePubKeyID:    []byte(k.PubKeyID + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fmt.Errorf("sandbox keys: %w", err)
		}
	}
	return nil
}

// PrivatePEM encodes a private key as PKCS#8 PEM.
func PrivatePEM(k *rsa.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(k) // cannot fail for an RSA key
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// PublicPEM encodes a public key as PKIX PEM.
func PublicPEM(k *rsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(k) // cannot fail for an RSA key
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PublicKeys is the JSON of GET /_sandbox/keys: what clients must trust.
type PublicKeys struct {
	PlatformCertPEM    string `json:"platform_cert_pem"`
	PlatformCertSerial string `json:"platform_cert_serial"`
	PublicKeyPEM       string `json:"public_key_pem"`
	PublicKeyID        string `json:"public_key_id"`
	AllinpayPublicPEM  string `json:"allinpay_public_key_pem"`
	SignMode           string `json:"sign_mode"`
}

func (k *Keys) public(mode string) PublicKeys {
	return PublicKeys{
		PlatformCertPEM:    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw})),
		PlatformCertSerial: k.CertSerial,
		PublicKeyPEM:       string(PublicPEM(&k.PubKey.PublicKey)),
		PublicKeyID:        k.PubKeyID,
		AllinpayPublicPEM:  string(PublicPEM(&k.AllinpayKey.PublicKey)),
		SignMode:           mode,
	}
}

// decryptionKey returns the private key of a serial or public key id.
func (k *Keys) decryptionKey(serial string) (*rsa.PrivateKey, bool) {
	switch serial {
	case k.CertSerial:
		return k.CertKey, true
	case k.PubKeyID:
		return k.PubKey, true
	}
	return nil, false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
