package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// withdrawReq is the e-commerce / platform withdraw body.
type withdrawReq struct {
	SubMchID     string `json:"sub_mchid,omitempty"`
	OutRequestNo string `json:"out_request_no"`
	Amount       int64  `json:"amount"`
	Remark       string `json:"remark,omitempty"`
	BankMemo     string `json:"bank_memo,omitempty"`
	AccountType  string `json:"account_type,omitempty"`
	NotifyURL    string `json:"notify_url,omitempty"`
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func tooLong(s string, n int) bool { return utf8.RuneCountInString(s) > n }

func oneOf(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func (s *Server) submitWithdraw(q *wreq) wres {
	var b withdrawReq
	if err := strictDecode(q.body, &b); err != nil {
		return wxError("PARAM_ERROR", "请求体无法解析: %v", err)
	}
	ecommerce := q.ch == withdrawal.ChannelWeChatEcommerce
	remarkMax := 255
	if ecommerce {
		remarkMax = 56
	}
	switch {
	case b.OutRequestNo == "" || len(b.OutRequestNo) > 32 || !alnum(b.OutRequestNo):
		return wxError("PARAM_ERROR", "out_request_no 必须是1-32位字母数字")
	case b.Amount <= 0:
		return wxError("PARAM_ERROR", "amount 必须大于0")
	case ecommerce && (b.SubMchID == "" || len(b.SubMchID) > 32):
		return wxError("PARAM_ERROR", "sub_mchid 错误")
	case !ecommerce && b.SubMchID != "":
		return wxError("PARAM_ERROR", "平台提现不接受 sub_mchid")
	case !ecommerce && b.AccountType == "":
		return wxError("PARAM_ERROR", "account_type 必填")
	case b.AccountType != "" && !oneOf(b.AccountType, "BASIC", "OPERATION", "FEES"):
		return wxError("PARAM_ERROR", "account_type 取值错误")
	case tooLong(b.Remark, remarkMax):
		return wxError("PARAM_ERROR", "remark 超长")
	case tooLong(b.BankMemo, 32):
		return wxError("PARAM_ERROR", "bank_memo 超长")
	case b.NotifyURL != "" && !validURL(b.NotifyURL):
		return wxError("PARAM_ERROR", "notify_url 格式错误")
	}
	payer := q.m.MchID
	if ecommerce {
		payer = b.SubMchID
	}
	canon, _ := json.Marshal(b)
	o := &order{channel: q.ch, merchant: q.m.MchID, payer: payer, outRequestNo: b.OutRequestNo, amount: b.Amount,
		paramsHash: sha256.Sum256(canon), notifyURL: b.NotifyURL, subMchID: b.SubMchID, remark: b.Remark,
		bankMemo: b.BankMemo, accountType: b.AccountType}
	return s.createWeChat(q, o, "NOT_ENOUGH", func(o *order) any {
		if ecommerce {
			return map[string]string{"sub_mchid": o.subMchID, "withdraw_id": o.ref, "out_request_no": o.outRequestNo, "account_type": o.accountType}
		}
		return map[string]string{"withdraw_id": o.ref, "out_request_no": o.outRequestNo}
	})
}

// createResult is what create did.
type createResult int

const (
	resCreated  createResult = iota // a new order
	resReplay                       // same number, same parameters
	resConflict                     // same number, other parameters
	resShort                        // balance too low: nothing created
)

// create is the idempotent heart of every submission: under the lock, a
// duplicate number with the same parameters returns the existing order, one
// with other parameters is refused; a new number is checked against the
// balance and created exactly once. answer renders the stored answer.
func (s *Server) create(ch withdrawal.Channel, now time.Time, o *order, checkBalance bool, answer func(*order) []byte) (*order, createResult) {
	k := orderKey{ch, o.merchant, o.outRequestNo}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	le := s.ledger[k]
	if le == nil {
		le = &ledgerEntry{LedgerOrder: LedgerOrder{Channel: string(ch), Merchant: o.merchant, OutRequestNo: o.outRequestNo, Amount: o.amount}}
		s.ledger[k] = le
	}
	le.Submissions++
	if old, ok := s.orders[k]; ok {
		if old.paramsHash != o.paramsHash {
			return old, resConflict
		}
		s.drive(old, now)
		return old, resReplay
	}
	if checkBalance {
		bal, ok := s.balances[o.payer]
		if !ok {
			bal = s.opts.DefaultBalance
		}
		if o.amount > bal {
			return nil, resShort
		}
		s.balances[o.payer] = bal - o.amount
	}
	o.ref = s.newRef()
	s.start(o, now)
	o.answer = answer(o)
	s.orders[k] = o
	s.byRef[string(ch)+"/"+o.ref] = o
	le.Created++
	le.o = o
	return o, resCreated
}

// createWeChat renders create's result as a WeChat answer.
func (s *Server) createWeChat(q *wreq, o *order, shortCode string, answer func(*order) any) wres {
	o, res := s.create(q.ch, q.now, o, true, func(o *order) []byte { return wxOK(answer(o)).body })
	switch res {
	case resConflict:
		return wxError("PARAM_ERROR", "提交相同商户单号的请求但参数和历史提交的参数不一致")
	case resShort:
		return wxError(shortCode, "商户号账户可用余额不足")
	case resReplay:
		if q.ch == withdrawal.ChannelWeChatCancel {
			// Seed 002: a duplicate application is refused as existing.
			return wxError("RESOURCE_ALREADY_EXISTS", "重复提交, 商户的提现申请单号已经存在, 请调用查询状态接口检查")
		}
	}
	return wres{status: http.StatusOK, body: o.answer}
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// cancelReq is the cancel-withdraw application body.
type cancelReq struct {
	SubMchID            string                `json:"sub_mchid"`
	OutAccountType      string                `json:"out_account_type"`
	Amount              int64                 `json:"amount"`
	OutRequestNo        string                `json:"out_request_no"`
	PayeeType           string                `json:"payee_type"`
	PayeeMchID          string                `json:"payee_mchid,omitempty"`
	PayeeInfo           *withdrawal.PayeeInfo `json:"payee_info"`
	ProofMediaList      json.RawMessage       `json:"proof_media_list,omitempty"`
	AdditionalMaterials json.RawMessage       `json:"additional_materials,omitempty"`
	Remark              string                `json:"remark,omitempty"`
}

func (s *Server) submitCancel(q *wreq) wres {
	serial := q.r.Header.Get(wechatpay.HeaderSerial)
	key, ok := s.keys.decryptionKey(serial)
	if !ok {
		return wxError("PARAM_ERROR", "Wechatpay-Serial 无效或缺失")
	}
	var b cancelReq
	if err := strictDecode(q.body, &b); err != nil {
		return wxError("PARAM_ERROR", "请求体无法解析: %v", err)
	}
	switch {
	case b.SubMchID == "" || len(b.SubMchID) > 32:
		return wxError("PARAM_ERROR", "sub_mchid 错误")
	case !oneOf(b.OutAccountType, "BASIC_ACCOUNT", "OPERATE_ACCOUNT"):
		return wxError("PARAM_ERROR", "out_account_type 取值错误")
	case b.Amount <= 0 || b.Amount > 100_000_000:
		return wxError("PARAM_ERROR", "amount 必须大于0且不超过100万元")
	case b.OutRequestNo == "" || len(b.OutRequestNo) > 32 || !alnum(b.OutRequestNo):
		return wxError("PARAM_ERROR", "out_request_no 必须是1-32位字母数字")
	case !oneOf(b.PayeeType, "CONTRIBUTION_MERCHANT", "SERVICE_PROVIDER_MERCHANT", "OTHER_MERCHANT", "OTHER_MCH", "INDIVIDUAL"):
		return wxError("PARAM_ERROR", "payee_type 取值错误")
	case (b.PayeeType == "INDIVIDUAL") != (b.PayeeMchID == ""):
		return wxError("PARAM_ERROR", "payee_mchid 与 payee_type 不匹配")
	case b.PayeeInfo == nil || b.PayeeInfo.BankAccountInfo == nil:
		return wxError("PARAM_ERROR", "payee_info 必填")
	case tooLong(b.Remark, 1024):
		return wxError("PARAM_ERROR", "remark 超长")
	}
	// Decrypt the sensitive fields as WeChat Pay would; idempotency then
	// compares plaintext parameters (OAEP ciphertext differs per encryption).
	dec := func(v *string) bool {
		if *v == "" {
			return true
		}
		pt, err := wechatpay.DecryptOAEP(key, *v)
		*v = pt
		return err == nil
	}
	bi := b.PayeeInfo.BankAccountInfo
	okAll := dec(&bi.AccountName) && dec(&bi.AccountNumber)
	if id := b.PayeeInfo.IdentityInfo; id != nil {
		okAll = okAll && dec(&id.IdentificationName) && dec(&id.IdentificationNo)
	}
	if !okAll {
		return wxError("PARAM_ERROR", "敏感信息解密失败, 请检查加密公钥与 Wechatpay-Serial")
	}
	canon, _ := json.Marshal(b)
	o := &order{channel: q.ch, merchant: q.m.MchID, payer: b.SubMchID, outRequestNo: b.OutRequestNo, amount: b.Amount,
		paramsHash: sha256.Sum256(canon), subMchID: b.SubMchID, remark: b.Remark}
	return s.createWeChat(q, o, "NOTENOUGH", func(o *order) any {
		return map[string]string{"applyment_id": o.ref, "out_request_no": o.outRequestNo}
	})
}

func (s *Server) queryByNo(q *wreq) wres {
	no := q.r.PathValue("no")
	sub := q.r.URL.Query().Get("sub_mchid")
	if q.ch == withdrawal.ChannelWeChatEcommerce && sub == "" {
		return wxError("PARAM_ERROR", "sub_mchid 必填")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(q.now)
	return s.queryAnswer(q, s.orders[orderKey{q.ch, q.m.MchID, no}], sub)
}

func (s *Server) queryByRef(q *wreq) wres {
	sub := q.r.URL.Query().Get("sub_mchid")
	if q.ch == withdrawal.ChannelWeChatEcommerce && sub == "" {
		return wxError("PARAM_ERROR", "sub_mchid 必填")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(q.now)
	o := s.byRef[string(q.ch)+"/"+q.r.PathValue("ref")]
	if o != nil && o.merchant != q.m.MchID {
		o = nil
	}
	return s.queryAnswer(q, o, sub)
}

// queryAnswer renders an order as the channel's query answer. Callers hold
// s.mu.
func (s *Server) queryAnswer(q *wreq, o *order, sub string) wres {
	if o == nil || !s.visible(o, q.now) || (q.ch == withdrawal.ChannelWeChatEcommerce && o.subMchID != sub) {
		if q.ch == withdrawal.ChannelWeChatCancel {
			// The cancel application's queries answer a missing
			// application with 404 NOT_FOUND (单号不存在).
			return wxError("NOT_FOUND", "单号不存在")
		}
		return wxError("ORDER_NOT_EXISTS", "该提现单号不存在")
	}
	if q.ch == withdrawal.ChannelWeChatCancel {
		return wxOK(map[string]any{"withdrawl_apply": map[string]string{
			"applyment_id": o.ref, "out_request_no": o.outRequestNo, "state": o.status,
			"fail_reason": o.reason, "modify_time": beijingTime(o.updated)}})
	}
	return wxOK(s.withdrawView(o))
}

// withdrawView is the query answer and callback resource of a withdraw.
func (s *Server) withdrawView(o *order) wechatpay.WithdrawNotice {
	n := wechatpay.WithdrawNotice{Status: o.status, WithdrawID: o.ref, OutRequestNo: o.outRequestNo, Amount: o.amount,
		CreateTime: beijingTime(o.created), UpdateTime: beijingTime(o.updated), Reason: o.reason, Remark: o.remark,
		BankMemo: o.bankMemo, AccountType: o.accountType}
	if o.channel == withdrawal.ChannelWeChatEcommerce {
		// The platform withdraw's answer names no merchant at all.
		n.SpMchID, n.SubMchID = o.merchant, o.subMchID
	}
	if o.reason != "" && (o.status == "FAIL" || o.status == "CLOSE") {
		n.Solution = "sandbox: 请修改结算银行卡信息"
	}
	return n
}
