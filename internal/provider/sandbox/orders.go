package sandbox

import (
	"container/heap"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// order is one order the sandbox created.
type order struct {
	channel      withdrawal.Channel
	merchant     string // mchid or Allinpay appId: the namespace of out_request_no
	payer        string // the balance drawn on (mchid / sub_mchid)
	outRequestNo string
	ref          string // withdraw_id / applyment_id
	amount       int64
	paramsHash   [32]byte
	answer       []byte // the stored success answer, replayed to duplicates
	created      time.Time
	updated      time.Time
	plan         string
	status       string
	reason       string
	notifyURL    string
	// query echo fields
	subMchID, remark, bankMemo, accountType string
	// Allinpay lines; their status follows the order's.
	lines []allinpayLine
	// resubmitted is set when an INIT order was driven by a resend.
	resubmitted bool
	refunded    bool // balance returned
	// refundedAt is when the money came back (the bill's refund line).
	refundedAt time.Time
}

// orderKey identifies an order: out_request_no is unique per channel and
// merchant.
type orderKey struct {
	channel  withdrawal.Channel
	merchant string
	no       string
}

// event is a due status change.
type event struct {
	at     time.Time
	seq    uint64
	o      *order
	status string
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// planFor decides an order's outcome from the seed and its identity only,
// so that concurrent arrival order does not change the run.
func (s *Server) planFor(o *order) string {
	if s.opts.Lifecycle.Plan != nil {
		if p := s.opts.Lifecycle.Plan(OrderInfo{Channel: string(o.channel), Merchant: o.merchant,
			OutRequestNo: o.outRequestNo, Amount: o.amount, Remark: o.remark}); p != "" {
			return p
		}
	}
	h := fnv.New64a()
	h.Write([]byte(string(o.channel) + "\x00" + o.merchant + "\x00" + o.outRequestNo))
	r := rand.New(rand.NewPCG(s.opts.Seed, h.Sum64())).Float64()
	l := s.opts.Lifecycle
	for _, c := range []struct {
		p    float64
		plan string
	}{{l.PFail, PlanFail}, {l.PClose, PlanClose}, {l.PRefund, PlanRefund}, {l.PInit, PlanInit}} {
		if r < c.p {
			return c.plan
		}
		r -= c.p
	}
	return PlanSuccess
}

// statusNames are the channel's spellings of the lifecycle.
type statusNames struct{ accepted, success, fail, close, refund, init string }

func namesOf(ch withdrawal.Channel) statusNames {
	switch ch {
	case withdrawal.ChannelWeChatCancel:
		// SUBMITTED is WeChat's documented value; the final ones are the
		// unconfirmed rows of provider.Table.
		return statusNames{"SUBMITTED", "PAY_SUCCEED", "PAY_FAIL", "REJECTED", "BANK_REFUNDED", "SUBMITTED"}
	case withdrawal.ChannelAllinpayShopoint:
		// 1 processing, 2 success (unconfirmed), 3 failed.
		return statusNames{"1", "2", "3", "3", "3", "1"}
	default:
		return statusNames{"CREATE_SUCCESS", "SUCCESS", "FAIL", "CLOSE", "REFUND", "INIT"}
	}
}

// start sets the first status of a new order and schedules the rest.
// Callers hold s.mu.
func (s *Server) start(o *order, now time.Time) {
	o.created, o.updated = now, now
	o.plan = s.planFor(o)
	n := namesOf(o.channel)
	if o.plan == PlanInit && o.channel != withdrawal.ChannelWeChatCancel && o.channel != withdrawal.ChannelAllinpayShopoint {
		o.status = n.init // waits for a resend, see drive
		return
	}
	o.status = n.accepted
	s.schedule(o, now)
}

// drive moves an INIT order on when the identical request is resent.
func (s *Server) drive(o *order, now time.Time) {
	if o.plan != PlanInit || o.resubmitted {
		return
	}
	o.resubmitted = true
	o.status, o.updated = namesOf(o.channel).accepted, now
	s.schedule(o, now)
}

func (s *Server) schedule(o *order, from time.Time) {
	l := s.opts.Lifecycle
	n := namesOf(o.channel)
	at := from.Add(l.FinalDelay)
	switch o.plan {
	case PlanFail:
		s.push(at, o, n.fail)
	case PlanClose:
		s.push(at, o, n.close)
	case PlanRefund:
		s.push(at, o, n.success)
		s.push(at.Add(l.RefundDelay), o, n.refund)
	default:
		s.push(at, o, n.success)
	}
}

func (s *Server) push(at time.Time, o *order, status string) {
	s.seq++
	heap.Push(&s.events, event{at: at, seq: s.seq, o: o, status: status})
}

// advance applies every status change due at now. Callers hold s.mu.
func (s *Server) advance(now time.Time) {
	for len(s.events) > 0 && !s.events[0].at.After(now) {
		e := heap.Pop(&s.events).(event)
		o := e.o
		if o.status == e.status {
			continue
		}
		o.status, o.updated = e.status, e.at
		n := namesOf(o.channel)
		switch e.status {
		case n.fail, n.close, n.refund:
			o.reason = reasonOf(e.status)
			if !o.refunded && o.channel != withdrawal.ChannelAllinpayShopoint {
				o.refunded, o.refundedAt = true, e.at
				s.balances[o.payer] += o.amount // the money comes back
			}
		}
		for i := range o.lines {
			o.lines[i].status = o.status
		}
		if o.notifyURL != "" {
			s.notify(o)
		}
	}
}

func reasonOf(status string) string {
	switch status {
	case "FAIL", "PAY_FAIL", "3":
		return "sandbox: 卡号错误"
	case "CLOSE", "REJECTED":
		return "sandbox: 关单"
	case "REFUND", "BANK_REFUNDED":
		return "sandbox: 退票"
	}
	return ""
}

// visible reports whether queries may see the order at now.
func (s *Server) visible(o *order, now time.Time) bool {
	l := s.opts.Lifecycle
	if l.VisibleNextMorning {
		c := o.created.In(withdrawal.Beijing)
		next := time.Date(c.Year(), c.Month(), c.Day()+1, 8, 0, 0, 0, withdrawal.Beijing)
		return !now.Before(next)
	}
	return now.Sub(o.created) >= l.VisibleAfter
}
