// Package callback receives the providers' notifications: WeChat Pay's
// MCHWITHDRAW.CHANGE at POST /notify/wechatpay/{account}.
//
// A notification is verified (signature, timestamp) with the account's
// WeChat Pay keys and decrypted with its APIv3 key, then applied through
// poll.Poller.Observe: the same status → change mapping as a query result,
// in one transaction with its outbox event, idempotent (a repeated callback
// writes nothing).
//
// Answers follow WeChat's rules: 2xx (204, empty body) when the
// notification is handled and must not be sent again; 4xx/5xx with
// {"code":"FAIL","message":…} when it should be retried (WeChat retries for
// up to 24 hours). A bad signature gets 401 and changes nothing. A
// notification for an order we do not have is acknowledged (see
// ServeHTTP) and reported. Decrypted order data is never logged.
package callback

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/provider/wechatpay"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Pattern is the route of WeChat withdraw callbacks (Go 1.22 mux pattern).
// The notify_url of an account is <public base URL>/notify/wechatpay/<account>.
const Pattern = "POST /notify/wechatpay/{account}"

// MaxBodyBytes bounds a callback body.
const MaxBodyBytes = 64 << 10

// Results counted in withdraw_poll_callbacks_total.
const (
	ResultApplied      = "applied"
	ResultUnchanged    = "unchanged"
	ResultBadSignature = "bad_signature"
	ResultUnknownOrder = "unknown_order"
	ResultMismatch     = "mismatch"
	ResultIgnored      = "ignored"
	ResultError        = "error"
)

// Observer applies a status to a withdrawal; *poll.Poller is one.
type Observer interface {
	Observe(ctx context.Context, id string, src decide.Source, q provider.QueryResult, audit *store.Attempt) (bool, error)
	Metrics() *poll.Metrics
}

// WeChat is the http.Handler of WeChat Pay withdraw callbacks.
type WeChat struct {
	db       *store.DB
	clients  map[string]*wechatpay.Client
	observer Observer
	log      *slog.Logger
}

// NewWeChat returns the handler. clients are the WeChat clients by account
// name (clients.WeChatClients); an account without an APIv3 key cannot
// receive callbacks.
func NewWeChat(db *store.DB, clients map[string]*wechatpay.Client, observer Observer, log *slog.Logger) *WeChat {
	if log == nil {
		log = slog.Default()
	}
	return &WeChat{db: db, clients: clients, observer: observer, log: log.With("component", "callback")}
}

// Register mounts the handler on mux at Pattern.
func (h *WeChat) Register(mux *http.ServeMux) { mux.Handle(Pattern, h) }

