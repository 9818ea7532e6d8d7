package sandbox

import (
	"bytes"
	"compress/gzip"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Fund-flow bills, built from the sandbox's own orders: one withdrawal
// line (支出) when an order is created, one refund line (收入) when its money
// comes back (FAIL, CLOSE, REFUND). The file is what WeChat Pay documents: a
// detail part and a summary part, each with a header row, every detail
// value prefixed with a back-quote, amounts in yuan. Platform bills are
// gzip; e-commerce and sub-merchant bills are gzip then AES-256-GCM under
// a random key sent RSA-OAEP-encrypted with the merchant's public key. Every
// hash_value is the SHA1 of the plain file.

// BillHeader is the detail header of the sandbox's fund-flow bill (the
// column set WeChat Pay's fund-flow bill documents).
var BillHeader = []string{"记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型",
	"收支金额(元)", "账户结余(元)", "资金变更提交申请人", "备注", "业务凭证号"}

// BillSummaryHeader is the header of the summary part.
var BillSummaryHeader = []string{"资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"}

// The business types the sandbox writes; the client's recon settings name
// them (withdraw_types, refund_types).
const (
	BillTypeWithdraw = "提现"
	BillTypeRefund   = "退票"
)

// BillFaults make the sandbox's bills disagree with its ledger, once each
// is set, until cleared (counts are consumed as they are used).
type BillFaults struct {
	// Omit leaves the withdrawal lines of these out_request_no out of the
	// bill: ours, not on the bill.
	Omit []string `json:"omit,omitempty"`
	// Extra adds withdrawal lines of orders the sandbox never had: on the
	// bill, not ours.
	Extra int `json:"extra,omitempty"`
	// WrongAmount books these out_request_no one fen more than ordered.
	WrongAmount []string `json:"wrong_amount,omitempty"`
	// Refund adds a refund line for these out_request_no although their
	// order stays SUCCESS (queries keep saying SUCCESS).
	Refund []string `json:"refund,omitempty"`
	// CorruptDownloads alters the next N downloads after their hash was
	// computed: the client must refuse them.
	CorruptDownloads int `json:"corrupt_downloads,omitempty"`
	// NotReady answers the next N bill requests as not generated yet.
	NotReady int `json:"not_ready,omitempty"`
}

// billState holds the faults and the files waiting for download.
type billState struct {
	mu     sync.Mutex
	faults BillFaults
	files  map[string]billFile
}

type billFile struct {
	// plain is the file; the body is built at download (gzip, then
	// AES-GCM under key and nonce for encrypted parts), so that the
	// corrupt-download fault can alter the plain text and still produce a
	// well-formed body that only the hash check catches.
	plain   []byte
	key     []byte
	nonce   string
	expires time.Time
}

// billURLValidity is how long a download_url works (WeChat: 30 s to 5 min).
const billURLValidity = 5 * time.Minute

// SetBillFaults replaces the bill faults (a zero value clears them).
func (s *Server) SetBillFaults(f BillFaults) {
	s.bills.mu.Lock()
	defer s.bills.mu.Unlock()
	s.bills.faults = f
}

// BillFaults returns the faults still pending.
func (s *Server) BillFaults() BillFaults {
	s.bills.mu.Lock()
	defer s.bills.mu.Unlock()
	return s.bills.faults
}

// SeedOrder is an order created directly in the sandbox's ledger, as if it
// had been submitted at Created and had reached Status: for tests and
// demonstrations that need many orders at once (a day's bill).
type SeedOrder struct {
	Channel      withdrawal.Channel
	MchID        string
	SubMchID     string
	OutRequestNo string
	Amount       int64
	AccountType  string
	Created      time.Time
	// Status is the channel's final status (SUCCESS, FAIL, CLOSE, REFUND);
	// the money of FAIL, CLOSE and REFUND comes back at Returned.
	Status   string
	Returned time.Time
}

// SeedOrders creates orders and returns their provider ids (withdraw_id) in
// order. An out_request_no already known is an error.
func (s *Server) SeedOrders(orders []SeedOrder) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := make([]string, 0, len(orders))
	for _, so := range orders {
		k := orderKey{so.Channel, so.MchID, so.OutRequestNo}
		if _, ok := s.orders[k]; ok {
			return refs, fmt.Errorf("sandbox: order %s exists", so.OutRequestNo)
		}
		payer := so.MchID
		if so.SubMchID != "" {
			payer = so.SubMchID
		}
		o := &order{channel: so.Channel, merchant: so.MchID, payer: payer, outRequestNo: so.OutRequestNo,
			amount: so.Amount, created: so.Created, updated: so.Created, plan: PlanSuccess, status: so.Status,
			subMchID: so.SubMchID, accountType: so.AccountType}
		switch so.Status {
		case "FAIL", "CLOSE", "REFUND":
			o.refunded, o.refundedAt, o.updated = true, so.Returned, so.Returned
			o.reason = reasonOf(so.Status)
		}
		o.ref = s.newRef()
		s.orders[k] = o
		s.byRef[string(so.Channel)+"/"+o.ref] = o
		s.ledger[k] = &ledgerEntry{LedgerOrder: LedgerOrder{Channel: string(so.Channel), Merchant: so.MchID,
			OutRequestNo: so.OutRequestNo, Amount: so.Amount, Submissions: 1, Created: 1}, o: o}
		refs = append(refs, o.ref)
	}
	return refs, nil
}

