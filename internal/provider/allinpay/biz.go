package allinpay

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Gateway methods.
const (
	MethodWithdraw = "allinpay.shopoint.fundService.withdraw"
	Version        = "1.0"
	// TimestampLayout is yyyy-MM-dd HH:mm:ss, Beijing time.
	TimestampLayout = "2006-01-02 15:04:05"
)

// BizCodec turns the bizContent JSON into the form value and back. Whether
// Allinpay encrypts bizContent is unconfirmed; PlainJSON is the default.
type BizCodec interface {
	Encode(biz []byte) (string, error)
}

// PlainJSON sends bizContent as the JSON text itself.
type PlainJSON struct{}

// Encode implements BizCodec.
func (PlainJSON) Encode(biz []byte) (string, error) { return string(biz), nil }

// WithdrawBiz is the bizContent of a withdraw.
type WithdrawBiz struct {
	OrderID string           `json:"orderId"`
	Details []WithdrawDetail `json:"details"`
}

// WithdrawDetail is one line: exactly one of AccountUserID, ExternalCode,
// IsPlatform; WithdrawAmount in yuan (BigDecimal, two places).
type WithdrawDetail struct {
	AccountUserID  *int64      `json:"accountUserId,omitempty"`
	ExternalCode   string      `json:"externalCode,omitempty"`
	IsPlatform     *bool       `json:"isPlatform,omitempty"`
	WithdrawAmount json.Number `json:"withdrawAmount"`
	Summary        string      `json:"summary,omitempty"`
}

// QueryBiz is the bizContent of the status query (unconfirmed).
type QueryBiz struct {
	OrderID string `json:"orderId"`
}

// BuildWithdrawBiz converts a command into the withdraw bizContent.
func BuildWithdrawBiz(cmd *withdrawal.Command) (WithdrawBiz, error) {
	if len(cmd.Details) == 0 {
		return WithdrawBiz{}, fmt.Errorf("allinpay: command has no details")
	}
	b := WithdrawBiz{OrderID: cmd.OutRequestNo, Details: make([]WithdrawDetail, len(cmd.Details))}
	for i, d := range cmd.Details {
		if d.Amount <= 0 {
			return WithdrawBiz{}, fmt.Errorf("allinpay: details[%d]: amount must be positive", i)
		}
		w := WithdrawDetail{WithdrawAmount: json.Number(withdrawal.FenToYuan(d.Amount)), Summary: d.Summary}
		switch {
		case d.AccountUserID != nil:
			id := *d.AccountUserID
			w.AccountUserID = &id
		case d.ExternalCode != "":
			w.ExternalCode = d.ExternalCode
		case d.IsPlatform:
			t := true
			w.IsPlatform = &t
		default:
			return WithdrawBiz{}, fmt.Errorf("allinpay: details[%d]: no account_user_id, external_code or is_platform", i)
		}
		b.Details[i] = w
	}
	return b, nil
}

// answer is a gateway answer.
type answer struct {
	Code json.Number     `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

// answerData is the data of the withdraw answer and of the query answer.
type answerData struct {
	OrderID string         `json:"orderId"`
	Details []answerDetail `json:"details"`
}

type answerDetail struct {
	AccountUserID      *int64      `json:"accountUserId"`
	ExternalCode       string      `json:"externalCode"`
	IsPlatform         bool        `json:"isPlatform"`
	WithdrawTID        json.Number `json:"withdrawTId"`
	WithdrawAmount     json.Number `json:"withdrawAmount"`
	Fee                json.Number `json:"fee"`
	WithdrawStatus     json.Number `json:"withdrawStatus"`
	WithdrawStatusDesc string      `json:"withdrawStatusDesc"`
}

// summarize turns the details of an answer into the outcome fields. All
// lines in one status: that status. Mixed: the raw statuses joined by ','
// and SUBMITTED while any line is processing; a mix of final success and
// failure has no internal state (a partial payout): State stays "" and
// Alert is set for an operator.
func summarize(table map[string]provider.StatusMapping, d answerData, r *provider.QueryResult) error {
	if len(d.Details) == 0 {
		return fmt.Errorf("answer has no details")
	}
	var refs, statuses []string
	states := make(map[withdrawal.State]bool)
	same := true
	for i, x := range d.Details {
		st := x.WithdrawStatus.String()
		m, ok := table[st]
		if !ok {
			return fmt.Errorf("details[%d]: unknown withdrawStatus %q", i, st)
		}
		ds := provider.DetailStatus{ProviderRef: x.WithdrawTID.String(), Status: st, Description: x.WithdrawStatusDesc,
			State: m.State, ExternalCode: x.ExternalCode, IsPlatformLine: x.IsPlatform}
		if x.AccountUserID != nil {
			ds.AccountUserID = *x.AccountUserID
		}
		if x.WithdrawAmount != "" {
			fen, err := withdrawal.YuanToFen(x.WithdrawAmount.String())
			if err != nil {
				return fmt.Errorf("details[%d]: %w", i, err)
			}
			ds.AmountFen = fen
			r.Amount += fen
		}
		if x.Fee != "" {
			fee, err := withdrawal.YuanToFen(x.Fee.String())
			if err != nil {
				return fmt.Errorf("details[%d] fee: %w", i, err)
			}
			ds.FeeFen = fee
		}
		r.Details = append(r.Details, ds)
		refs = append(refs, ds.ProviderRef)
		statuses = append(statuses, st)
		states[m.State] = true
		same = same && st == statuses[0]
		if m.State == withdrawal.StateFailed && r.Reason == "" {
			r.Reason = x.WithdrawStatusDesc
		}
	}
	r.ProviderRef = strings.Join(refs, ",")
	if same {
		r.ProviderStatus = statuses[0]
		r.State = r.Details[0].State
		return nil
	}
	r.ProviderStatus = strings.Join(statuses, ",")
	if states[withdrawal.StateSubmitted] {
		r.State = withdrawal.StateSubmitted
	} else {
		r.Alert = true
	}
	return nil
}
