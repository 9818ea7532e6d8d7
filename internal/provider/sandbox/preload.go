package sandbox

import (
	"fmt"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// PreloadedOrder is an order that the sandbox takes as created earlier, for
// benchmarks that start from a database of submitted withdrawals (the
// 08:00 burst of status queries) without paying two signatures per order to
// submit them first.
type PreloadedOrder struct {
	Channel      withdrawal.Channel // a WeChat withdraw channel
	MchID        string             // the registered merchant
	SubMchID     string             // e-commerce only
	OutRequestNo string
	ProviderRef  string // withdraw_id; the stored provider_ref of the row
	Amount       int64
	AccountType  string
	// Status is the order's status, kept as it is (no lifecycle):
	// CREATE_SUCCESS, SUCCESS, FAIL, CLOSE, REFUND.
	Status  string
	Created time.Time
}

// Preload adds orders as if they had been submitted and created at their
// Created time, each once, with no balance drawn. The queries see them like
// any other order. A number already known is an error.
func (s *Server) Preload(orders ...PreloadedOrder) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range orders {
		if p.Channel != withdrawal.ChannelWeChatEcommerce && p.Channel != withdrawal.ChannelWeChatPlatform {
			return fmt.Errorf("sandbox: preload: channel %s is not a WeChat withdraw", p.Channel)
		}
		k := orderKey{p.Channel, p.MchID, p.OutRequestNo}
		if _, ok := s.orders[k]; ok {
			return fmt.Errorf("sandbox: preload: %s already exists", p.OutRequestNo)
		}
		payer := p.MchID
		if p.Channel == withdrawal.ChannelWeChatEcommerce {
			payer = p.SubMchID
		}
		o := &order{channel: p.Channel, merchant: p.MchID, payer: payer, outRequestNo: p.OutRequestNo, ref: p.ProviderRef,
			amount: p.Amount, created: p.Created, updated: p.Created, plan: PlanSuccess, status: p.Status,
			reason: reasonOf(p.Status), subMchID: p.SubMchID, accountType: p.AccountType}
		s.orders[k] = o
		s.byRef[string(p.Channel)+"/"+o.ref] = o
		s.ledger[k] = &ledgerEntry{LedgerOrder: LedgerOrder{Channel: string(p.Channel), Merchant: p.MchID,
			OutRequestNo: p.OutRequestNo, Amount: p.Amount, Submissions: 1, Created: 1}, o: o}
	}
	return nil
}
