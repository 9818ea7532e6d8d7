// Package console is the operators' web console, served under /ui/ beside
// the admin API and with the same token: an overview of the pipeline,
// search, a withdrawal's page with its timeline and a Requery button, and
// the dead letters with a confirmed replay (docs/console.md).
//
// Security: the token is typed into a login form once; the console then
// keeps a session cookie (HttpOnly, SameSite=Strict, Secure over TLS),
// signed with a key derived from the token, so that every instance sharing
// the token accepts it and changing the token ends every session. Every
// POST carries a CSRF token tied to the session (the login form one tied to
// a cookie of its own), and a POST from another origin is refused whatever
// it carries (http.CrossOriginProtection). Pages and assets are embedded:
// nothing is loaded from outside the process.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/deadletter"
	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const (
	sessionCookie = "withdraw_console"
	loginCookie   = "withdraw_console_login"
	// SessionTTL is how long a login lasts.
	SessionTTL = 8 * time.Hour
)

// Options configure the console.
type Options struct {
	// Token is the admin token. Required.
	Token string
	// Keys show payee data masked; without them it is left out.
	Keys *pii.Keyring
	// Rules are the providers' timing rules the binary runs with: they
	// explain a withdrawal's next step and the stuck rules.
	Rules schedule.Rules
	// DeadLetters names the brokers and topics; without brokers the dead
	// letters page says so.
	DeadLetters deadletter.Topics
	// Gatherer is the process's metrics registry (consumer lag).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Handler serves the console.
type Handler struct {
	db     *store.DB
	admin  *admin.Handler
	opts   Options
	key    []byte
	tokenH [sha256.Size]byte
	stuck  poll.StuckLimits
	decide decide.Decider
	pages  map[string]*template.Template
	mux    *http.ServeMux
	cop    *http.CrossOriginProtection
	deny   http.Handler
	log    *slog.Logger

	mu      sync.Mutex
	revoked map[string]time.Time // session nonces logged out, until they expire
	cache   *overviewCache
}

// New builds the console over db.
func New(db *store.DB, opts Options) (*Handler, error) {
	if strings.TrimSpace(opts.Token) == "" {
		return nil, errors.New("console: empty token")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rules == (schedule.Rules{}) {
		opts.Rules = schedule.Production()
	}
	ad, err := admin.New(db, admin.Options{Token: opts.Token, Keys: opts.Keys, Logger: opts.Logger, Now: opts.Now})
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, []byte(opts.Token))
	mac.Write([]byte("withdraw console session v1"))
	h := &Handler{
		db: db, admin: ad, opts: opts, key: mac.Sum(nil), tokenH: sha256.Sum256([]byte(opts.Token)),
		stuck: poll.DefaultStuckLimits(opts.Rules), decide: decide.Decider{Rules: opts.Rules},
		log: opts.Logger, revoked: map[string]time.Time{}, cache: &overviewCache{},
	}
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	h.cop = http.NewCrossOriginProtection()
	h.deny = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "remote", r.RemoteAddr)
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	})
	static, _ := fs.Sub(staticFS, "static")
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/{$}", h.home)
	m.HandleFunc("POST /ui/login", h.login)
	m.HandleFunc("POST /ui/logout", h.authed(h.logout))
	m.HandleFunc("GET /ui/overview", h.authed(h.overview))
	m.HandleFunc("GET /ui/search", h.authed(h.search))
	m.HandleFunc("GET /ui/withdrawals/{id}", h.authed(h.withdrawal))
	m.HandleFunc("POST /ui/withdrawals/{id}/requery", h.authed(h.requery))
	m.HandleFunc("GET /ui/deadletters", h.authed(h.deadLetters))
	m.HandleFunc("GET /ui/deadletters/{partition}/{offset}", h.authed(h.deadLetter))
	m.HandleFunc("POST /ui/deadletters/{partition}/{offset}/replay", h.authed(h.replay))
	h.mux = m
	return h, nil
}

// Mux is where Register mounts the console.
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// Register mounts the console on mux under /ui/.
func (h *Handler) Register(mux Mux) { mux.Handle("/ui/", h) }

