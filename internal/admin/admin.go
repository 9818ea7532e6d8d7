// Package admin is the operators' HTTP API: look a withdrawal up (by id or
// by its idempotency key) with its events and provider attempts, and ask
// for a fresh provider query now.
//
//	GET  /v1/withdrawals/{id}
//	GET  /v1/withdrawals?channel=&account=&out_request_no=
//	POST /v1/withdrawals/{id}/requery
//	GET  /v1/recon/{date}          the day's reconciliation (docs/reconciliation.md)
//
// Every request needs "Authorization: Bearer <token>" with the token of
// --admin-token-file; without a configured token the binaries do not mount
// the API at all. Payee data is only ever shown masked (store's
// MaskedCommand); the stored provider request and the sealed payee bytes are
// never returned.
//
// Errors are JSON: {"error": {"code": "NOT_FOUND", "message": "…"}}.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Error codes of the JSON error body.
const (
	CodeUnauthorized   = "UNAUTHORIZED"
	CodeBadRequest     = "BAD_REQUEST"
	CodeNotFound       = "NOT_FOUND"
	CodeNotRequeryable = "NOT_REQUERYABLE"
	CodeChanged        = "CONCURRENT_CHANGE"
	CodeInternal       = "INTERNAL"
)

// Options configure the API.
type Options struct {
	// Token is the bearer token every request must carry. Required.
	Token string
	// Keys opens sealed payee data so that it can be shown masked. Without
	// them a withdrawal's command is shown without payee_info and
	// "payee_info_sealed": true.
	Keys   *pii.Keyring
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Handler serves the admin API.
type Handler struct {
	db        *store.DB
	tokenHash [sha256.Size]byte
	keys      *pii.Keyring
	log       *slog.Logger
	now       func() time.Time
	mux       *http.ServeMux
}

// New builds the API over db.
func New(db *store.DB, opts Options) (*Handler, error) {
	if strings.TrimSpace(opts.Token) == "" {
		return nil, errors.New("admin: empty token")
	}
	h := &Handler{db: db, tokenHash: sha256.Sum256([]byte(opts.Token)), keys: opts.Keys, log: opts.Logger, now: opts.Now}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /v1/withdrawals/{id}", h.get)
	h.mux.HandleFunc("GET /v1/withdrawals", h.lookup)
	h.mux.HandleFunc("POST /v1/withdrawals/{id}/requery", h.requery)
	h.mux.HandleFunc("GET /v1/recon/{date}", h.reconDay)
	return h, nil
}

// LoadToken reads a token file: its content without surrounding
// whitespace, which must not be empty.
func LoadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin token: %s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("admin token: %s must hold one token on one line", path)
	}
	return tok, nil
}

// Mux is where Register mounts the API (an http.ServeMux, typically the
// operational server's).
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Register mounts the API on mux under /v1/withdrawals.
func (h *Handler) Register(mux Mux) {
	mux.Handle("/v1/withdrawals", h)
	mux.Handle("/v1/withdrawals/", h)
	mux.Handle("/v1/recon/", h)
}

// ServeHTTP authenticates, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="withdraw-admin"`)
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
		return
	}
	// The inner mux answers 404/405 in plain text; make them JSON.
	if _, pattern := h.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such admin endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized compares the bearer token in constant time (over hashes, so
// that not even the length leaks).
func (h *Handler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	row, err := store.GetWithdrawal(r.Context(), h.db, r.PathValue("id"))
	h.respond(w, r, row, err)
}

// Withdrawal is the view of one withdrawal by id, as GET
// /v1/withdrawals/{id} answers it (store.ErrNotFound when there is none),
// for other operator front ends (the console) to show the same thing.
func (h *Handler) Withdrawal(ctx context.Context, id string) (*View, error) {
	row, err := store.GetWithdrawal(ctx, h.db, id)
	if err != nil {
		return nil, err
	}
	return h.view(ctx, row)
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	channel, account, no := q.Get("channel"), q.Get("account"), q.Get("out_request_no")
	if account == "" {
		account = withdrawal.DefaultAccount
	}
	if channel == "" || no == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "channel and out_request_no are required (account defaults to \"default\")")
		return
	}
	row, err := store.GetWithdrawalByKey(r.Context(), h.db, channel, account, no)
	h.respond(w, r, row, err)
}

