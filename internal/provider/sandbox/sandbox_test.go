package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseFaultFlag(t *testing.T) {
	e, f, err := ParseFaultFlag("platform.submit:latency=50ms,429=0.1,5xx=0.2,timeout_after_commit=0.3,bad_signature=0.05,NOT_ENOUGH=0.5")
	if err != nil {
		t.Fatal(err)
	}
	if e != EndpointPlatformSubmit || f.Latency != 50*time.Millisecond || f.Rate429 != 0.1 || f.Rate5xx != 0.2 ||
		f.TimeoutAfterCommit != 0.3 || f.BadSignature != 0.05 || f.Errors["NOT_ENOUGH"] != 0.5 {
		t.Fatalf("%s %+v", e, f)
	}
	for _, bad := range []string{"nowhere:429=1", "platform.submit", "platform.submit:429=2", "platform.submit:latency=x"} {
		if _, _, err := ParseFaultFlag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFaultDecisionsAreSeeded(t *testing.T) {
	run := func() []decision {
		f := newFaults(42, map[string]Fault{"*": {Errors: map[string]float64{"SYSTEM_ERROR": 0.3, "NOT_ENOUGH": 0.3}, Rate429: 0.2}})
		var out []decision
		for range 50 {
			out = append(out, f.decide(EndpointPlatformSubmit))
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("decision %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
}

func TestAdminAPI(t *testing.T) {
	s, err := New(Options{Keys: testKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	body := `{"cancel.submit": {"latency": "20ms", "errors": {"SYSTEM_ERROR": 0.5}}}`
	resp, err := http.Post(hs.URL+"/_sandbox/faults", "application/json", bytes.NewBufferString(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	var got map[string]Fault
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got[EndpointCancelSubmit].Latency != 20*time.Millisecond || got[EndpointCancelSubmit].Errors["SYSTEM_ERROR"] != 0.5 {
		t.Fatalf("%+v", got)
	}
	resp, _ = http.Post(hs.URL+"/_sandbox/faults", "application/json", bytes.NewBufferString(`{"nowhere": {}}`))
	if resp.StatusCode != 400 {
		t.Fatalf("unknown endpoint: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = http.Get(hs.URL + "/_sandbox/keys")
	var pk PublicKeys
	_ = json.NewDecoder(resp.Body).Decode(&pk)
	resp.Body.Close()
	if pk.PublicKeyID == "" || pk.PlatformCertSerial == "" || pk.AllinpayPublicPEM == "" {
		t.Fatalf("%+v", pk)
	}
	reg := MerchantRegistration{Kind: "wechatpay", MchID: "1", Serial: "S", PublicKeyPEM: pk.PublicKeyPEM, APIv3Key: "0123456789abcdef0123456789abcdef"}
	b, _ := json.Marshal(reg)
	resp, _ = http.Post(hs.URL+"/_sandbox/merchants", "application/json", bytes.NewReader(b))
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if _, ok := s.merchant("1"); !ok {
		t.Fatal("merchant not registered")
	}
}

func TestKeysRoundTrip(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	if err := k.WriteKeys(dir); err != nil {
		t.Fatal(err)
	}
	l, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.CertSerial != k.CertSerial || l.PubKeyID != k.PubKeyID || !l.PubKey.Equal(k.PubKey) || !l.AllinpayKey.Equal(k.AllinpayKey) {
		t.Fatal("keys differ after a round trip")
	}
}

var sharedTestKeys *Keys

func testKeys(t *testing.T) *Keys {
	t.Helper()
	if sharedTestKeys == nil {
		k, err := GenerateKeys()
		if err != nil {
			t.Fatal(err)
		}
		sharedTestKeys = k
	}
	return sharedTestKeys
}
