package sandbox

import (
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/allinpay"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// allinpayLine is one detail of an Allinpay order.
type allinpayLine struct {
	AccountUserID *int64 `json:"accountUserId,omitempty"`
	ExternalCode  string `json:"externalCode,omitempty"`
	IsPlatform    bool   `json:"isPlatform,omitempty"`
	amount        int64
	tid           string
	summary       string
	status        string
}

// allinpayQueryMethod is the method the sandbox answers as the query.
func (s *Server) allinpayQueryMethod() string {
	if s.opts.AllinpayQueryMethod != "" {
		return s.opts.AllinpayQueryMethod
	}
	return provider.DefaultAllinpayQueryMethod
}

// allinpay serves the gateway: verify the envelope, inject faults,
// dispatch on method, sign the answer.
func (s *Server) allinpay(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil || len(body) > maxRequestBytes {
		s.writeAllinpay(w, http.StatusBadRequest, "1001", "request unreadable", nil, false)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.writeAllinpay(w, http.StatusBadRequest, "1001", "form unparseable", nil, false)
		return
	}
	p := allinpay.FormParams(form)
	pub, ok := s.app(p["appId"])
	if !ok || p["signType"] != allinpay.SignType ||
		wechatpay.VerifySHA256(pub, []byte(allinpay.SigningString(p)), p["sign"]) != nil {
		// Nothing is processed; HTTP 401 like the WeChat side.
		s.writeAllinpay(w, http.StatusUnauthorized, "SIGN_ERROR", "签名错误", nil, false)
		return
	}
	endpoint := EndpointAllinpayQuery
	if p["method"] == allinpay.MethodWithdraw {
		endpoint = EndpointAllinpaySubmit
		var end func()
		w, end = s.inflight.span(w, "allinpay:"+p["appId"])
		defer end()
	}
	d := s.faults.decide(endpoint)
	if !sleep(r, d.latency) {
		return
	}
	switch {
	case d.status429:
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case d.status5xx:
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>502 Bad Gateway (sandbox fault)</html>")
		return
	case d.errorCode != "":
		s.writeAllinpay(w, http.StatusOK, d.errorCode, "sandbox fault", nil, false)
		return
	}
	now := s.opts.Now()
	var code, msg string
	var data any
	switch p["method"] {
	case allinpay.MethodWithdraw:
		code, msg, data = s.allinpayWithdraw(p["appId"], p["bizContent"], now)
	case s.allinpayQueryMethod():
		code, msg, data = s.allinpayQuery(p["appId"], p["bizContent"], now)
	default:
		code, msg = "1002", "unknown method"
	}
	if d.dropAfterWrite {
		dropConnection(w)
		return
	}
	s.writeAllinpay(w, http.StatusOK, code, msg, data, d.badSignature)
}

// allinpayWithdraw validates and creates (idempotently) a withdraw. Code 3
// is Allinpay's documented failure.
func (s *Server) allinpayWithdraw(appID, bizContent string, now time.Time) (string, string, any) {
	var b allinpay.WithdrawBiz
	if err := strictDecode([]byte(bizContent), &b); err != nil {
		return "3", "bizContent 无法解析", nil
	}
	if b.OrderID == "" || utf8.RuneCountInString(b.OrderID) > 60 || len(b.Details) == 0 {
		return "3", "orderId 或 details 错误", nil
	}
	o := &order{channel: withdrawal.ChannelAllinpayShopoint, merchant: appID, payer: "allinpay:" + appID, outRequestNo: b.OrderID}
	for _, d := range b.Details {
		fen, err := withdrawal.YuanToFen(d.WithdrawAmount.String())
		if err != nil || fen <= 0 || fen > 99_999_999_999_999 {
			return "3", "withdrawAmount 错误", nil
		}
		if d.AccountUserID == nil && d.ExternalCode == "" && (d.IsPlatform == nil || !*d.IsPlatform) {
			return "3", "accountUserId、externalCode、isPlatform必传一个", nil
		}
		if utf8.RuneCountInString(d.Summary) > 100 || utf8.RuneCountInString(d.ExternalCode) > 30 {
			return "3", "summary 或 externalCode 超长", nil
		}
		l := allinpayLine{AccountUserID: d.AccountUserID, ExternalCode: d.ExternalCode, amount: fen, summary: d.Summary}
		l.IsPlatform = d.IsPlatform != nil && *d.IsPlatform
		o.lines = append(o.lines, l)
		o.amount += fen
	}
	canon, _ := json.Marshal(b)
	o.paramsHash = sha256.Sum256(canon)
	// Allinpay waits for funds instead of refusing: no balance check.
	got, res := s.create(withdrawal.ChannelAllinpayShopoint, now, o, false, func(o *order) []byte {
		for i := range o.lines {
			s.nextRef++
			o.lines[i].tid = strconv.FormatUint(s.nextRef, 10)
			o.lines[i].status = o.status
		}
		b, _ := json.Marshal(s.allinpayView(o))
		return b
	})
	if res == resConflict {
		return "3", "orderId 已存在且参数不一致", nil
	}
	return "0", "", json.RawMessage(got.answer)
}

func (s *Server) allinpayQuery(appID, bizContent string, now time.Time) (string, string, any) {
	var q allinpay.QueryBiz
	if err := json.Unmarshal([]byte(bizContent), &q); err != nil || q.OrderID == "" {
		return "3", "bizContent 错误", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	o := s.orders[orderKey{withdrawal.ChannelAllinpayShopoint, appID, q.OrderID}]
	if o == nil || !s.visible(o, now) {
		return provider.AllinpayNotFoundCode, "订单不存在", nil
	}
	return "0", "", s.allinpayView(o)
}

// allinpayView renders an order as answer data. Callers hold s.mu.
func (s *Server) allinpayView(o *order) map[string]any {
	details := make([]map[string]any, len(o.lines))
	for i, l := range o.lines {
		tid, _ := strconv.ParseInt(l.tid, 10, 64)
		d := map[string]any{
			"withdrawTId": tid, "withdrawAmount": json.Number(withdrawal.FenToYuan(l.amount)), "fee": json.Number("0.00"),
			"summary": l.summary, "withdrawStatus": json.Number(l.status), "withdrawStatusDesc": allinpayDesc(l.status, o.reason),
		}
		if l.AccountUserID != nil {
			d["accountUserId"] = *l.AccountUserID
		}
		if l.ExternalCode != "" {
			d["externalCode"] = l.ExternalCode
		}
		if l.IsPlatform {
			d["isPlatform"] = true
		}
		details[i] = d
	}
	return map[string]any{"orderId": o.outRequestNo, "details": details}
}

func allinpayDesc(status, reason string) string {
	switch status {
	case "1":
		return "提现中"
	case "2":
		return "提现成功"
	}
	return reason
}

// writeAllinpay writes a signed JSON answer {code, msg, data, sign}.
func (s *Server) writeAllinpay(w http.ResponseWriter, status int, code, msg string, data any, broken bool) {
	a := map[string]any{"msg": msg}
	if n, err := strconv.Atoi(code); err == nil {
		a["code"] = n
	} else {
		a["code"] = code
	}
	if data != nil {
		a["data"] = data
	}
	unsigned, err := json.Marshal(a)
	if err != nil {
		http.Error(w, "sandbox: encode answer", http.StatusInternalServerError)
		return
	}
	params, _ := allinpay.AnswerParams(unsigned) // our own JSON object
	sig, err := wechatpay.SignSHA256(s.keys.AllinpayKey, []byte(allinpay.SigningString(params)))
	if err != nil {
		http.Error(w, "sandbox: sign answer", http.StatusInternalServerError)
		return
	}
	if broken {
		sig = flipFirst(sig)
	}
	a["sign"] = sig
	out, _ := json.Marshal(a)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
