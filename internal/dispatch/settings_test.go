package dispatch

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadFileSettings(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("accounts: []\ndispatch:\n  rates:\n    wechatpay_platform/default: {per_second: 50, burst: 10}\n  per_merchant:\n    wechatpay:default: 3\n"), 0o600)
	fs, err := LoadFileSettings(good)
	if err != nil {
		t.Fatal(err)
	}
	if fs.Rates["wechatpay_platform/default"].PerSecond != 50 || fs.PerMerchant["wechatpay:default"] != 3 {
		t.Fatalf("%+v", fs)
	}
	d := mustNew(t, nil, nil, nil, Options{PerMerchant: 1, PerMerchantOverrides: fs.PerMerchant})
	if d.perMerchant("wechatpay:default:1900000109") != 3 || d.perMerchant("allinpay:default") != 1 {
		t.Error("per-merchant override not applied by account")
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("dispatch:\n  per_merchant:\n    wechatpay:default: 0\n"), 0o600)
	if _, err := LoadFileSettings(bad); err == nil {
		t.Error("a cap of 0 was accepted")
	}
	negative := filepath.Join(dir, "negative.yaml")
	os.WriteFile(negative, []byte("dispatch:\n  rates:\n    wechatpay_platform/default: {per_second: 50, burst: -1}\n"), 0o600)
	if _, err := LoadFileSettings(negative); err == nil {
		t.Error("a negative burst was accepted")
	}
	if fs, err := LoadFileSettings(""); err != nil || fs.Rates != nil {
		t.Errorf("empty path: %+v %v", fs, err)
	}
}
