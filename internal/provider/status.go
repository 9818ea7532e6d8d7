package provider

import (
	"github.com/paycore/withdraw/internal/withdrawal"
)

// StatusMapping maps one provider status to an internal state.
type StatusMapping struct {
	State withdrawal.State
	// Resubmit: the provider wants the identical request sent again.
	Resubmit bool
	// Unconfirmed marks values taken from secondary sources.
	Unconfirmed bool
}

// WeChatWithdrawStatuses maps the status of the e-commerce and platform
// withdraw queries and callbacks (seed 003).
var WeChatWithdrawStatuses = map[string]StatusMapping{
	"CREATE_SUCCESS": {State: withdrawal.StateSubmitted},
	"SUCCESS":        {State: withdrawal.StateSucceeded},
	"FAIL":           {State: withdrawal.StateFailed},
	"CLOSE":          {State: withdrawal.StateFailed},
	"REFUND":         {State: withdrawal.StateReversed},
	// INIT is not a failure: 业务单已创建, 需要重入驱动到受理成功. The order
	// exists; resend the identical request (or wait up to 7 days).
	"INIT": {State: withdrawal.StateSubmitted, Resubmit: true},
}

// WeChatCancelStates maps withdrawl_apply.state of the cancel-withdraw
// query. The value set is unconfirmed (PROVIDERS.md): BANK_REFUNDED was
// seen; a newer flow documents REVIEWING/REJECTED/…/PAY_SUCCEED/PAY_FAIL.
// A value not listed leaves the state unchanged and is kept raw.
var WeChatCancelStates = map[string]StatusMapping{
	"REVIEWING":     {State: withdrawal.StateSubmitted, Unconfirmed: true},
	"AUDITING":      {State: withdrawal.StateSubmitted, Unconfirmed: true},
	"APPROVED":      {State: withdrawal.StateSubmitted, Unconfirmed: true},
	"PAYING":        {State: withdrawal.StateSubmitted, Unconfirmed: true},
	"PAY_SUCCEED":   {State: withdrawal.StateSucceeded, Unconfirmed: true},
	"PAY_FAIL":      {State: withdrawal.StateFailed, Unconfirmed: true},
	"REJECTED":      {State: withdrawal.StateFailed, Unconfirmed: true},
	"BANK_REFUNDED": {State: withdrawal.StateReversed},
}

// AllinpayWithdrawStatuses maps Allinpay withdrawStatus. Only 1 (提现中) and
// 3 (提现失败) are documented (seed 004, the submit answer). The query API
// is unconfirmed; 2 = success is the sandbox's convention. Accounts can
// override the table (Account.AllinpayStatuses).
var AllinpayWithdrawStatuses = map[string]StatusMapping{
	"1": {State: withdrawal.StateSubmitted},
	"2": {State: withdrawal.StateSucceeded, Unconfirmed: true},
	"3": {State: withdrawal.StateFailed},
}

// StatusTable returns the status table of a channel.
func StatusTable(ch withdrawal.Channel) map[string]StatusMapping {
	switch ch {
	case withdrawal.ChannelWeChatEcommerce, withdrawal.ChannelWeChatPlatform:
		return WeChatWithdrawStatuses
	case withdrawal.ChannelWeChatCancel:
		return WeChatCancelStates
	case withdrawal.ChannelAllinpayShopoint:
		return AllinpayWithdrawStatuses
	}
	return nil
}

// MapStatus maps a raw provider status of a channel to the internal state.
// ok is false for a status not in the table: the caller keeps the current
// state and records the raw status.
func MapStatus(ch withdrawal.Channel, raw string) (StatusMapping, bool) {
	m, ok := StatusTable(ch)[raw]
	return m, ok
}
