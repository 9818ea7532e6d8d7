package withdrawal

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestPayeeInfoMasked(t *testing.T) {
	p := &PayeeInfo{
		AccountType: "ACCOUNT_TYPE_CORPORATE",
		BankAccountInfo: &BankAccountInfo{AccountBank: "工商银行", AccountName: "某某科技有限公司", AccountNumber: "6222020200112233445",
			BankBranchID: "402713354941", BankName: "中国工商银行"},
		IdentityInfo: &IdentityInfo{IDDocType: "IDENTIFICATION_TYPE_IDCARD", IdentificationName: "张三", IdentificationNo: "110101199003074477"},
	}
	m := p.Masked()
	for _, c := range []struct{ field, got, want string }{
		{"account_name", m.BankAccountInfo.AccountName, "某*******"},
		{"account_number", m.BankAccountInfo.AccountNumber, "***************3445"},
		{"identification_name", m.IdentityInfo.IdentificationName, "张*"},
		{"identification_no", m.IdentityInfo.IdentificationNo, "**************4477"},
		// Not sensitive: shown as sent.
		{"account_bank", m.BankAccountInfo.AccountBank, "工商银行"},
		{"bank_branch_id", m.BankAccountInfo.BankBranchID, "402713354941"},
		{"id_doc_type", m.IdentityInfo.IDDocType, "IDENTIFICATION_TYPE_IDCARD"},
	} {
		if c.got != c.want {
			t.Errorf("%s masked to %q, want %q", c.field, c.got, c.want)
		}
	}
	if p.BankAccountInfo.AccountName != "某某科技有限公司" || p.IdentityInfo.IdentificationName != "张三" {
		t.Error("Masked changed the original")
	}
	if (*PayeeInfo)(nil).Masked() != nil {
		t.Error("nil payee masked to non-nil")
	}

	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "payee", p)
	for _, secret := range []string{"有限公司", "科技", "张三", "6222020200", "1101011990"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("log line shows %q: %s", secret, b.String())
		}
	}
	if !json.Valid([]byte(strings.TrimSpace(b.String()))) {
		t.Errorf("log line %s", b.String())
	}
}
