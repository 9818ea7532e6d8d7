package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// wreq is an authenticated WeChat request.
type wreq struct {
	ch       withdrawal.Channel
	endpoint string
	m        WeChatMerchant
	r        *http.Request
	body     []byte
	now      time.Time
}

// wres is a WeChat answer before signing.
type wres struct {
	status int
	body   []byte
}

// errorStatus is WeChat's HTTP status of each error code.
var errorStatus = map[string]int{
	"PARAM_ERROR": 400, "INVALID_REQUEST": 400, "RESOURCE_ALREADY_EXISTS": 400,
	"SIGN_ERROR": 401,
	"NO_AUTH":    403, "NOT_ENOUGH": 403, "NOTENOUGH": 403, "REQUEST_BLOCKED": 403, "CONTRACT_NOT_CONFIRM": 403,
	"ACCOUNT_ERROR": 403, "ACCOUNT_NOT_VERIFIED": 403,
	"ORDER_NOT_EXISTS": 404, "ORDER_NOT_EXIST": 404, "RESOURCE_NOT_EXISTS": 404, "NOT_FOUND": 404,
	"FREQUENCY_LIMITED": 429, "RATE_LIMITED": 429, "RATELIMIT_EXCEEDED": 429,
	"SYSTEM_ERROR": 500, "SYSTEMERROR": 500,
}

// wxError builds an error answer.
func wxError(code, format string, args ...any) wres {
	st, ok := errorStatus[code]
	if !ok {
		st = http.StatusBadRequest
	}
	b, _ := json.Marshal(map[string]string{"code": code, "message": fmt.Sprintf(format, args...)})
	return wres{status: st, body: b}
}

func wxOK(v any) wres {
	b, err := json.Marshal(v)
	if err != nil {
		return wxError("SYSTEM_ERROR", "sandbox: encode answer: %v", err)
	}
	return wres{status: http.StatusOK, body: b}
}

// maxRequestBytes bounds request bodies.
const maxRequestBytes = 1 << 20

// wechat wraps an endpoint handler with what every WeChat endpoint does:
// authenticate, inject faults, track in-flight submissions, sign answers.
func (s *Server) wechat(ch withdrawal.Channel, endpoint string, h func(*wreq) wres) http.HandlerFunc {
	submit := endpoint == EndpointEcommerceSubmit || endpoint == EndpointPlatformSubmit || endpoint == EndpointCancelSubmit
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
		if err != nil || len(body) > maxRequestBytes {
			s.writeWeChat(w, wxError("PARAM_ERROR", "request body unreadable or too large"), false)
			return
		}
		now := s.opts.Now()
		m, err := s.authenticate(r, body, now)
		if err != nil {
			s.log.Debug("sandbox: rejected signature", "endpoint", endpoint, "err", err)
			s.writeWeChat(w, wxError("SIGN_ERROR", "签名错误: %v", err), false)
			return
		}
		if submit {
			var end func()
			w, end = s.inflight.span(w, payerOf(ch, m.MchID, body))
			defer end()
		}
		d := s.faults.decide(endpoint)
		if !sleep(r, d.latency) {
			return
		}
		switch {
		case d.status429:
			s.writeWeChat(w, wxError("FREQUENCY_LIMITED", "频率限制 (sandbox fault)"), false)
			return
		case d.status5xx:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><body>502 Bad Gateway (sandbox fault)</body></html>")
			return
		case d.errorCode != "":
			s.writeWeChat(w, wxError(d.errorCode, "sandbox fault"), false)
			return
		}
		res := h(&wreq{ch: ch, endpoint: endpoint, m: m, r: r, body: body, now: now})
		if d.dropAfterWrite {
			dropConnection(w)
			return
		}
		if d.forged && res.status == http.StatusOK {
			res.body = forge(res.body)
			s.faults.count(endpoint, "forged_answer")
		}
		s.writeWeChat(w, res, d.badSignature)
	}
}

