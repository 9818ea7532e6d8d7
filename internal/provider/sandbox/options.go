// Package sandbox is an HTTP server that behaves like WeChat Pay API v3 (the
// three withdraw channels) and the Allinpay shopoint gateway, so that
// development, tests and benchmarks exercise the real client code over real
// HTTP: it verifies request signatures, signs answers, validates fields,
// keeps orders idempotent on out_request_no, moves them through the
// providers' lifecycles, sends signed and encrypted callbacks, injects
// faults, and keeps a ledger that proves nothing was paid twice.
package sandbox

import (
	"crypto/rsa"
	"log/slog"
	"time"
)

// Options configure a Server. The zero value is usable: keys are generated,
// orders succeed after FinalDelay, queries see orders at once.
type Options struct {
	// Seed makes lifecycle choices and fault injection reproducible. The
	// lifecycle of an order depends only on (Seed, channel, merchant,
	// out_request_no), not on arrival order.
	Seed uint64
	// Keys are the provider's keys; nil means generated at start.
	Keys *Keys
	// SignMode is how WeChat answers are signed: SignPublicKey (default,
	// Wechatpay-Serial: PUB_KEY_ID_…) or SignCertificate (certificate serial).
	SignMode string
	// WeChatMerchants and AllinpayApps are the merchants whose requests are
	// accepted; more can be registered at run time (POST /_sandbox/merchants).
	WeChatMerchants []WeChatMerchant
	AllinpayApps    []AllinpayApp
	// DefaultBalance is every WeChat balance in fen unless Balances names it
	// (keyed by the mchid or sub_mchid drawn on). Default 1e12 fen.
	DefaultBalance int64
	Balances       map[string]int64
	// Lifecycle of created orders.
	Lifecycle Lifecycle
	// Faults per endpoint (Endpoint* names, or "*" for all).
	Faults map[string]Fault
	// AllinpayQueryMethod is the gateway method answered as the status query
	// (unconfirmed at Allinpay; must match the client's query_method).
	AllinpayQueryMethod string
	// CallbackDelays are the waits before each callback retry; default
	// 1s, 5s, 30s, 2m, 10m (WeChat retries for up to 24 h).
	CallbackDelays []time.Duration
	// Now is the clock; nil means time.Now. Tests may pass a fake clock and
	// call Server.Advance.
	Now func() time.Time
	// TickInterval is how often due lifecycle steps are applied in the
	// background (they are also applied on every request). Default 20ms.
	TickInterval time.Duration
	Logger       *slog.Logger

	// BillReadyHour is the Beijing hour of the next day from which a day's
	// fund-flow bill exists (WeChat: generated from 09:00); before it the
	// bill requests answer NO_STATEMENT_EXIST. Default 9; negative: at once
	// (accelerated sandboxes and tests).
	BillReadyHour int
	// BillPartLines splits encrypted bills into parts of about this many
	// lines each (WeChat splits very large files); 0 means one part.
	BillPartLines int
}

// Sign modes.
const (
	SignPublicKey   = "public_key"
	SignCertificate = "certificate"
)

// Lifecycle is how orders evolve after creation. Probabilities are of the
// final outcome; what remains is SUCCESS.
type Lifecycle struct {
	// FinalDelay: CREATE_SUCCESS (Allinpay 1) → final status.
	FinalDelay time.Duration
	// RefundDelay: SUCCESS → REFUND for refunded orders.
	RefundDelay time.Duration
	PFail       float64
	PClose      float64
	PRefund     float64
	// PInit: the order stays INIT until the identical request is resent.
	PInit float64
	// VisibleAfter: queries answer ORDER_NOT_EXISTS until this long after
	// creation. VisibleNextMorning instead mimics WeChat's rule (visible
	// from 08:00 Beijing the day after creation).
	VisibleAfter       time.Duration
	VisibleNextMorning bool
	// Plan, when set, decides the outcome of an order instead of the
	// probabilities: return one of the Plan* values, or "" for random.
	Plan func(o OrderInfo) string
}

// Planned outcomes.
const (
	PlanSuccess = "SUCCESS"
	PlanFail    = "FAIL"
	PlanClose   = "CLOSE"
	PlanRefund  = "REFUND"
	PlanInit    = "INIT"
)

// OrderInfo describes an order to Lifecycle.Plan.
type OrderInfo struct {
	Channel      string
	Merchant     string
	OutRequestNo string
	Amount       int64
	Remark       string
}

// WeChatMerchant is a merchant allowed to call the WeChat endpoints.
type WeChatMerchant struct {
	MchID string
	// Serial is the merchant API certificate serial its requests name.
	Serial    string
	PublicKey *rsa.PublicKey
	// APIv3Key encrypts the callbacks sent to it (32 bytes; nil: no
	// callbacks).
	APIv3Key []byte
}

// AllinpayApp is an Allinpay appId allowed to call the gateway.
type AllinpayApp struct {
	AppID     string
	PublicKey *rsa.PublicKey
}

// Endpoint names, for faults and the ledger.
const (
	EndpointEcommerceSubmit = "ecommerce.submit"
	EndpointEcommerceQuery  = "ecommerce.query"
	EndpointPlatformSubmit  = "platform.submit"
	EndpointPlatformQuery   = "platform.query"
	EndpointCancelSubmit    = "cancel.submit"
	EndpointCancelQuery     = "cancel.query"
	EndpointAllinpaySubmit  = "allinpay.withdraw"
	EndpointAllinpayQuery   = "allinpay.query"
	// EndpointBillApply is the three fund-flow bill requests,
	// EndpointBillDownload the file download.
	EndpointBillApply    = "bill.apply"
	EndpointBillDownload = "bill.download"
)

// Endpoints lists every endpoint name.
var Endpoints = []string{EndpointEcommerceSubmit, EndpointEcommerceQuery, EndpointPlatformSubmit, EndpointPlatformQuery,
	EndpointCancelSubmit, EndpointCancelQuery, EndpointAllinpaySubmit, EndpointAllinpayQuery, EndpointBillApply, EndpointBillDownload}

// AllinpayGatewayPath is where the sandbox serves the Allinpay gateway.
const AllinpayGatewayPath = "/allinpay/gateway"

func (o *Options) setDefaults() {
	if o.SignMode == "" {
		o.SignMode = SignPublicKey
	}
	if o.DefaultBalance == 0 {
		o.DefaultBalance = 1_000_000_000_000
	}
	if o.CallbackDelays == nil {
		o.CallbackDelays = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TickInterval <= 0 {
		o.TickInterval = 20 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BillReadyHour == 0 {
		o.BillReadyHour = 9
	}
}
