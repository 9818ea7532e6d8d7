package providertest

import (
	"encoding/json"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Command returns a valid command of a channel for the test merchants,
// with the given out_request_no and amount (fen).
func Command(ch withdrawal.Channel, outRequestNo string, amount int64) *withdrawal.Command {
	c := &withdrawal.Command{Channel: ch, Account: withdrawal.DefaultAccount, OutRequestNo: outRequestNo, Amount: amount}
	switch ch {
	case withdrawal.ChannelWeChatEcommerce:
		c.SubMchID, c.AccountType, c.Remark, c.BankMemo = SubMchID, "BASIC", "交易提现", "xx平台提现"
	case withdrawal.ChannelWeChatPlatform:
		c.AccountType, c.Remark, c.BankMemo = "BASIC", "交易提现", "xx 平台提现"
	case withdrawal.ChannelWeChatCancel:
		c.SubMchID, c.OutAccountType, c.PayeeType, c.PayeeMchID = SubMchID, "BASIC_ACCOUNT", "OTHER_MERCHANT", "1900000111"
		c.Remark = "特殊理由"
		c.PayeeInfo = &withdrawal.PayeeInfo{
			AccountType: "ACCOUNT_TYPE_CORPORATE",
			BankAccountInfo: &withdrawal.BankAccountInfo{AccountBank: "工商银行", AccountName: "测试有限公司",
				AccountNumber: "6222000011112222", BankBranchID: "402713354941"},
			IdentityInfo: &withdrawal.IdentityInfo{IDDocType: "IDENTIFICATION_TYPE_IDCARD", IdentificationName: "张三",
				IdentificationNo: "110101199003070000"},
		}
		c.ProofMediaList = json.RawMessage(`{"proof_payee_media":[{"proof_media":"media-1","proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"}]}`)
	case withdrawal.ChannelAllinpayShopoint:
		c.Amount = 0
		id := int64(100)
		half := amount / 2
		c.Details = []withdrawal.AllinpayDetail{
			{AccountUserID: &id, Amount: amount - half, Summary: "提现"},
			{IsPlatform: true, Amount: half},
		}
		if half == 0 {
			c.Details = c.Details[:1]
		}
	}
	return c
}
