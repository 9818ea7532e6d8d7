package sandbox

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sort"
	"sync"
)

// Ledger is GET /_sandbox/ledger: what the sandbox saw, to prove that
// nothing was paid twice.
type Ledger struct {
	Orders []LedgerOrder `json:"orders"`
	// MaxInFlight is the highest number of concurrent submissions seen per
	// merchant (the balance drawn on: mchid, sub_mchid or appId).
	MaxInFlight map[string]int `json:"max_in_flight"`
	// Callbacks counts callback deliveries attempted and acknowledged.
	CallbacksSent  int `json:"callbacks_sent"`
	CallbacksAcked int `json:"callbacks_acked"`
	// FaultsInjected counts the faults applied so far, by "endpoint
	// fault" (e.g. "ecommerce.submit 5xx", "platform.query SYSTEM_ERROR").
	FaultsInjected map[string]int `json:"faults_injected,omitempty"`
}

// LedgerOrder is one out_request_no the sandbox was asked to create.
type LedgerOrder struct {
	Channel      string `json:"channel"`
	Merchant     string `json:"merchant"`
	OutRequestNo string `json:"out_request_no"`
	Amount       int64  `json:"amount"`
	// Submissions counts the authenticated submit requests received.
	Submissions int `json:"submissions"`
	// Created counts the orders really created; the invariant is ≤ 1.
	Created     int    `json:"created"`
	Status      string `json:"status,omitempty"`
	ProviderRef string `json:"provider_ref,omitempty"`
}

// inflight tracks concurrent submissions per merchant.
type inflight struct {
	mu  sync.Mutex
	now map[string]int
	max map[string]int
}

func newInflight() *inflight {
	return &inflight{now: make(map[string]int), max: make(map[string]int)}
}

func (f *inflight) enter(m string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now[m]++
	if f.now[m] > f.max[m] {
		f.max[m] = f.now[m]
	}
}

func (f *inflight) leave(m string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now[m]--
}

// span counts a submission of merchant m in flight until its answer
// starts: the first byte written, or the connection dropped. It returns
// the writer to answer through and end, which the handler defers for the
// answers never written (the client went away). Ending at the answer, not
// when the handler returns, matters: a client may send the merchant's next
// submission as soon as it has read this answer, and that one must not
// find this one still counted.
func (f *inflight) span(w http.ResponseWriter, m string) (http.ResponseWriter, func()) {
	f.enter(m)
	a := &answering{ResponseWriter: w}
	a.end = sync.OnceFunc(func() { f.leave(m) })
	return a, a.end
}

// answering calls end before the first byte of the answer goes out.
type answering struct {
	http.ResponseWriter
	end func()
}

func (a *answering) WriteHeader(code int) {
	a.end()
	a.ResponseWriter.WriteHeader(code)
}

func (a *answering) Write(b []byte) (int, error) {
	a.end()
	return a.ResponseWriter.Write(b)
}

// Hijack serves dropConnection: the dropped answer ends the span too.
func (a *answering) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	a.end()
	hj, ok := a.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("sandbox: connection cannot be hijacked")
	}
	return hj.Hijack()
}

func (f *inflight) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.max))
	for k, v := range f.max {
		out[k] = v
	}
	return out
}

// ledgerEntry is the mutable record behind a LedgerOrder.
type ledgerEntry struct {
	LedgerOrder
	o *order
}

// Ledger returns a snapshot, ordered by channel, merchant, out_request_no.
func (s *Server) Ledger() Ledger {
	s.mu.Lock()
	s.advance(s.opts.Now())
	l := Ledger{Orders: make([]LedgerOrder, 0, len(s.ledger)), CallbacksSent: s.cbSent, CallbacksAcked: s.cbAcked}
	for _, e := range s.ledger {
		lo := e.LedgerOrder
		if e.o != nil {
			lo.Status, lo.ProviderRef = e.o.status, e.o.ref
		}
		l.Orders = append(l.Orders, lo)
	}
	s.mu.Unlock()
	l.MaxInFlight = s.inflight.snapshot()
	l.FaultsInjected = s.faults.injectedSnapshot()
	sort.Slice(l.Orders, func(i, j int) bool {
		a, b := l.Orders[i], l.Orders[j]
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		if a.Merchant != b.Merchant {
			return a.Merchant < b.Merchant
		}
		return a.OutRequestNo < b.OutRequestNo
	})
	return l
}

// Find returns the ledger line of an out_request_no on a channel.
func (l Ledger) Find(channel, outRequestNo string) (LedgerOrder, bool) {
	for _, o := range l.Orders {
		if o.Channel == channel && o.OutRequestNo == outRequestNo {
			return o, true
		}
	}
	return LedgerOrder{}, false
}