// forge rewrites a success answer into one about another order: no
// out_request_no, another amount and withdraw_id (the ForgedAnswer fault).
func forge(body []byte) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	edit := func(m map[string]any) {
		delete(m, "out_request_no")
		if a, ok := m["amount"].(float64); ok {
			m["amount"] = a + 1
		}
		for _, k := range []string{"withdraw_id", "applyment_id"} {
			if _, ok := m[k]; ok {
				m[k] = "FORGED"
			}
		}
	}
	edit(m)
	if inner, ok := m["withdrawl_apply"].(map[string]any); ok {
		edit(inner)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return b
}

// authenticate verifies the Authorization header against the merchant's
// registered key.
func (s *Server) authenticate(r *http.Request, body []byte, now time.Time) (WeChatMerchant, error) {
	a, err := wechatpay.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return WeChatMerchant{}, err
	}
	m, ok := s.merchant(a.MchID)
	if !ok {
		return WeChatMerchant{}, fmt.Errorf("unknown mchid %s", a.MchID)
	}
	if a.Serial != m.Serial {
		return WeChatMerchant{}, fmt.Errorf("serial_no %s is not the merchant's certificate", a.Serial)
	}
	ts, err := strconv.ParseInt(a.Timestamp, 10, 64)
	if err != nil {
		return WeChatMerchant{}, fmt.Errorf("bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > wechatpay.MaxClockSkew || d < -wechatpay.MaxClockSkew {
		return WeChatMerchant{}, fmt.Errorf("timestamp %s off", d.Round(time.Second))
	}
	var signed []byte
	if r.Method != http.MethodGet {
		signed = body
	}
	msg := wechatpay.RequestMessage(r.Method, r.RequestURI, ts, a.Nonce, signed)
	if err := wechatpay.VerifySHA256(m.PublicKey, msg, a.Signature); err != nil {
		return WeChatMerchant{}, err
	}
	return m, nil
}

// writeWeChat signs and writes an answer. broken corrupts the signature
// (the bad-signature fault).
func (s *Server) writeWeChat(w http.ResponseWriter, res wres, broken bool) {
	ts := strconv.FormatInt(s.opts.Now().Unix(), 10)
	nonce := wechatpay.NewNonce()
	key, serial := s.keys.PubKey, s.keys.PubKeyID
	if s.opts.SignMode == SignCertificate {
		key, serial = s.keys.CertKey, s.keys.CertSerial
	}
	sig, err := wechatpay.SignSHA256(key, wechatpay.ResponseMessage(ts, nonce, res.body))
	if err != nil {
		http.Error(w, "sandbox: sign answer", http.StatusInternalServerError)
		return
	}
	if broken {
		sig = flipFirst(sig)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set(wechatpay.HeaderTimestamp, ts)
	h.Set(wechatpay.HeaderNonce, nonce)
	h.Set(wechatpay.HeaderSerial, serial)
	h.Set(wechatpay.HeaderSignature, sig)
	h.Set(wechatpay.HeaderRequestID, "sandbox-"+nonce[:16])
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// flipFirst changes the first character of a Base64 signature so that it
// no longer verifies.
func flipFirst(sig string) string {
	if sig[0] == 'A' {
		return "B" + sig[1:]
	}
	return "A" + sig[1:]
}

// dropConnection closes the client's connection without an answer: the
// order is committed, the client sees a reset or EOF.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	// HTTP/2 cannot be hijacked: aborting the handler resets the stream.
	panic(http.ErrAbortHandler)
}

// sleep waits d unless the client goes away; false if it did.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// payerOf returns whose balance a submission draws on, for the in-flight
// count: the sub-merchant for e-commerce and cancel, else the merchant.
func payerOf(ch withdrawal.Channel, mchid string, body []byte) string {
	if ch == withdrawal.ChannelWeChatPlatform {
		return mchid
	}
	var b struct {
		SubMchID string `json:"sub_mchid"`
	}
	if json.Unmarshal(body, &b) != nil || b.SubMchID == "" {
		return mchid
	}
	return b.SubMchID
}

// beijingTime formats a time as WeChat answers do.
func beijingTime(t time.Time) string { return withdrawal.FormatEventTime(t) }