func (h *Handler) respond(w http.ResponseWriter, r *http.Request, row *store.Withdrawal, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such withdrawal")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	v, err := h.view(r.Context(), row)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// View is the JSON of one withdrawal with its history.
type View struct {
	Withdrawal WithdrawalView `json:"withdrawal"`
	Events     []EventView    `json:"events"`
	Attempts   []AttemptView  `json:"attempts"`
}

// WithdrawalView is a withdrawal row as operators see it: everything but
// the stored provider request and the sealed payee bytes; the command with
// payee data masked.
type WithdrawalView struct {
	ID                string              `json:"id"`
	Channel           string              `json:"channel"`
	Account           string              `json:"account"`
	OutRequestNo      string              `json:"out_request_no"`
	MerchantKey       string              `json:"merchant_key"`
	Amount            int64               `json:"amount"`
	State             string              `json:"state"`
	Version           int                 `json:"version"`
	ProviderStatus    string              `json:"provider_status"`
	ProviderRef       string              `json:"provider_ref"`
	ReasonCode        string              `json:"reason_code"`
	Reason            string              `json:"reason"`
	Submissions       int                 `json:"submissions"`
	NextAttemptAt     time.Time           `json:"next_attempt_at"`
	LeaseOwner        string              `json:"lease_owner,omitempty"`
	LeaseExpiresAt    *time.Time          `json:"lease_expires_at,omitempty"`
	ClaimedFrom       string              `json:"claimed_from,omitempty"`
	ResubmitRequested bool                `json:"resubmit_requested"`
	FirstSentAt       *time.Time          `json:"first_sent_at,omitempty"`
	SubmittedAt       *time.Time          `json:"submitted_at,omitempty"`
	FinalAt           *time.Time          `json:"final_at,omitempty"`
	CreatedAt         time.Time           `json:"created_at"`
	UpdatedAt         time.Time           `json:"updated_at"`
	Command           *withdrawal.Command `json:"command"`
	// PayeeInfoSealed is true when the row has payee data that this
	// instance cannot open (no PII keys configured): it is left out.
	PayeeInfoSealed bool `json:"payee_info_sealed,omitempty"`
}

// EventView is one outbox row (kept until the retention job deletes it).
type EventView struct {
	EventID     string          `json:"event_id"`
	Type        string          `json:"type"`
	Version     int             `json:"version"`
	CreatedAt   time.Time       `json:"created_at"`
	PublishedAt *time.Time      `json:"published_at"` // null until the broker acknowledged it
	Payload     json.RawMessage `json:"payload"`
}

// AttemptView is one provider call of the audit trail.
type AttemptView struct {
	Operation    string    `json:"operation"`
	StartedAt    time.Time `json:"started_at"`
	LatencyMS    float64   `json:"latency_ms"`
	HTTPStatus   int       `json:"http_status"`
	ProviderCode string    `json:"provider_code"`
	Outcome      string    `json:"outcome"`
	Instance     string    `json:"instance"`
	Error        string    `json:"error,omitempty"`
}

func (h *Handler) view(ctx context.Context, row *store.Withdrawal) (*View, error) {
	v := &View{Withdrawal: WithdrawalView{
		ID: row.ID, Channel: row.Channel, Account: row.Account, OutRequestNo: row.OutRequestNo,
		MerchantKey: row.MerchantKey, Amount: row.Amount, State: row.State, Version: row.Version,
		ProviderStatus: row.ProviderStatus, ProviderRef: row.ProviderRef, ReasonCode: row.ReasonCode,
		Reason: row.Reason, Submissions: row.Submissions, NextAttemptAt: row.NextAttemptAt,
		LeaseOwner: row.LeaseOwner, LeaseExpiresAt: row.LeaseExpiresAt, ClaimedFrom: row.ClaimedFrom,
		ResubmitRequested: row.ResubmitRequested, FirstSentAt: row.FirstSentAt, SubmittedAt: row.SubmittedAt,
		FinalAt: row.FinalAt, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt,
	}}
	cmd, err := h.maskedCommand(row)
	if err != nil {
		return nil, err
	}
	v.Withdrawal.Command = cmd
	v.Withdrawal.PayeeInfoSealed = len(row.SensitiveData) > 0 && cmd.PayeeInfo == nil

	events, err := store.EventsOf(ctx, h.db, row.ID)
	if err != nil {
		return nil, err
	}
	v.Events = make([]EventView, 0, len(events))
	for _, e := range events {
		ev := EventView{EventID: e.EventID, Type: e.EventType, Version: e.Version, CreatedAt: e.CreatedAt}
		if e.Published() {
			at := e.PublishedAt
			ev.PublishedAt = &at
		}
		if json.Valid(e.Payload) {
			ev.Payload = e.Payload
		}
		v.Events = append(v.Events, ev)
	}
	attempts, err := store.AttemptsOf(ctx, h.db, row.ID)
	if err != nil {
		return nil, err
	}
	v.Attempts = make([]AttemptView, 0, len(attempts))
	for _, a := range attempts {
		v.Attempts = append(v.Attempts, AttemptView{
			Operation: a.Operation, StartedAt: a.StartedAt, LatencyMS: float64(a.LatencyUS) / 1000,
			HTTPStatus: a.HTTPStatus, ProviderCode: a.ProviderCode, Outcome: a.Outcome, Instance: a.Instance, Error: a.Error,
		})
	}
	return v, nil
}

// maskedCommand is the row's command with payee data masked; without keys
// it is the params column alone (which never holds payee_info).
func (h *Handler) maskedCommand(row *store.Withdrawal) (*withdrawal.Command, error) {
	if len(row.SensitiveData) == 0 || h.keys != nil {
		return row.MaskedCommand(h.keys)
	}
	var cmd withdrawal.Command
	if err := json.Unmarshal(row.Params, &cmd); err != nil {
		return nil, fmt.Errorf("decode params of withdrawal %s: %w", row.ID, err)
	}
	cmd.PayeeInfo = nil
	return &cmd, nil
}

// RequeryResult is the answer of POST …/requery.
type RequeryResult struct {
	ID            string    `json:"id"`
	OutRequestNo  string    `json:"out_request_no"`
	State         string    `json:"state"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// By names who takes it: "poller" (SUBMITTED, SUCCEEDED) or
	// "dispatcher" (UNKNOWN: it queries first, and re-sends the stored
	// request only once the provider's "not found" is conclusive).
	By string `json:"by"`
}

// requery serves POST …/requery with Requery.
func (h *Handler) requery(w http.ResponseWriter, r *http.Request) {
	res, err := h.Requery(r.Context(), r.PathValue("id"), r.RemoteAddr)
	var rerr *RequeryError
	switch {
	case errors.As(err, &rerr):
		writeError(w, rerr.Status, rerr.Code, rerr.Message)
	case err != nil:
		h.internal(w, r, err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// RequeryError is a requery refused for a reason the operator can act on:
// the HTTP status and error code the admin API answers with.
type RequeryError struct {
	Status  int
	Code    string
	Message string
}

func (e *RequeryError) Error() string { return e.Message }

// Requery makes a withdrawal due now for whoever follows it in its state.
// Only next_attempt_at changes: no state change, no version, no event. A
// poller or dispatcher holding it at that moment notices the change and
// drops its result; the next sweep queries again. A refusal (no such
// withdrawal, a state with nothing to query, a concurrent change) is a
// *RequeryError; remote names the requester in the log.
func (h *Handler) Requery(ctx context.Context, id, remote string) (*RequeryResult, error) {
	row, err := store.GetWithdrawal(ctx, h.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &RequeryError{http.StatusNotFound, CodeNotFound, "no such withdrawal"}
	}
	if err != nil {
		return nil, err
	}
	now := h.now().UTC().Truncate(time.Microsecond)
	by, ok, err := store.Requery(ctx, h.db, row, now)
	if err != nil {
		return nil, err
	}
	if by == "" {
		return nil, &RequeryError{http.StatusConflict, CodeNotRequeryable, notRequeryable(row)}
	}
	if !ok {
		again, err := store.GetWithdrawal(ctx, h.db, row.ID)
		if err != nil {
			return nil, err
		}
		return nil, &RequeryError{http.StatusConflict, CodeChanged,
			fmt.Sprintf("the withdrawal changed meanwhile (now %s, version %d): look again", again.State, again.Version)}
	}
	h.log.Info("admin: requery requested", "withdrawal_id", row.ID, "out_request_no", row.OutRequestNo,
		"channel", row.Channel, "state", row.State, "by", by, "remote", remote)
	return &RequeryResult{ID: row.ID, OutRequestNo: row.OutRequestNo, State: row.State, NextAttemptAt: now, By: by}, nil
}

func notRequeryable(row *store.Withdrawal) string {
	switch withdrawal.State(row.State) {
	case withdrawal.StateAccepted:
		return "ACCEPTED: not submitted yet; the dispatcher submits it when due (next_attempt_at " +
			row.NextAttemptAt.UTC().Format(time.RFC3339) + "), there is nothing to query"
	case withdrawal.StateSubmitting:
		return "SUBMITTING: a dispatcher holds it right now (lease owner " + row.LeaseOwner +
			"); its outcome is recorded in a moment, or the lease expires into UNKNOWN"
	default:
		return row.State + " is final: nothing to query (a reversal of a SUCCEEDED withdrawal is followed by the poller)"
	}
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, CodeInternal, "internal error (see the server log)")
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Mount serves the API on mux when tokenFile names a token file, and logs
// why not otherwise. piiKeysFile (optional) lets it show payee data masked;
// without it, payee data is left out.
func Mount(mux Mux, db *store.DB, tokenFile, piiKeysFile string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if tokenFile == "" {
		log.Warn("admin API not mounted: no --admin-token-file / WITHDRAW_ADMIN_TOKEN_FILE configured")
		return nil
	}
	token, err := LoadToken(tokenFile)
	if err != nil {
		return err
	}
	var keys *pii.Keyring
	if piiKeysFile != "" {
		if keys, err = pii.LoadKeyringFile(piiKeysFile); err != nil {
			return err
		}
	}
	h, err := New(db, Options{Token: token, Keys: keys, Logger: log})
	if err != nil {
		return err
	}
	h.Register(mux)
	log.Info("admin API mounted", "path", "/v1/withdrawals", "payee_data", map[bool]string{true: "masked", false: "hidden (no PII keys)"}[keys != nil])
	return nil
}

// ReconView is the answer of GET /v1/recon/{date}: the day's summary, its
// bills, and its findings (everything but MATCHED, at most ReconFindingsMax).
type ReconView struct {
	Day      *store.ReconDay     `json:"day"`
	Sources  []store.ReconSource `json:"sources"`
	Findings []store.ReconItem   `json:"findings"`
	// Truncated is true when there are more findings than listed.
	Truncated bool `json:"truncated,omitempty"`
}

// ReconFindingsMax bounds the findings of one answer.
const ReconFindingsMax = 1000

func (h *Handler) reconDay(w http.ResponseWriter, r *http.Request) {
	date := r.PathValue("date")
	if _, err := time.Parse("2006-01-02", date); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "date must be YYYY-MM-DD (a Beijing bill date)")
		return
	}
	ctx := r.Context()
	day, err := store.GetReconDay(ctx, h.db, date)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no reconciliation for "+date+" (not run yet, or its bills are not available)")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	v := ReconView{Day: day}
	if v.Sources, err = store.ReconSources(ctx, h.db, date); err != nil {
		h.internal(w, r, err)
		return
	}
	if v.Findings, err = store.ReconFindings(ctx, h.db, date, ReconFindingsMax+1); err != nil {
		h.internal(w, r, err)
		return
	}
	if len(v.Findings) > ReconFindingsMax {
		v.Findings, v.Truncated = v.Findings[:ReconFindingsMax], true
	}
	writeJSON(w, http.StatusOK, v)
}