// ServeHTTP refuses cross-origin POSTs, sets the headers every answer
// carries, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Nothing from elsewhere: no external script, style, image, frame or
	// form target, and no framing of the console by others.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if err := h.cop.Check(r); err != nil {
		h.deny.ServeHTTP(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// session is a verified session cookie.
type session struct {
	nonce   string
	expires time.Time
	csrf    string
}

// newSession signs a fresh session: expiry and a random nonce, MACed.
func (h *Handler) newSession() (value string, s session) {
	raw := make([]byte, 8+16)
	exp := h.opts.Now().Add(SessionTTL)
	binary.BigEndian.PutUint64(raw, uint64(exp.Unix()))
	_, _ = rand.Read(raw[8:])
	value = b64(raw) + "." + b64(h.mac("session", raw))
	return value, session{nonce: b64(raw[8:]), expires: exp, csrf: b64(h.mac("csrf", raw[8:]))}
}

func (h *Handler) mac(purpose string, b []byte) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(purpose + "\x00"))
	m.Write(b)
	return m.Sum(nil)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sessionOf verifies the request's session cookie.
func (h *Handler) sessionOf(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	raw, err1 := base64.RawURLEncoding.DecodeString(payload)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err1 != nil || err2 != nil || len(raw) != 24 || !hmac.Equal(got, h.mac("session", raw)) {
		return session{}, false
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(raw)), 0)
	if !h.opts.Now().Before(exp) {
		return session{}, false
	}
	s := session{nonce: b64(raw[8:]), expires: exp, csrf: b64(h.mac("csrf", raw[8:]))}
	h.mu.Lock()
	_, gone := h.revoked[s.nonce]
	h.mu.Unlock()
	return s, !gone
}

type authedFunc func(w http.ResponseWriter, r *http.Request, s session)

// authed lets a request through with a valid session (and, for a POST, its
// CSRF token); without a session a page redirects to the login form.
func (h *Handler) authed(next authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.sessionOf(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/", http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			got := r.PostFormValue("csrf")
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				h.log.Warn("console: POST without a valid CSRF token refused", "path", r.URL.Path, "remote", r.RemoteAddr)
				http.Error(w, "missing or invalid CSRF token: reload the page", http.StatusForbidden)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r, s)
	}
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// home is the login form, or the overview for a logged-in operator.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessionOf(r); ok {
		http.Redirect(w, r, "/ui/overview", http.StatusSeeOther)
		return
	}
	h.loginForm(w, r, http.StatusOK, "")
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	// Login CSRF: the form carries the value of a cookie of its own, which
	// a page elsewhere can neither read nor set.
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	h.setCookie(w, r, loginCookie, b64(nonce), 3600)
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, status, "login", session{}, map[string]any{"Error": msg, "LoginCSRF": b64(nonce)})
}

// login checks the token (in constant time, over hashes) and starts a
// session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		h.loginForm(w, r, http.StatusForbidden, "The form expired: log in again.")
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(r.PostFormValue("token"))))
	if subtle.ConstantTimeCompare(got[:], h.tokenH[:]) != 1 {
		h.log.Warn("console: login refused", "remote", r.RemoteAddr)
		h.loginForm(w, r, http.StatusUnauthorized, "Wrong token.")
		return
	}
	value, _ := h.newSession()
	h.setCookie(w, r, sessionCookie, value, int(SessionTTL/time.Second))
	h.setCookie(w, r, loginCookie, "", -1)
	h.log.Info("console: login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/overview", http.StatusSeeOther)
}

// logout ends the session: the cookie is cleared, and this process refuses
// it until it would have expired anyway.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s session) {
	h.mu.Lock()
	now := h.opts.Now()
	for n, exp := range h.revoked {
		if !now.Before(exp) {
			delete(h.revoked, n)
		}
	}
	h.revoked[s.nonce] = s.expires
	h.mu.Unlock()
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// Mount serves the console on mux when tokenFile names a token file (the
// admin API's), and logs why not otherwise.
func Mount(mux Mux, db *store.DB, tokenFile, piiKeysFile string, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if tokenFile == "" {
		log.Warn("console not mounted: no --admin-token-file / WITHDRAW_ADMIN_TOKEN_FILE configured")
		return nil
	}
	token, err := admin.LoadToken(tokenFile)
	if err != nil {
		return err
	}
	opts.Token = token
	if piiKeysFile != "" {
		if opts.Keys, err = pii.LoadKeyringFile(piiKeysFile); err != nil {
			return err
		}
	}
	h, err := New(db, opts)
	if err != nil {
		return err
	}
	h.Register(mux)
	log.Info("console mounted", "path", "/ui/")
	return nil
}

// withTimeout bounds one page's queries.
func withTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
