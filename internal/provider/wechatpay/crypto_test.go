package wechatpay

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/withdrawal"
)

var (
	keyOnce sync.Once
	keys    [2]*rsa.PrivateKey
)

// testKeys returns two RSA-2048 keys generated once per test binary.
func testKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
	})
	return keys[0], keys[1]
}

func selfSigned(t *testing.T, key *rsa.PrivateKey, serial int64) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test platform"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestSignerMatchesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found on PATH: cannot cross-check the signer")
	}
	key, _ := testKeys(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"out_request_no":"20190611222222222200000000012122","amount":1,"remark":"交易提现"}`)
	msg := RequestMessage("POST", "/v3/merchant/fund/withdraw", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", body)
	msgFile := filepath.Join(dir, "msg")
	if err := os.WriteFile(msgFile, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "dgst", "-sha256", "-sign", keyFile, msgFile).Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	got, err := SignSHA256(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := base64Std(out)
	if got != want {
		t.Fatalf("signature differs from openssl:\n got %s\nwant %s", got, want)
	}

	s := &Signer{MchID: "1900000001", Serial: "ABC123", Key: key}
	auth, err := s.Authorization("POST", "/v3/merchant/fund/withdraw", 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", body)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAuthorization(auth)
	if err != nil {
		t.Fatal(err)
	}
	if a.Signature != want || a.MchID != "1900000001" || a.Serial != "ABC123" || a.Timestamp != "1554208460" {
		t.Fatalf("authorization header round trip: %+v", a)
	}
}

func TestRequestMessageFormat(t *testing.T) {
	got := string(RequestMessage("GET", "/v3/x?a=1", 7, "n", nil))
	if got != "GET\n/v3/x?a=1\n7\nn\n\n" {
		t.Fatalf("%q", got)
	}
}

func signedHeader(t *testing.T, key *rsa.PrivateKey, serial string, ts time.Time, body []byte) http.Header {
	t.Helper()
	h := http.Header{}
	tsStr := strconv.FormatInt(ts.Unix(), 10)
	sig, err := SignSHA256(key, ResponseMessage(tsStr, "nonce1", body))
	if err != nil {
		t.Fatal(err)
	}
	h.Set(HeaderSerial, serial)
	h.Set(HeaderTimestamp, tsStr)
	h.Set(HeaderNonce, "nonce1")
	h.Set(HeaderSignature, sig)
	return h
}

func TestVerifierCertificateAndPublicKeyAtOnce(t *testing.T) {
	certKey, pubKey := testKeys(t)
	cert := selfSigned(t, certKey, 0x5157F09EFDC096DE)
	store := NewKeyStore()
	serial := store.AddCertificate(cert)
	if serial != "5157F09EFDC096DE" {
		t.Fatalf("serial %s", serial)
	}
	store.AddPublicKey("PUB_KEY_ID_0114232134912410000000000000", &pubKey.PublicKey)
	now := time.Unix(1_700_000_000, 0)
	v := &Verifier{Keys: store, Now: func() time.Time { return now }}
	body := []byte(`{"withdraw_id":"1","out_request_no":"2"}`)

	if err := v.Verify(signedHeader(t, certKey, serial, now, body), body); err != nil {
		t.Fatalf("certificate mode: %v", err)
	}
	if err := v.Verify(signedHeader(t, pubKey, "PUB_KEY_ID_0114232134912410000000000000", now, body), body); err != nil {
		t.Fatalf("public key mode: %v", err)
	}
	cases := map[string]struct {
		h    http.Header
		body []byte
	}{
		"tampered body":     {signedHeader(t, certKey, serial, now, body), []byte(`{"withdraw_id":"1","out_request_no":"3"}`)},
		"wrong serial":      {signedHeader(t, certKey, "0000", now, body), body},
		"key of other id":   {signedHeader(t, pubKey, serial, now, body), body},
		"timestamp too old": {signedHeader(t, certKey, serial, now.Add(-5*time.Minute-time.Second), body), body},
		"timestamp too new": {signedHeader(t, certKey, serial, now.Add(5*time.Minute+time.Second), body), body},
		"no signature":      {http.Header{}, body},
	}
	for name, c := range cases {
		if err := v.Verify(c.h, c.body); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := v.Verify(signedHeader(t, certKey, "0000", now, body), body); !errors.Is(err, ErrUnknownSerial) {
		t.Errorf("wrong serial: %v, want ErrUnknownSerial", err)
	}
	if err := v.Verify(signedHeader(t, certKey, serial, now.Add(-4*time.Minute), body), body); err != nil {
		t.Errorf("4 minutes skew must pass: %v", err)
	}
}

func TestOAEPRoundTrip(t *testing.T) {
	key, _ := testKeys(t)
	a, err := EncryptOAEP(&key.PublicKey, "6222 0000 1111 2222")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := EncryptOAEP(&key.PublicKey, "6222 0000 1111 2222")
	if a == b {
		t.Fatal("OAEP must be randomized")
	}
	pt, err := DecryptOAEP(key, a)
	if err != nil || pt != "6222 0000 1111 2222" {
		t.Fatalf("round trip: %q %v", pt, err)
	}
	// SHA-1 OAEP as openssl does it, when available.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		dir := t.TempDir()
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		kf := filepath.Join(dir, "k.pem")
		_ = os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		ct, _ := base64StdDecode(a)
		cf := filepath.Join(dir, "ct")
		_ = os.WriteFile(cf, ct, 0o600)
		out, err := exec.Command(openssl, "pkeyutl", "-decrypt", "-inkey", kf, "-in", cf,
			"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1").Output()
		if err != nil || string(out) != "6222 0000 1111 2222" {
			t.Fatalf("openssl OAEP-SHA1 decrypt: %q %v", out, err)
		}
	}
}

func TestGCMRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte("k"), 32)
	r, err := EncryptResource(key, []byte(`{"status":"SUCCESS"}`), "mch_withdraw", OriginalTypeWithdraw)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nonce) != 12 || strings.ContainsAny(r.Nonce, "+/=") {
		t.Fatalf("nonce %q", r.Nonce)
	}
	pt, err := DecryptResource(key, r)
	if err != nil || string(pt) != `{"status":"SUCCESS"}` {
		t.Fatalf("round trip: %s %v", pt, err)
	}
	r.AssociatedData = "other"
	if _, err := DecryptResource(key, r); err == nil {
		t.Fatal("changed associated data must fail")
	}
	if _, err := DecryptResource(key[:16], r); err == nil {
		t.Fatal("short key must fail")
	}
}

// TestCancelStatesOverride: the cancel application's unconfirmed states
// follow the account's cancel_states; other channels keep the table.
func TestCancelStatesOverride(t *testing.T) {
	merchant, _ := testKeys(t)
	creds := &Credentials{Signer: &Signer{MchID: "1", Serial: "S", Key: merchant}, Keys: NewKeyStore()}
	acct := provider.Account{Name: "a", BaseURL: "https://example.invalid",
		CancelStates: map[string]withdrawal.State{"PAY_FAIL": withdrawal.StateSubmitted, "NEW_STATE": withdrawal.StateSucceeded}}
	c, err := New(acct, creds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel, _ := c.Provider(withdrawal.ChannelWeChatCancel)
	for status, want := range map[string]withdrawal.State{"PAY_FAIL": withdrawal.StateSubmitted, "NEW_STATE": withdrawal.StateSucceeded,
		"SUBMITTED": withdrawal.StateSubmitted, "BANK_REFUNDED": withdrawal.StateReversed} {
		if m, ok := cancel.mapStatus(status); !ok || m.State != want {
			t.Errorf("cancel %s: %+v %v, want %s", status, m, ok, want)
		}
	}
	platform, _ := c.Provider(withdrawal.ChannelWeChatPlatform)
	if _, ok := platform.mapStatus("NEW_STATE"); ok {
		t.Error("an override of the cancel channel leaked into the platform channel")
	}
	if m, _ := provider.MapStatus(withdrawal.ChannelWeChatCancel, "PAY_FAIL"); m.State != withdrawal.StateFailed {
		t.Error("an account's override changed the shared table")
	}
}
