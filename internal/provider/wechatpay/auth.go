package wechatpay

import (
	"errors"
	"fmt"
	"strings"
)

// Auth is a parsed Authorization header (the sandbox verifies requests with
// it).
type Auth struct {
	MchID, Nonce, Timestamp, Serial, Signature string
}

// ParseAuthorization parses a WECHATPAY2-SHA256-RSA2048 header value.
func ParseAuthorization(v string) (Auth, error) {
	rest, ok := strings.CutPrefix(v, AuthScheme+" ")
	if !ok {
		return Auth{}, errors.New("authorization: not " + AuthScheme)
	}
	var a Auth
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Auth{}, fmt.Errorf("authorization: malformed %q", part)
		}
		val = strings.Trim(val, `"`)
		switch k {
		case "mchid":
			a.MchID = val
		case "nonce_str":
			a.Nonce = val
		case "timestamp":
			a.Timestamp = val
		case "serial_no":
			a.Serial = val
		case "signature":
			a.Signature = val
		}
	}
	if a.MchID == "" || a.Nonce == "" || a.Timestamp == "" || a.Serial == "" || a.Signature == "" {
		return Auth{}, errors.New("authorization: a field is missing")
	}
	return a, nil
}