// ServeHTTP handles one notification.
//
// An unknown order is answered 204 (handled): our withdrawal row is always
// committed before its request is sent, so a notification for a number we
// do not have is not ours to settle (another system on the same merchant,
// or a restored database), and a retry for 24 hours could not change that.
// It is logged as an alert and counted, and the poller's queries remain the
// source of truth for our own withdrawals.
func (h *WeChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := h.observer.Metrics()
	account := r.PathValue("account")
	client, ok := h.clients[account]
	if !ok || client.APIv3Key() == nil {
		m.Callback(ResultError)
		h.log.Error("callback for an account without WeChat callback keys", "account", account, "alert", true)
		fail(w, http.StatusNotFound, "unknown account")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		m.Callback(ResultError)
		fail(w, http.StatusBadRequest, "body unreadable")
		return
	}
	if err := client.Verifier().Verify(r.Header, body); err != nil {
		m.Callback(ResultBadSignature)
		h.log.Warn("callback rejected: signature not valid", "account", account, "err", err,
			"serial", r.Header.Get(wechatpay.HeaderSerial), "remote", r.RemoteAddr)
		fail(w, http.StatusUnauthorized, "signature verification failed")
		return
	}
	n, notice, err := wechatpay.ParseWithdrawNotice(client.Verifier(), client.APIv3Key(), r.Header, body)
	if err != nil {
		if n != nil && n.EventType != wechatpay.EventWithdrawChange {
			// A valid notification of another kind: nothing of ours.
			m.Callback(ResultIgnored)
			h.log.Info("callback of another event type ignored", "account", account, "event_type", n.EventType, "id", n.ID)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// Signed by WeChat but not decryptable: our APIv3 key is wrong.
		// Fail, so that WeChat retries while an operator fixes it.
		m.Callback(ResultError)
		h.log.Error("callback verified but not readable (APIv3 key?)", "account", account, "err", err, "alert", true)
		fail(w, http.StatusInternalServerError, "cannot decrypt")
		return
	}
	h.handle(r.Context(), w, account, n, notice)
}

func (h *WeChat) handle(ctx context.Context, w http.ResponseWriter, account string, n *wechatpay.Notification, notice *wechatpay.WithdrawNotice) {
	m := h.observer.Metrics()
	// Only identifiers are logged: the notice also carries remarks, bank
	// memos and reasons, which stay out of the logs.
	logAttrs := []any{"account", account, "notification_id", n.ID, "out_request_no", notice.OutRequestNo, "status", notice.Status}
	row, err := h.find(ctx, account, notice)
	if errors.Is(err, store.ErrNotFound) {
		m.Callback(ResultUnknownOrder)
		h.log.Error("callback for an unknown withdrawal acknowledged", append(logAttrs, "alert", true)...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		m.Callback(ResultError)
		h.log.Error("callback: lookup failed", append(logAttrs, "err", err)...)
		fail(w, http.StatusInternalServerError, "temporarily unavailable")
		return
	}
	logAttrs = append(logAttrs, "withdrawal_id", row.ID, "channel", row.Channel)
	ch := withdrawal.Channel(row.Channel)
	q := provider.QueryResult{Outcome: provider.Outcome{Kind: provider.KindAccepted, ProviderStatus: notice.Status, ProviderRef: notice.WithdrawID},
		Amount: notice.Amount, OutRequestNo: notice.OutRequestNo, SubMchID: notice.SubMchID, Reason: notice.Reason, Solution: notice.Solution}
	if err := decide.Check(row, q); err != nil {
		// Same number, another order, or a notice missing what identifies
		// it: never apply it to ours. Acknowledged, so that WeChat stops
		// sending it; the poller's queries stay the source of truth.
		m.Callback(ResultMismatch)
		h.log.Error("callback does not match the stored withdrawal: not applied", append(logAttrs, "err", err, "alert", true)...)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if mp, ok := provider.MapStatus(ch, notice.Status); ok {
		q.State, q.Resubmit = mp.State, mp.Resubmit
	}
	audit := &store.Attempt{Operation: poll.OpCallback, StartedAt: time.Now().UTC(), ProviderCode: notice.Status,
		Outcome: string(provider.KindAccepted)}
	changed, err := h.observer.Observe(ctx, row.ID, decide.SourceCallback, q, audit)
	if err != nil {
		m.Callback(ResultError)
		h.log.Error("callback: applying the status failed; WeChat will retry", append(logAttrs, "err", err)...)
		fail(w, http.StatusInternalServerError, "temporarily unavailable")
		return
	}
	if changed {
		m.Callback(ResultApplied)
	} else {
		m.Callback(ResultUnchanged)
	}
	h.log.Info("callback handled", append(logAttrs, "changed", changed)...)
	w.WriteHeader(http.StatusNoContent)
}

// find looks the withdrawal up by (channel, account, out_request_no). The
// e-commerce notice names sp_mchid/sub_mchid, the platform one mchid; the
// other withdraw channel is tried too in case a notice lacks them.
func (h *WeChat) find(ctx context.Context, account string, notice *wechatpay.WithdrawNotice) (*store.Withdrawal, error) {
	if notice.OutRequestNo == "" {
		return nil, store.ErrNotFound
	}
	order := []withdrawal.Channel{withdrawal.ChannelWeChatPlatform, withdrawal.ChannelWeChatEcommerce}
	if notice.SubMchID != "" || notice.SpMchID != "" {
		order[0], order[1] = order[1], order[0]
	}
	for _, ch := range order {
		row, err := store.GetWithdrawalByKey(ctx, h.db, string(ch), account, notice.OutRequestNo)
		if err == nil {
			if sub := decide.SubMchID(row); ch == withdrawal.ChannelWeChatEcommerce && notice.SubMchID != "" && sub != "" && sub != notice.SubMchID {
				continue
			}
			return row, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return nil, store.ErrNotFound
}

// fail answers as WeChat expects of a failure: {"code":"FAIL","message":…}.
func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": "FAIL", "message": msg})
}
