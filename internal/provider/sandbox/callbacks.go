package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// notify queues a MCHWITHDRAW.CHANGE callback for an order that reached a
// status WeChat notifies (SUCCESS, FAIL, REFUND, CLOSE). Callers hold s.mu;
// the delivery runs in its own goroutine with retries.
func (s *Server) notify(o *order) {
	switch o.status {
	case "SUCCESS", "FAIL", "REFUND", "CLOSE":
	default:
		return
	}
	m, ok := s.merchants[o.merchant]
	if !ok || m.APIv3Key == nil || s.ctx.Err() != nil {
		return
	}
	plain, err := json.Marshal(s.withdrawView(o))
	if err != nil {
		return
	}
	res, err := wechatpay.EncryptResource(m.APIv3Key, plain, wechatpay.OriginalTypeWithdraw, wechatpay.OriginalTypeWithdraw)
	if err != nil {
		s.log.Error("sandbox: encrypt callback", "err", err)
		return
	}
	s.seq++
	n := wechatpay.Notification{
		ID:           "sandbox-" + strconv.FormatUint(s.seq, 10),
		CreateTime:   withdrawal.FormatEventTime(s.opts.Now()),
		EventType:    wechatpay.EventWithdrawChange,
		ResourceType: wechatpay.ResourceEncrypt,
		Summary:      "提现状态变更",
		Resource:     res,
	}
	body, err := json.Marshal(n)
	if err != nil {
		return
	}
	url := o.notifyURL
	s.wg.Add(1)
	go s.deliver(url, body)
}

// deliver POSTs a callback until it is acknowledged with 2xx or the retry
// schedule is exhausted. Each attempt is signed afresh (new timestamp).
func (s *Server) deliver(url string, body []byte) {
	defer s.wg.Done()
	for attempt := 0; ; attempt++ {
		ok := s.post(url, body)
		s.mu.Lock()
		s.cbSent++
		if ok {
			s.cbAcked++
		}
		s.mu.Unlock()
		if ok || attempt >= len(s.opts.CallbackDelays) {
			return
		}
		t := time.NewTimer(s.opts.CallbackDelays[attempt])
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Server) post(url string, body []byte) bool {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	ts := strconv.FormatInt(s.opts.Now().Unix(), 10)
	nonce := wechatpay.NewNonce()
	key, serial := s.keys.PubKey, s.keys.PubKeyID
	if s.opts.SignMode == SignCertificate {
		key, serial = s.keys.CertKey, s.keys.CertSerial
	}
	sig, err := wechatpay.SignSHA256(key, wechatpay.ResponseMessage(ts, nonce, body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wechatpay.HeaderTimestamp, ts)
	req.Header.Set(wechatpay.HeaderNonce, nonce)
	req.Header.Set(wechatpay.HeaderSerial, serial)
	req.Header.Set(wechatpay.HeaderSignature, sig)
	resp, err := s.callback.Do(req)
	if err != nil {
		s.log.Debug("sandbox: callback failed", "err", err)
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}