// billLine is one movement.
type billLine struct {
	at      time.Time
	ref     string
	flow    string
	typ     string
	income  bool
	amount  int64
	no      string
	subMch  string
	ordinal int
}

// billScope selects the orders of one bill.
type billScope struct {
	mchid       string
	platform    bool   // the merchant's own account (platform withdrawals)
	accountType string // platform / sub-merchant bills
	subMchID    string // one sub-merchant; "" with !platform: every sub-merchant
}

func (sc billScope) has(o *order) bool {
	if o.merchant != sc.mchid {
		return false
	}
	if sc.platform {
		return o.channel == withdrawal.ChannelWeChatPlatform && orBasic(o.accountType) == sc.accountType
	}
	if o.channel != withdrawal.ChannelWeChatEcommerce && o.channel != withdrawal.ChannelWeChatCancel {
		return false
	}
	if sc.subMchID == "" {
		return true
	}
	return o.subMchID == sc.subMchID && orBasic(o.accountType) == sc.accountType
}

func orBasic(t string) string {
	if t == "" {
		return "BASIC"
	}
	return t
}

// billLines returns the day's lines of a scope, faults applied, in booking
// order. Callers hold s.mu; the bill faults are read under their own lock.
func (s *Server) billLines(sc billScope, day time.Time, f BillFaults) []billLine {
	next := day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.Before(day) && t.Before(next) }
	set := func(nos []string) map[string]bool {
		m := make(map[string]bool, len(nos))
		for _, n := range nos {
			m[n] = true
		}
		return m
	}
	omit, wrong, refund := set(f.Omit), set(f.WrongAmount), set(f.Refund)
	var lines []billLine
	for _, o := range s.orders {
		if !sc.has(o) {
			continue
		}
		if in(o.created) && !omit[o.outRequestNo] {
			amt := o.amount
			if wrong[o.outRequestNo] {
				amt++
			}
			lines = append(lines, billLine{at: o.created, ref: o.ref, flow: o.ref + "01", typ: BillTypeWithdraw,
				amount: amt, no: o.outRequestNo, subMch: o.subMchID})
		}
		if o.refunded && in(o.refundedAt) {
			lines = append(lines, billLine{at: o.refundedAt, ref: o.ref, flow: o.ref + "02", typ: BillTypeRefund,
				income: true, amount: o.amount, no: o.outRequestNo, subMch: o.subMchID})
		} else if refund[o.outRequestNo] && in(o.created) {
			lines = append(lines, billLine{at: o.created.Add(time.Second), ref: o.ref, flow: o.ref + "02", typ: BillTypeRefund,
				income: true, amount: o.amount, no: o.outRequestNo, subMch: o.subMchID})
		}
	}
	for i := 0; i < f.Extra; i++ {
		ref := "9" + strconv.FormatInt(day.Unix(), 10) + fmt.Sprintf("%04d", i)
		lines = append(lines, billLine{at: day.Add(time.Duration(i+1) * time.Minute), ref: ref, flow: ref + "01",
			typ: BillTypeWithdraw, amount: int64(100 + i), no: fmt.Sprintf("NOTOURS%s%04d", day.Format("20060102"), i)})
	}
	sort.Slice(lines, func(i, j int) bool {
		if !lines[i].at.Equal(lines[j].at) {
			return lines[i].at.Before(lines[j].at)
		}
		return lines[i].flow < lines[j].flow
	})
	return lines
}

