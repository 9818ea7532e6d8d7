// Package withdrawal is the domain of the orchestrator: the withdrawal
// command each upstream service sends, its validation, the state machine a
// withdrawal moves through, and the events published for every change.
//
// Nothing in this package does I/O. Money is always an int64 number of fen
// (分); conversion to a provider's decimal format lives with that provider.
package withdrawal

import "fmt"

// Channel names one provider API that can pay a withdrawal out. The values
// are part of the command and event contracts.
type Channel string

// The four channels (docs/providers.md).
const (
	// ChannelWeChatEcommerce is WeChat Pay v3 二级商户余额提现
	// (POST /v3/ecommerce/fund/withdraw).
	ChannelWeChatEcommerce Channel = "wechatpay_ecommerce"
	// ChannelWeChatPlatform is WeChat Pay v3 电商平台提现
	// (POST /v3/merchant/fund/withdraw).
	ChannelWeChatPlatform Channel = "wechatpay_platform"
	// ChannelWeChatCancel is WeChat Pay v3 注销商户提现申请
	// (POST /v3/mch_operate/risk/withdrawl-apply).
	ChannelWeChatCancel Channel = "wechatpay_cancel"
	// ChannelAllinpayShopoint is Allinpay allinpay.shopoint.fundService.withdraw.
	ChannelAllinpayShopoint Channel = "allinpay_shopoint"
)

// Channels lists every supported channel in a stable order.
var Channels = []Channel{ChannelWeChatEcommerce, ChannelWeChatPlatform, ChannelWeChatCancel, ChannelAllinpayShopoint}

// Valid reports whether c is one of the supported channels.
func (c Channel) Valid() bool {
	switch c {
	case ChannelWeChatEcommerce, ChannelWeChatPlatform, ChannelWeChatCancel, ChannelAllinpayShopoint:
		return true
	}
	return false
}

// IsWeChat reports whether the channel is served by WeChat Pay API v3.
func (c Channel) IsWeChat() bool {
	return c == ChannelWeChatEcommerce || c == ChannelWeChatPlatform || c == ChannelWeChatCancel
}

// MaxOutRequestNoLen is the longest out_request_no the channel's provider
// accepts: 32 for WeChat (string[1,32]), 60 for Allinpay's orderId.
func (c Channel) MaxOutRequestNoLen() int {
	if c == ChannelAllinpayShopoint {
		return 60
	}
	return 32
}

// MaxAmountFen is the largest single withdrawal the channel accepts, in fen.
//
// Only the cancel channel documents a limit (金额不能超过100万元). Allinpay's
// withdrawAmount is BigDecimal(14) with two decimals. For the other two WeChat
// channels no limit is published; we cap them at 1亿元 (1e10 fen) as our own
// guard against a fat-fingered amount, not as the provider's rule.
func (c Channel) MaxAmountFen() int64 {
	switch c {
	case ChannelWeChatCancel:
		return 100_000_000 // 1,000,000.00 yuan
	case ChannelAllinpayShopoint:
		return 99_999_999_999_999 // 999,999,999,999.99 yuan: 14 digits, scale 2
	default:
		return 10_000_000_000 // 100,000,000.00 yuan, our guard
	}
}

// String implements fmt.Stringer.
func (c Channel) String() string { return string(c) }

// ParseChannel returns the channel named s or an error naming the valid ones.
func ParseChannel(s string) (Channel, error) {
	c := Channel(s)
	if !c.Valid() {
		return "", fmt.Errorf("unknown channel %q (want one of %v)", s, Channels)
	}
	return c, nil
}
