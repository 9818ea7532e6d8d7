package sandbox

import (
	"context"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Server is the sandbox. Create it with New, serve Handler, stop with Close.
type Server struct {
	opts Options
	keys *Keys
	log  *slog.Logger

	faults   *faults
	bills    billState
	inflight *inflight
	callback *http.Client

	mu        sync.Mutex
	merchants map[string]WeChatMerchant
	apps      map[string]AllinpayApp
	balances  map[string]int64
	orders    map[orderKey]*order
	byRef     map[string]*order
	ledger    map[orderKey]*ledgerEntry
	events    eventHeap
	seq       uint64
	nextRef   uint64
	cbSent    int
	cbAcked   int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mux    *http.ServeMux
}

// New returns a running sandbox (its background ticker is started).
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	if opts.SignMode != SignPublicKey && opts.SignMode != SignCertificate {
		return nil, fmt.Errorf("sandbox: sign mode %q (want %s or %s)", opts.SignMode, SignPublicKey, SignCertificate)
	}
	keys := opts.Keys
	if keys == nil {
		var err error
		if keys, err = GenerateKeys(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: opts, keys: keys, log: opts.Logger,
		faults:    newFaults(opts.Seed, opts.Faults),
		inflight:  newInflight(),
		callback:  &http.Client{Timeout: 10 * time.Second},
		merchants: make(map[string]WeChatMerchant),
		apps:      make(map[string]AllinpayApp),
		balances:  make(map[string]int64),
		orders:    make(map[orderKey]*order),
		byRef:     make(map[string]*order),
		ledger:    make(map[orderKey]*ledgerEntry),
		nextRef:   1_000_000,
		bills:     billState{files: make(map[string]billFile)},
		ctx:       ctx, cancel: cancel,
	}
	for _, m := range opts.WeChatMerchants {
		if err := s.AddWeChatMerchant(m); err != nil {
			cancel()
			return nil, err
		}
	}
	for _, a := range opts.AllinpayApps {
		if err := s.AddAllinpayApp(a); err != nil {
			cancel()
			return nil, err
		}
	}
	for k, v := range opts.Balances {
		s.balances[k] = v
	}
	s.routes()
	s.wg.Add(1)
	go s.tick()
	return s, nil
}

// Keys returns the sandbox's provider keys.
func (s *Server) Keys() *Keys { return s.keys }

// PublicKeys returns what clients must trust (as GET /_sandbox/keys).
func (s *Server) PublicKeys() PublicKeys { return s.keys.public(s.opts.SignMode) }

// Handler is the sandbox's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Close stops the ticker and pending callbacks.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// AddWeChatMerchant registers (or replaces) a merchant.
func (s *Server) AddWeChatMerchant(m WeChatMerchant) error {
	if m.MchID == "" || m.Serial == "" || m.PublicKey == nil {
		return fmt.Errorf("sandbox: merchant needs mchid, serial and public key")
	}
	if m.APIv3Key != nil && len(m.APIv3Key) != 32 {
		return fmt.Errorf("sandbox: merchant %s: APIv3 key must be 32 bytes", m.MchID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.merchants[m.MchID] = m
	return nil
}

// AddAllinpayApp registers (or replaces) an Allinpay appId.
func (s *Server) AddAllinpayApp(a AllinpayApp) error {
	if a.AppID == "" || a.PublicKey == nil {
		return fmt.Errorf("sandbox: Allinpay app needs app_id and public key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[a.AppID] = a
	return nil
}

// SetFault sets (a zero Fault clears) the fault of an endpoint or "*".
func (s *Server) SetFault(endpoint string, f Fault) error {
	if endpoint != "*" && !knownEndpoint(endpoint) {
		return fmt.Errorf("sandbox: unknown endpoint %q", endpoint)
	}
	s.faults.set(endpoint, f)
	return nil
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() { s.faults.reset() }

// SetBalance sets the balance (fen) of a mchid or sub_mchid.
func (s *Server) SetBalance(payer string, fen int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.balances[payer] = fen
}

// Advance applies the lifecycle steps due now; with a fake clock, tests
// call it after moving the clock. It returns after callbacks are queued.
func (s *Server) Advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(s.opts.Now())
}

func (s *Server) tick() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.Advance()
		}
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /v3/ecommerce/fund/withdraw", s.wechat(withdrawal.ChannelWeChatEcommerce, EndpointEcommerceSubmit, s.submitWithdraw))
	m.HandleFunc("GET /v3/ecommerce/fund/withdraw/out-request-no/{no}", s.wechat(withdrawal.ChannelWeChatEcommerce, EndpointEcommerceQuery, s.queryByNo))
	m.HandleFunc("GET /v3/ecommerce/fund/withdraw/{ref}", s.wechat(withdrawal.ChannelWeChatEcommerce, EndpointEcommerceQuery, s.queryByRef))
	m.HandleFunc("POST /v3/merchant/fund/withdraw", s.wechat(withdrawal.ChannelWeChatPlatform, EndpointPlatformSubmit, s.submitWithdraw))
	m.HandleFunc("GET /v3/merchant/fund/withdraw/out-request-no/{no}", s.wechat(withdrawal.ChannelWeChatPlatform, EndpointPlatformQuery, s.queryByNo))
	m.HandleFunc("GET /v3/merchant/fund/withdraw/withdraw-id/{ref}", s.wechat(withdrawal.ChannelWeChatPlatform, EndpointPlatformQuery, s.queryByRef))
	m.HandleFunc("POST /v3/mch_operate/risk/withdrawl-apply", s.wechat(withdrawal.ChannelWeChatCancel, EndpointCancelSubmit, s.submitCancel))
	m.HandleFunc("GET /v3/mch_operate/risk/withdrawl-apply/out-request-no/{no}", s.wechat(withdrawal.ChannelWeChatCancel, EndpointCancelQuery, s.queryByNo))
	m.HandleFunc("GET /v3/mch_operate/risk/withdrawl-apply/applyment-id/{ref}", s.wechat(withdrawal.ChannelWeChatCancel, EndpointCancelQuery, s.queryByRef))
	m.HandleFunc("GET /v3/bill/fundflowbill", s.wechat(withdrawal.ChannelWeChatPlatform, EndpointBillApply, s.bill("platform")))
	m.HandleFunc("GET /v3/ecommerce/bill/fundflowbill", s.wechat(withdrawal.ChannelWeChatEcommerce, EndpointBillApply, s.bill("ecommerce")))
	m.HandleFunc("GET /v3/bill/sub-merchant-fundflowbill", s.wechat(withdrawal.ChannelWeChatEcommerce, EndpointBillApply, s.bill("sub")))
	m.HandleFunc("GET /v3/billdownload/file", s.billDownload)
	m.HandleFunc("/_sandbox/bill-faults", s.adminBillFaults)
	m.HandleFunc("POST "+AllinpayGatewayPath, s.allinpay)
	m.HandleFunc("GET /_sandbox/keys", s.adminKeys)
	m.HandleFunc("GET /_sandbox/ledger", s.adminLedger)
	m.HandleFunc("POST /_sandbox/merchants", s.adminMerchants)
	m.HandleFunc("GET /_sandbox/faults", s.adminFaultsGet)
	m.HandleFunc("POST /_sandbox/faults", s.adminFaultsSet)
	m.HandleFunc("DELETE /_sandbox/faults", s.adminFaultsClear)
	m.HandleFunc("POST /_sandbox/balances", s.adminBalances)
	s.mux = m
}

// newRef returns the next provider id: digits, as both providers use
// (Allinpay's withdrawTId is an Integer).
func (s *Server) newRef() string {
	s.nextRef++
	return strconv.FormatUint(s.nextRef, 10)
}

// merchantKey returns the WeChat merchant public key for a request.
func (s *Server) merchant(mchid string) (WeChatMerchant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.merchants[mchid]
	return m, ok
}

func (s *Server) app(appID string) (*rsa.PublicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	return a.PublicKey, ok
}
