package allinpay

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
)

// SignType is the signature algorithm name sent in signType.
const SignType = "RSA2"

// SigningString is the string RSA2 signs: every parameter except sign and
// signType and except empty values, sorted by key, joined as k=v&k=v.
// Values are used raw (not URL-encoded).
func SigningString(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || k == "signType" || v == "" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// FormParams flattens a form into single values (the gateway sends each
// parameter once).
func FormParams(form url.Values) map[string]string {
	m := make(map[string]string, len(form))
	for k, v := range form {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

// AnswerParams returns the signed parameters of a JSON answer: each
// top-level field, strings by value, other values by their JSON text as
// received. Unconfirmed: Allinpay documents "verified the same way" only.
func AnswerParams(body []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("allinpay: answer is not a JSON object: %w", err)
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		if len(v) > 0 && v[0] == '"' {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("allinpay: answer field %s: %w", k, err)
			}
			m[k] = s
			continue
		}
		if string(v) == "null" {
			continue
		}
		m[k] = string(v)
	}
	return m, nil
}

// Sign and verify reuse the SHA256withRSA primitives of package wechatpay:
// RSA2 is the same algorithm.
var (
	signSHA256   = wechatpay.SignSHA256
	verifySHA256 = wechatpay.VerifySHA256
)