// yuan formats fen as yuan with two decimals.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// renderBill writes the plain bill file. The sandbox does not know
// balances per account type; the balance column runs from an arbitrary
// opening balance.
func renderBill(lines []billLine) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(BillHeader)
	bq := func(v string) string { return "`" + v }
	balance := int64(1_000_000_000_00)
	var inN, outN int
	var inFen, outFen int64
	for _, l := range lines {
		dir := "支出"
		if l.income {
			dir = "收入"
			balance += l.amount
			inN++
			inFen += l.amount
		} else {
			balance -= l.amount
			outN++
			outFen += l.amount
		}
		remark := ""
		if l.subMch != "" {
			remark = "sub_mchid " + l.subMch
		}
		_ = w.Write([]string{bq(withdrawal.FormatEventTime(l.at)[:19]), bq(l.ref), bq(l.flow), bq(l.typ), bq(l.typ), bq(dir),
			bq(yuan(l.amount)), bq(yuan(balance)), bq("system"), bq(remark), bq(l.no)})
	}
	_ = w.Write(BillSummaryHeader)
	_ = w.Write([]string{bq(strconv.Itoa(len(lines))), bq(strconv.Itoa(inN)), bq(yuan(inFen)), bq(strconv.Itoa(outN)), bq(yuan(outFen))})
	w.Flush()
	return b.Bytes()
}

// splitBill cuts a plain file into parts of about n lines each (by whole
// lines: the parts concatenate back to the file).
func splitBill(plain []byte, n int) [][]byte {
	if n <= 0 {
		return [][]byte{plain}
	}
	var parts [][]byte
	for len(plain) > 0 {
		end, count := 0, 0
		for end < len(plain) && count < n {
			i := bytes.IndexByte(plain[end:], '\n')
			if i < 0 {
				end = len(plain)
				break
			}
			end += i + 1
			count++
		}
		parts = append(parts, plain[:end])
		plain = plain[end:]
	}
	return parts
}

func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

