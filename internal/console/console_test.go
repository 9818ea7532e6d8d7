package console_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/admin/admintest"
	"github.com/paycore/withdraw/internal/console"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

func newConsole(t *testing.T, db *store.DB) http.Handler {
	t.Helper()
	h, err := console.New(db, console.Options{Token: testToken, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return mux
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func client(t *testing.T, srv *httptest.Server) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	return &c
}

// TestConsoleSecurity holds the console to its security model over HTTP:
// the session cookie's flags, a wrong token, CSRF on every POST, other
// origins refused, logout.
func TestConsoleSecurity(t *testing.T) {
	db := admintest.DB(t)
	keys := admintest.Keys(t)
	w := admintest.SeedCancel(t, db, keys, "SEC1", withdrawal.StateSubmitted)
	srv := httptest.NewServer(newConsole(t, db))
	defer srv.Close()
	requery := srv.URL + "/ui/withdrawals/" + w.ID + "/requery"

	// Pages redirect to the login form without a session; a POST is refused.
	noRedirect := noRedirectWithJar(srv.Client())
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(srv.URL + "/ui/overview")
	if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("overview without a session: %v %v", resp.Status, err)
	}

	// A wrong token, or a login without the form's CSRF value, is refused.
	c := client(t, srv)
	resp, _ = c.Get(srv.URL + "/ui/")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(body)
	for _, form := range []url.Values{{"token": {"wrong"}, "csrf": {string(m[1])}}, {"token": {testToken}}} {
		resp, err := c.PostForm(srv.URL+"/ui/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Errorf("login %v: %s", form, resp.Status)
		}
		if u, _ := url.Parse(srv.URL + "/ui/"); len(c.Jar.Cookies(u)) > 1 {
			t.Errorf("login %v set a session", form)
		}
	}

	// The session cookie: HttpOnly, SameSite=Strict, not Secure over plain
	// HTTP, for /ui/ only.
	resp, _ = c.Get(srv.URL + "/ui/")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m = csrfField.FindSubmatch(body)
	resp, err = noRedirectWithJar(c).PostForm(srv.URL+"/ui/login", url.Values{"token": {testToken}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "withdraw_console" && ck.Value != "" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure || session.Path != "/ui/" {
		t.Fatalf("session cookie: %+v", session)
	}

	resp, _ = c.Get(srv.URL + "/ui/overview")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m = csrfField.FindSubmatch(body)
	if m == nil {
		t.Fatalf("overview without a CSRF field: %s", resp.Status)
	}
	csrf := string(m[1])
	post := func(origin string, form url.Values) int {
		req, _ := http.NewRequest(http.MethodPost, requery, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := noRedirectWithJar(c).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("", url.Values{}); got != http.StatusForbidden {
		t.Errorf("POST without a CSRF token: %d", got)
	}
	if got := post("", url.Values{"csrf": {"forged"}}); got != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d", got)
	}
	if got := post("http://evil.example", url.Values{"csrf": {csrf}}); got != http.StatusForbidden {
		t.Errorf("POST from another origin: %d", got)
	}
	if again, _ := store.GetWithdrawal(context.Background(), db, w.ID); !again.NextAttemptAt.Equal(w.NextAttemptAt) {
		t.Fatalf("a refused POST requeried it: %v", again.NextAttemptAt)
	}
	if got := post(srv.URL, url.Values{"csrf": {csrf}}); got != http.StatusSeeOther {
		t.Errorf("POST with the CSRF token from the console's origin: %d", got)
	}
	if again, _ := store.GetWithdrawal(context.Background(), db, w.ID); !again.NextAttemptAt.Before(time.Now().Add(time.Minute)) {
		t.Errorf("requery did not make it due: %v", again.NextAttemptAt)
	}

	// The answers forbid loading anything from elsewhere.
	resp, _ = c.Get(srv.URL + "/ui/overview")
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP: %q", csp)
	}

	// Logout ends the session, even for a copy of its cookie.
	u, _ := url.Parse(srv.URL + "/ui/")
	old := c.Jar.Cookies(u)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/logout", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	replay, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/overview", nil)
	for _, ck := range old {
		replay.AddCookie(ck)
	}
	if resp, err := noRedirect.Do(replay); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the logged-out session still works: %v %v", resp.Status, err)
	}
}

func noRedirectWithJar(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// TestSecureCookieOverTLS: served over TLS, the session cookie is Secure.
func TestSecureCookieOverTLS(t *testing.T) {
	db := admintest.DB(t)
	srv := httptest.NewTLSServer(newConsole(t, db))
	defer srv.Close()
	c := noRedirectWithJar(client(t, srv))
	resp, err := c.Get(srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(body)
	resp, err = c.PostForm(srv.URL+"/ui/login", url.Values{"token": {testToken}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "withdraw_console" && ck.Value != "" && ck.Secure {
			return
		}
	}
	t.Fatalf("no Secure session cookie over TLS: %v", resp.Cookies())
}

// TestMountWithoutToken: without a token file the console is not served.
func TestMountWithoutToken(t *testing.T) {
	mux := http.NewServeMux()
	if err := console.Mount(mux, nil, "", "", console.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if _, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, "/ui/", nil)); pattern != "" {
		t.Fatalf("console mounted without a token: %q", pattern)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := console.Mount(mux, nil, file, "", console.Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if _, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, "/ui/", nil)); pattern != "/ui/" {
		t.Fatalf("console not mounted with a token: %q", pattern)
	}
}

// TestSearchKeysetPaging pages through each kind of search and finds every
// match exactly once, in the search's order.
func TestSearchKeysetPaging(t *testing.T) {
	db := admintest.DB(t)
	ctx := context.Background()
	var cmds []*withdrawal.Command
	for i := range 7 {
		cmds = append(cmds, providertest.Command(withdrawal.ChannelWeChatEcommerce, fmt.Sprintf("PAGE%d", i), int64(100+i)))
	}
	other := providertest.Command(withdrawal.ChannelWeChatPlatform, "PAGEX", 100)
	ids := storetest.Seed(t, db, nil, append(cmds, other)...)
	merchant := cmds[0].MerchantKey()

	all := func(s store.Search) []string {
		var out []string
		for page := 0; ; page++ {
			res, err := store.SearchWithdrawals(ctx, db, s)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Rows {
				out = append(out, r.OutRequestNo)
			}
			if res.Next == "" || page > 10 {
				return out
			}
			s.After = res.Next
		}
	}
	if got := all(store.Search{MerchantKey: merchant, Limit: 3}); len(got) != 7 || got[0] != "PAGE6" || got[6] != "PAGE0" {
		t.Errorf("by merchant, newest first: %v", got)
	}
	if got := all(store.Search{State: "ACCEPTED", Limit: 3}); len(got) != 8 {
		t.Errorf("by state: %v", got)
	}
	if got := all(store.Search{State: "ACCEPTED", MerchantKey: merchant, Limit: 2}); len(got) != 7 {
		t.Errorf("by state and merchant: %v", got)
	}
	if got := all(store.Search{Limit: 5, From: time.Now().Add(-time.Hour)}); len(got) != 8 {
		t.Errorf("the last hour: %v", got)
	}
	if got := all(store.Search{Limit: 5, To: time.Now().Add(-time.Hour)}); len(got) != 0 {
		t.Errorf("before the last hour: %v", got)
	}
	if got := all(store.Search{OutRequestNo: "PAGE3"}); len(got) != 1 {
		t.Errorf("by out_request_no: %v", got)
	}
	if got := all(store.Search{ID: ids["PAGEX"]}); len(got) != 1 || got[0] != "PAGEX" {
		t.Errorf("by id: %v", got)
	}
}
