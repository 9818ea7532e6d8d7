package wechatpay

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// withdrawBody is the e-commerce and platform withdraw request.
type withdrawBody struct {
	SubMchID     string `json:"sub_mchid,omitempty"`
	OutRequestNo string `json:"out_request_no"`
	Amount       int64  `json:"amount"`
	Remark       string `json:"remark,omitempty"`
	BankMemo     string `json:"bank_memo,omitempty"`
	AccountType  string `json:"account_type,omitempty"`
	NotifyURL    string `json:"notify_url,omitempty"`
}

// cancelBody is the cancelled-merchant withdraw application.
type cancelBody struct {
	SubMchID            string          `json:"sub_mchid"`
	OutAccountType      string          `json:"out_account_type"`
	Amount              int64           `json:"amount"`
	OutRequestNo        string          `json:"out_request_no"`
	PayeeType           string          `json:"payee_type"`
	PayeeMchID          string          `json:"payee_mchid,omitempty"`
	PayeeInfo           *payeeInfo      `json:"payee_info"`
	ProofMediaList      json.RawMessage `json:"proof_media_list,omitempty"`
	AdditionalMaterials json.RawMessage `json:"additional_materials,omitempty"`
	Remark              string          `json:"remark,omitempty"`
}

// payeeInfo mirrors withdrawal.PayeeInfo with the sensitive fields
// encrypted (account_name, account_number, identification_name,
// identification_no, as in the provider's example).
type payeeInfo struct {
	AccountType     string           `json:"account_type"`
	BankAccountInfo *bankAccountInfo `json:"bank_account_info,omitempty"`
	IdentityInfo    *identityInfo    `json:"identity_info,omitempty"`
}

type bankAccountInfo struct {
	AccountBank   string `json:"account_bank"`
	AccountName   string `json:"account_name"`
	AccountNumber string `json:"account_number"`
	BankBranchID  string `json:"bank_branch_id,omitempty"`
	BankName      string `json:"bank_name,omitempty"`
}

type identityInfo struct {
	IDDocType          string `json:"id_doc_type"`
	IdentificationName string `json:"identification_name"`
	IdentificationNo   string `json:"identification_no"`
}

// encryptPayee encrypts the sensitive fields with enc.
func encryptPayee(p *withdrawal.PayeeInfo, enc func(string) (string, error)) (*payeeInfo, error) {
	if p == nil {
		return nil, fmt.Errorf("payee_info is required")
	}
	out := &payeeInfo{AccountType: p.AccountType}
	var err error
	encrypt := func(field, v string) string {
		if err != nil || v == "" {
			return v
		}
		var ct string
		if ct, err = enc(v); err != nil {
			err = fmt.Errorf("encrypt %s: %w", field, err) // names the field, never the value
		}
		return ct
	}
	if b := p.BankAccountInfo; b != nil {
		out.BankAccountInfo = &bankAccountInfo{
			AccountBank:   b.AccountBank,
			AccountName:   encrypt("account_name", b.AccountName),
			AccountNumber: encrypt("account_number", b.AccountNumber),
			BankBranchID:  b.BankBranchID,
			BankName:      b.BankName,
		}
	}
	if id := p.IdentityInfo; id != nil {
		out.IdentityInfo = &identityInfo{
			IDDocType:          id.IDDocType,
			IdentificationName: encrypt("identification_name", id.IdentificationName),
			IdentificationNo:   encrypt("identification_no", id.IdentificationNo),
		}
	}
	return out, err
}

// marshal encodes v as compact JSON without HTML escaping, so the bytes are
// what a person reading the provider's docs expects.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// compactRaw compacts a free-form JSON object passed through from upstream.
func compactRaw(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Answers.

type submitAnswer struct {
	SubMchID     string `json:"sub_mchid"`
	WithdrawID   string `json:"withdraw_id"`
	ApplymentID  string `json:"applyment_id"`
	OutRequestNo string `json:"out_request_no"`
}

type queryAnswer struct {
	SubMchID     string `json:"sub_mchid"`
	Status       string `json:"status"`
	WithdrawID   string `json:"withdraw_id"`
	OutRequestNo string `json:"out_request_no"`
	Amount       int64  `json:"amount"`
	Reason       string `json:"reason"`
	Solution     string `json:"solution"`
	// Cancel-withdraw answers nest the application.
	WithdrawlApply *struct {
		ApplymentID  string `json:"applyment_id"`
		OutRequestNo string `json:"out_request_no"`
		State        string `json:"state"`
		FailReason   string `json:"fail_reason"`
		ModifyTime   string `json:"modify_time"`
	} `json:"withdrawl_apply"`
}
