package recon

import (
	"strings"
	"testing"

	"github.com/paycore/withdraw/internal/provider"
)

func layout(t *testing.T) *provider.Recon {
	t.Helper()
	r := &provider.Recon{}
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	return r
}

const bill = "\ufeff记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号\n" +
	"`2024-05-01 10:00:00,`1000001,`100000101,`提现,`提现,`支出,`12.34,`100.00,`system,\"`a, b\",`W1\n" +
	"`2024-05-01 11:00:00,`4200000001,`200000101,`交易,`交易,`收入,`5.00,`105.00,`system,`,`T1\n" +
	"`2024-05-01 12:00:00,`1000001,`100000102,`退票,`退票,`收入,`12.34,`117.34,`system,`,`W1\n" +
	"资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n" +
	"`3.0,`2.0,`17.34,`1.0,`12.34\n"

func TestParseBill(t *testing.T) {
	var lines []Line
	sum, err := ParseBill(strings.NewReader(bill), layout(t), func(l Line) error { lines = append(lines, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lines != 3 || sum.Declared != 3 || sum.Income != 1734 || sum.Expense != 1234 {
		t.Errorf("summary %+v", sum)
	}
	want := []Line{
		{N: 1, Kind: LineWithdraw, Type: "提现", Number: "W1", Ref: "1000001", Flow: "100000101", BookedAt: "2024-05-01 10:00:00", Fen: 1234},
		{N: 2, Kind: LineOther, Type: "交易", Number: "T1", Ref: "4200000001", Flow: "200000101", BookedAt: "2024-05-01 11:00:00", Fen: 500},
		{N: 3, Kind: LineRefund, Type: "退票", Number: "W1", Ref: "1000001", Flow: "100000102", BookedAt: "2024-05-01 12:00:00", Fen: 1234},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %+v", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, lines[i], want[i])
		}
	}
}

func TestParseBillRefusesBrokenFiles(t *testing.T) {
	noop := func(Line) error { return nil }
	cases := map[string]string{
		"truncated":       bill[:strings.Index(bill, "资金流水总笔数")],
		"count differs":   strings.Replace(bill, "`3.0,", "`4.0,", 1),
		"bad amount":      strings.Replace(bill, "`12.34,`100.00", "`12.345,`100.00", 1),
		"no type column":  strings.Replace(bill, ",业务类型,", ",类型,", 1),
		"no number or id": strings.Replace(strings.Replace(bill, "业务凭证号", "x", 1), "微信支付业务单号", "y", 1),
	}
	for name, in := range cases {
		if _, err := ParseBill(strings.NewReader(in), layout(t), noop); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
