package provider

import (
	"errors"
	"fmt"
)

// Recon is an account's daily reconciliation against WeChat Pay's fund-flow
// bills (the "recon" block of a WeChat account; see docs/reconciliation.md).
// Allinpay has no bill API in our documents: its withdrawals are reconciled
// by query only, and a recon block on an Allinpay account is an error.
//
// The file layout settings (column names, business types) are not
// confirmed by WeChat Pay's documents, which show the column set but not the
// values of withdrawals and their refunds; they are settings so that a real
// bill can be matched without a release. Defaults are the sandbox's.
type Recon struct {
	// AccountTypes are the platform's own fund accounts whose bills are
	// reconciled against platform withdrawals (wechatpay_platform):
	// BASIC, OPERATION, FEES. Empty: none.
	AccountTypes []string `yaml:"account_types"`
	// Ecommerce reconciles e-commerce and cancel-withdraw withdrawals
	// against the platform's bill of all sub-merchants
	// (/v3/ecommerce/bill/fundflowbill, account_type ALL, encrypted).
	Ecommerce bool `yaml:"ecommerce"`
	// SubMchIDs instead reconcile them one sub-merchant at a time
	// (/v3/bill/sub-merchant-fundflowbill); SubAccountTypes are the
	// sub-merchant accounts asked for (default BASIC).
	SubMchIDs       []string `yaml:"sub_mchids"`
	SubAccountTypes []string `yaml:"sub_account_types"`

	// WithdrawTypes and RefundTypes are the values of TypeColumn that make
	// a line a withdrawal or the return of a withdrawal's money; lines of
	// any other type are counted and skipped. Unconfirmed.
	WithdrawTypes []string `yaml:"withdraw_types"`
	RefundTypes   []string `yaml:"refund_types"`
	// Column names of the detail header. NumberColumn carries our
	// out_request_no, RefColumn WeChat's withdraw_id, FlowColumn the
	// movement's own id (unique per line). Unconfirmed which column
	// carries which number; a line is matched by either.
	TypeColumn   string `yaml:"type_column"`
	AmountColumn string `yaml:"amount_column"`
	NumberColumn string `yaml:"number_column"`
	RefColumn    string `yaml:"ref_column"`
	FlowColumn   string `yaml:"flow_column"`
	TimeColumn   string `yaml:"time_column"`
	// SummaryFirstColumn is the first header cell of the summary part.
	SummaryFirstColumn string `yaml:"summary_first_column"`
}

// Defaults of Recon's layout settings.
const (
	DefaultReconTypeColumn   = "业务类型"
	DefaultReconAmountColumn = "收支金额(元)"
	DefaultReconNumberColumn = "业务凭证号"
	DefaultReconRefColumn    = "微信支付业务单号"
	DefaultReconFlowColumn   = "资金流水单号"
	DefaultReconTimeColumn   = "记账时间"
	DefaultReconSummaryFirst = "资金流水总笔数"
)

// Normalize fills the defaults and checks the values.
func (r *Recon) Normalize() error {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&r.TypeColumn, DefaultReconTypeColumn)
	def(&r.AmountColumn, DefaultReconAmountColumn)
	def(&r.NumberColumn, DefaultReconNumberColumn)
	def(&r.RefColumn, DefaultReconRefColumn)
	def(&r.FlowColumn, DefaultReconFlowColumn)
	def(&r.TimeColumn, DefaultReconTimeColumn)
	def(&r.SummaryFirstColumn, DefaultReconSummaryFirst)
	if len(r.WithdrawTypes) == 0 {
		r.WithdrawTypes = []string{"提现"}
	}
	if len(r.RefundTypes) == 0 {
		r.RefundTypes = []string{"退票", "提现退票", "提现退回"}
	}
	if len(r.SubMchIDs) > 0 && len(r.SubAccountTypes) == 0 {
		r.SubAccountTypes = []string{"BASIC"}
	}
	var errs []error
	for _, t := range r.AccountTypes {
		if t != "BASIC" && t != "OPERATION" && t != "FEES" {
			errs = append(errs, fmt.Errorf("recon.account_types: %q (want BASIC, OPERATION or FEES)", t))
		}
	}
	for _, t := range r.SubAccountTypes {
		if t != "BASIC" && t != "OPERATION" && t != "FEES" && t != "DEPOSIT" {
			errs = append(errs, fmt.Errorf("recon.sub_account_types: %q (want BASIC, OPERATION, FEES or DEPOSIT)", t))
		}
	}
	if r.Ecommerce && len(r.SubMchIDs) > 0 {
		errs = append(errs, errors.New("recon: ecommerce (every sub-merchant) and sub_mchids would read the same movements twice; choose one"))
	}
	return errors.Join(errs...)
}