// bill serves the three bill requests (kind platform, ecommerce, sub).
func (s *Server) bill(kind string) func(*wreq) wres {
	return func(q *wreq) wres {
		v := q.r.URL.Query()
		date := v.Get("bill_date")
		day, err := time.ParseInLocation("2006-01-02", date, withdrawal.Beijing)
		if err != nil {
			return wxError("PARAM_ERROR", "bill_date 格式错误")
		}
		if q.now.Sub(day) > 92*24*time.Hour {
			return wxError("INVALID_REQUEST", "仅支持三个月内的账单下载申请")
		}
		if v.Get("tar_type") != "" && v.Get("tar_type") != "GZIP" {
			return wxError("PARAM_ERROR", "tar_type 取值错误")
		}
		sc := billScope{mchid: q.m.MchID, accountType: orBasic(v.Get("account_type"))}
		encrypted := kind != "platform"
		switch kind {
		case "platform":
			sc.platform = true
			if !oneOf(sc.accountType, "BASIC", "OPERATION", "FEES") {
				return wxError("PARAM_ERROR", "account_type 取值错误")
			}
		case "ecommerce":
			if v.Get("account_type") != "ALL" {
				return wxError("PARAM_ERROR", "account_type 只支持 ALL")
			}
		case "sub":
			sc.subMchID = v.Get("sub_mchid")
			if sc.subMchID == "" {
				return wxError("PARAM_ERROR", "sub_mchid 必填")
			}
		}
		if encrypted && v.Get("algorithm") != wechatpay.BillAlgorithmAESGCM {
			return wxError("PARAM_ERROR", "algorithm 取值错误")
		}

		s.bills.mu.Lock()
		f := s.bills.faults
		notReady := f.NotReady > 0
		if notReady {
			s.bills.faults.NotReady--
		}
		s.bills.mu.Unlock()
		if h := s.opts.BillReadyHour; notReady || (h >= 0 && q.now.Before(day.AddDate(0, 0, 1).Add(time.Duration(h)*time.Hour))) {
			return wxError("NO_STATEMENT_EXIST", "账单尚未生成, 请在次日上午10点以后再下载")
		}
		m, _ := s.merchant(q.m.MchID)
		if encrypted && m.PublicKey == nil {
			return wxError("SYSTEM_ERROR", "sandbox: merchant has no public key")
		}

		s.mu.Lock()
		s.advance(q.now)
		plain := renderBill(s.billLines(sc, day, f))
		s.mu.Unlock()

		base := "http://" + q.r.Host
		if q.r.TLS != nil {
			base = "https://" + q.r.Host
		}
		if !encrypted {
			sum := sha1.Sum(plain)
			tok := s.storeBill(billFile{plain: plain}, q.now)
			return wxOK(wechatpay.BillPart{DownloadURL: base + "/v3/billdownload/file?token=" + tok, HashType: "SHA1", HashValue: hex.EncodeToString(sum[:])})
		}
		var list []wechatpay.BillPart
		for i, part := range splitBill(plain, s.opts.BillPartLines) {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			nonce := wechatpay.NewNonce()[:12]
			ek, err := wechatpay.EncryptOAEP(m.PublicKey, string(key))
			if err != nil {
				return wxError("SYSTEM_ERROR", "sandbox: encrypt key: %v", err)
			}
			sum := sha1.Sum(part)
			tok := s.storeBill(billFile{plain: part, key: key, nonce: nonce}, q.now)
			list = append(list, wechatpay.BillPart{Sequence: i + 1, DownloadURL: base + "/v3/billdownload/file?token=" + tok,
				HashType: "SHA1", HashValue: hex.EncodeToString(sum[:]), EncryptKey: ek, Nonce: nonce})
		}
		return wxOK(map[string]any{"download_bill_count": len(list), "download_bill_list": list})
	}
}

// storeBill keeps a file for download and returns its token.
func (s *Server) storeBill(f billFile, now time.Time) string {
	tok := wechatpay.NewNonce()
	s.bills.mu.Lock()
	defer s.bills.mu.Unlock()
	for k, f := range s.bills.files {
		if now.After(f.expires) {
			delete(s.bills.files, k)
		}
	}
	f.expires = now.Add(billURLValidity)
	s.bills.files[tok] = f
	return tok
}

// billDownload serves GET /v3/billdownload/file?token=: a signed request,
// an unsigned answer (as at WeChat Pay: the hash_value of the signed apply
// answer authenticates it).
func (s *Server) billDownload(w http.ResponseWriter, r *http.Request) {
	now := s.opts.Now()
	if _, err := s.authenticate(r, nil, now); err != nil {
		s.writeWeChat(w, wxError("SIGN_ERROR", "签名错误: %v", err), false)
		return
	}
	d := s.faults.decide(EndpointBillDownload)
	if !sleep(r, d.latency) {
		return
	}
	if d.status5xx {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	tok := r.URL.Query().Get("token")
	s.bills.mu.Lock()
	f, ok := s.bills.files[tok]
	corrupt := ok && s.bills.faults.CorruptDownloads > 0
	if corrupt {
		s.bills.faults.CorruptDownloads--
	}
	s.bills.mu.Unlock()
	if !ok || now.After(f.expires) {
		s.writeWeChat(w, wxError("INVALID_REQUEST", "下载地址已失效, 请重新申请账单"), false)
		return
	}
	plain := f.plain
	if corrupt {
		plain = append([]byte(nil), plain...)
		if i := bytes.LastIndexAny(plain, "123456789"); i >= 0 {
			plain[i] = '0' // one digit: the file still parses, only the hash tells
		}
	}
	body := gzipBytes(plain)
	if f.key != nil {
		block, _ := aes.NewCipher(f.key)
		aead, _ := cipher.NewGCM(block)
		body = aead.Seal(nil, []byte(f.nonce), body, nil)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// adminBillFaults serves GET/POST/DELETE /_sandbox/bill-faults.
func (s *Server) adminBillFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var f BillFaults
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "bill faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetBillFaults(f)
	case http.MethodDelete:
		s.SetBillFaults(BillFaults{})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.BillFaults())
}
