package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/provider/sandbox"
)

// Identities of the development set-up (docker-compose.yml and
// deploy/compose/withdraw.yaml use the same values).
const (
	DevMchID          = "1900000109"
	DevMerchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	DevAllinpayAppID  = "compose-app"
)

// devKeyFiles are the files devkeys writes (besides sandbox/), for the
// providers YAML and the services.
var devKeyFiles = []string{
	"apiclient_key.pem", "apiclient_pub.pem", "allinpay_merchant_key.pem", "allinpay_merchant_pub.pem",
	"wechatpay_cert.pem", "wechatpay_pub_key.pem", "allinpay_public.pem", "apiv3.key", "pii.keys", "admin.token",
}

func (c *cli) devkeys(args []string) error {
	fs := c.flags("devkeys", "[flags] --dir DIR",
		`Generates every key a development set-up needs, for the provider sandbox only (never for real
providers): the sandbox's own keys (DIR/sandbox, for sandbox --keys-dir), the merchant keys the
services sign with and the sandbox verifies, the sandbox keys the services trust, an APIv3 key, a PII
data key file and an admin token. deploy/compose/withdraw.yaml refers to these files under /keys.
Existing files are kept (run it at every start), unless --force.`)
	dir := fs.String("dir", "", "directory to write into (created if missing)")
	force := fs.Bool("force", false, "replace existing keys")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *dir == "" || len(pos) > 0 {
		fs.Usage()
		return errors.New("devkeys: --dir is required")
	}
	if !*force {
		if _, err := os.Stat(filepath.Join(*dir, "admin.token")); err == nil {
			fmt.Fprintf(c.stdout, "keys already in %s (kept; --force to replace)\n", *dir)
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Join(*dir, "sandbox"), 0o700); err != nil {
		return err
	}
	sk, err := sandbox.GenerateKeys()
	if err != nil {
		return err
	}
	if err := sk.WriteKeys(filepath.Join(*dir, "sandbox")); err != nil {
		return err
	}
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	app, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	apiv3 := make([]byte, 24) // 32 base64 characters: WeChat's APIv3 key is 32 bytes of text
	if _, err := rand.Read(apiv3); err != nil {
		return err
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	files := map[string][]byte{
		"apiclient_key.pem":         sandbox.PrivatePEM(merchant),
		"apiclient_pub.pem":         sandbox.PublicPEM(&merchant.PublicKey),
		"allinpay_merchant_key.pem": sandbox.PrivatePEM(app),
		"allinpay_merchant_pub.pem": sandbox.PublicPEM(&app.PublicKey),
		"wechatpay_cert.pem":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sk.Cert.Raw}),
		"wechatpay_pub_key.pem":     sandbox.PublicPEM(&sk.PubKey.PublicKey),
		"allinpay_public.pem":       sandbox.PublicPEM(&sk.AllinpayKey.PublicKey),
		"apiv3.key":                 []byte(base64.RawURLEncoding.EncodeToString(apiv3) + "\n"),
		"pii.keys":                  []byte(pii.GenerateKeyLine("dev"+time.Now().UTC().Format("200601")) + "\n"),
		"admin.token":               []byte(base64.RawURLEncoding.EncodeToString(token) + "\n"),
	}
	for _, name := range devKeyFiles {
		if err := os.WriteFile(filepath.Join(*dir, name), files[name], 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stdout, "development keys written to %s (WeChat mchid %s serial %s, Allinpay app %s, public key id %s)\n",
		*dir, DevMchID, DevMerchantSerial, DevAllinpayAppID, sk.PubKeyID)
	return nil
}

func (c *cli) health(args []string) error {
	fs := c.flags("health", "[flags] [URL]",
		`Exits 0 when URL (default http://127.0.0.1:8080/readyz) answers 200, 1 otherwise: the container
health check of images without curl.`)
	timeout := fs.Duration("timeout", 3*time.Second, "HTTP timeout")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	u := "http://127.0.0.1:8080/readyz"
	if len(pos) == 1 {
		u = pos[0]
	} else if len(pos) > 1 {
		return errors.New("health: at most one URL")
	}
	resp, err := (&http.Client{Timeout: *timeout}).Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return nil
}
