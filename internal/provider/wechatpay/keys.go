// Package wechatpay is a WeChat Pay API v3 client on the standard library:
// request signing (WECHATPAY2-SHA256-RSA2048), answer verification against
// platform certificates and WeChat Pay public keys, RSA-OAEP encryption of
// sensitive fields, callback decryption, and the three withdraw channels as
// provider.Provider implementations.
package wechatpay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePrivateKey parses a PEM RSA private key (PKCS#8, as WeChat issues
// apiclient_key.pem, or PKCS#1).
func ParsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("private key: no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("private key: %T is not RSA", k)
		}
		return rk, nil
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: neither PKCS#8 nor PKCS#1: %w", err)
	}
	return k, nil
}

// ParsePublicKey parses a PEM RSA public key (PKIX "PUBLIC KEY", as WeChat
// Pay serves pub_key.pem, or PKCS#1 "RSA PUBLIC KEY").
func ParsePublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("public key: no PEM block")
	}
	if k, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key: %T is not RSA", k)
		}
		return rk, nil
	}
	k, err := x509.ParsePKCS1PublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: neither PKIX nor PKCS#1: %w", err)
	}
	return k, nil
}

// ParseCertificate parses a PEM certificate and returns it with its serial
// as WeChat writes it (upper-case hex).
func ParseCertificate(pemBytes []byte) (*x509.Certificate, string, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, "", errors.New("certificate: no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("certificate: %w", err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, "", fmt.Errorf("certificate: %T key is not RSA", cert.PublicKey)
	}
	return cert, SerialHex(cert), nil
}

// SerialHex is a certificate's serial number in WeChat's notation.
func SerialHex(cert *x509.Certificate) string {
	return strings.ToUpper(cert.SerialNumber.Text(16))
}

// PublicKeyIDPrefix starts the id of every WeChat Pay public key.
const PublicKeyIDPrefix = "PUB_KEY_ID_"
