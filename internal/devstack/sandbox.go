package devstack

import (
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Magic amounts: the fen part of a withdrawal's amount (amount % 100)
// decides what the devstack's sandbox does with it, like a card network's
// test card numbers. Any other amount succeeds.
const (
	// MagicFail (amounts ending in .41 yuan): the provider reports FAIL (WeChat "卡号错误";
	// Allinpay status 3). Final state FAILED.
	MagicFail = 41
	// MagicClose (….42): the provider closes the order (CLOSE; the cancel
	// channel REJECTED). Final state FAILED.
	MagicClose = 42
	// MagicRefund (….43): paid out, then bounced by the bank (退票) a few
	// seconds later. SUCCEEDED, then REVERSED. WeChat channels only
	// (Allinpay knows no refund: such an amount just succeeds there).
	MagicRefund = 43
	// MagicInit (….44): the order stays INIT until the byte-identical
	// request is sent again (WeChat e-commerce and platform only): the
	// orchestrator re-sends it, never with a new out_request_no.
	MagicInit = 44
)

// magicPlan is the sandbox's Lifecycle.Plan of the devstack.
func magicPlan(o sandbox.OrderInfo) string {
	switch o.Amount % 100 {
	case MagicFail:
		return sandbox.PlanFail
	case MagicClose:
		return sandbox.PlanClose
	case MagicRefund:
		if o.Channel == string(withdrawal.ChannelAllinpayShopoint) {
			return sandbox.PlanSuccess // Allinpay has no refund status
		}
		return sandbox.PlanRefund
	case MagicInit:
		return sandbox.PlanInit
	}
	return sandbox.PlanSuccess
}

// ExpectedFinal is the final state the devstack's sandbox leads a valid
// withdrawal of this channel and amount (total, fen) to.
func ExpectedFinal(ch withdrawal.Channel, amount int64) withdrawal.State {
	switch amount % 100 {
	case MagicFail, MagicClose:
		return withdrawal.StateFailed
	case MagicRefund:
		if ch.IsWeChat() {
			return withdrawal.StateReversed
		}
	}
	return withdrawal.StateSucceeded
}
