package admin_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/admin/admintest"
	"github.com/paycore/withdraw/internal/pii"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

const token = "s3cret-admin-token"

func newServer(t *testing.T, db *store.DB, keys *pii.Keyring) *httptest.Server {
	t.Helper()
	h, err := admin.New(db, admin.Options{Token: token, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {}) // like httpserver's
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, u, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e admin.ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	return e.Error.Code
}

func assertNoPayeeData(t *testing.T, body string) {
	t.Helper()
	for _, secret := range []string{admintest.AccountNumber, admintest.IDNumber, admintest.AccountName, admintest.ProviderRequestMarker,
		"sensitive_data", "provider_request", "params_hash"} {
		if strings.Contains(body, secret) {
			t.Errorf("answer contains %q:\n%s", secret, body)
		}
	}
}

func TestAuth(t *testing.T) {
	db := admintest.DB(t)
	keys := admintest.Keys(t)
	w := admintest.SeedCancel(t, db, keys, "AUTH1", withdrawal.StateSubmitted)
	srv := newServer(t, db, keys)

	for name, auth := range map[string]string{
		"none":         "",
		"wrong":        "Bearer not-the-token",
		"prefix":       "Bearer " + token[:5],
		"longer":       "Bearer " + token + "x",
		"basic":        "Basic " + token,
		"no scheme":    token,
		"empty bearer": "Bearer ",
	} {
		for _, req := range [][2]string{
			{"GET", "/v1/withdrawals/" + w.ID},
			{"GET", "/v1/withdrawals?channel=wechatpay_cancel&out_request_no=AUTH1"},
			{"POST", "/v1/withdrawals/" + w.ID + "/requery"},
			{"GET", "/v1/withdrawals/nope/nothing"},
		} {
			status, body := do(t, req[0], srv.URL+req[1], auth)
			if status != http.StatusUnauthorized || errorCode(t, body) != admin.CodeUnauthorized {
				t.Errorf("%s: %s %s = %d %s, want 401 UNAUTHORIZED", name, req[0], req[1], status, body)
			}
			assertNoPayeeData(t, body)
		}
	}
	// A refused requery changed nothing.
	again, err := store.GetWithdrawal(t.Context(), db, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !again.NextAttemptAt.Equal(w.NextAttemptAt) {
		t.Errorf("refused requery moved next_attempt_at to %v", again.NextAttemptAt)
	}
	// Case-insensitive scheme with the right token works.
	if status, body := do(t, "GET", srv.URL+"/v1/withdrawals/"+w.ID, "bearer "+token); status != http.StatusOK {
		t.Errorf("right token: %d %s", status, body)
	}
}

func TestShowMasked(t *testing.T) {
	db := admintest.DB(t)
	keys := admintest.Keys(t)
	w := admintest.SeedCancel(t, db, keys, "SHOW1", withdrawal.StateSubmitted)
	srv := newServer(t, db, keys)
	auth := "Bearer " + token

	status, byID := do(t, "GET", srv.URL+"/v1/withdrawals/"+w.ID, auth)
	if status != http.StatusOK {
		t.Fatalf("by id: %d %s", status, byID)
	}
	assertNoPayeeData(t, byID)
	var v admin.View
	if err := json.Unmarshal([]byte(byID), &v); err != nil {
		t.Fatal(err)
	}
	if v.Withdrawal.ID != w.ID || v.Withdrawal.OutRequestNo != "SHOW1" || v.Withdrawal.State != "SUBMITTED" || v.Withdrawal.Version != 2 {
		t.Errorf("withdrawal = %+v", v.Withdrawal)
	}
	p := v.Withdrawal.Command.PayeeInfo
	if p == nil || p.BankAccountInfo == nil || p.IdentityInfo == nil {
		t.Fatalf("masked payee_info missing: %s", byID)
	}
	if got, want := p.BankAccountInfo.AccountNumber, pii.Mask(admintest.AccountNumber); got != want || !strings.HasSuffix(got, "2222") {
		t.Errorf("account_number = %q, want %q", got, want)
	}
	if got := p.IdentityInfo.IdentificationNo; got != pii.Mask(admintest.IDNumber) {
		t.Errorf("identification_no = %q", got)
	}
	if got, want := p.BankAccountInfo.AccountName, pii.MaskName(admintest.AccountName); got != want {
		t.Errorf("account_name = %q, want %q", got, want)
	}
	if len(v.Events) != 2 || v.Events[0].Type != "withdrawal.accepted" || v.Events[1].Version != 2 {
		t.Errorf("events = %+v", v.Events)
	}
	if len(v.Attempts) != 1 || v.Attempts[0].Operation != "submit" || v.Attempts[0].LatencyMS != 12.345 {
		t.Errorf("attempts = %+v", v.Attempts)
	}

	// Lookup by key: the same answer; account defaults to "default".
	for _, q := range []string{
		"channel=wechatpay_cancel&account=default&out_request_no=SHOW1",
		"channel=wechatpay_cancel&out_request_no=SHOW1",
	} {
		status, byKey := do(t, "GET", srv.URL+"/v1/withdrawals?"+q, auth)
		if status != http.StatusOK || byKey != byID {
			t.Errorf("by key %s: %d\n%s\nwant\n%s", q, status, byKey, byID)
		}
	}

	// Without PII keys the payee data is left out, never shown sealed or raw.
	noKeys := newServer(t, db, nil)
	status, body := do(t, "GET", noKeys.URL+"/v1/withdrawals/"+w.ID, auth)
	if status != http.StatusOK || !strings.Contains(body, `"payee_info_sealed": true`) || strings.Contains(body, "payee_info\"") {
		t.Errorf("without keys: %d %s", status, body)
	}
	assertNoPayeeData(t, body)
}

func TestNotFoundAndBadRequest(t *testing.T) {
	db := admintest.DB(t)
	srv := newServer(t, db, admintest.Keys(t))
	auth := "Bearer " + token
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/withdrawals/00000000-0000-0000-0000-000000000000", 404, admin.CodeNotFound},
		{"GET", "/v1/withdrawals?channel=wechatpay_cancel&out_request_no=NOPE", 404, admin.CodeNotFound},
		{"GET", "/v1/withdrawals?channel=wechatpay_cancel", 400, admin.CodeBadRequest},
		{"GET", "/v1/withdrawals?out_request_no=X", 400, admin.CodeBadRequest},
		{"POST", "/v1/withdrawals/00000000-0000-0000-0000-000000000000/requery", 404, admin.CodeNotFound},
		{"GET", "/v1/withdrawals/x/y/z", 404, admin.CodeNotFound},
		{"DELETE", "/v1/withdrawals/x", 404, admin.CodeNotFound},
	} {
		status, body := do(t, c.method, srv.URL+c.path, auth)
		if status != c.status || errorCode(t, body) != c.code {
			t.Errorf("%s %s = %d %s, want %d %s", c.method, c.path, status, body, c.status, c.code)
		}
	}
}

func TestRequery(t *testing.T) {
	db := admintest.DB(t)
	keys := admintest.Keys(t)
	srv := newServer(t, db, keys)
	auth := "Bearer " + token

	for _, c := range []struct {
		state  withdrawal.State
		status int
		by     string
	}{
		{withdrawal.StateSubmitted, 200, "poller"},
		{withdrawal.StateSucceeded, 200, "poller"},
		{withdrawal.StateUnknown, 200, "dispatcher"},
		{withdrawal.StateAccepted, 409, ""},
		{withdrawal.StateSubmitting, 409, ""},
		{withdrawal.StateFailed, 409, ""},
		{withdrawal.StateReversed, 409, ""},
	} {
		t.Run(string(c.state), func(t *testing.T) {
			w := admintest.SeedCancel(t, db, keys, "RQ"+strings.ReplaceAll(string(c.state), "_", ""), c.state)
			before := time.Now().UTC()
			status, body := do(t, "POST", srv.URL+"/v1/withdrawals/"+url.PathEscape(w.ID)+"/requery", auth)
			if status != c.status {
				t.Fatalf("requery = %d %s, want %d", status, body, c.status)
			}
			after, err := store.GetWithdrawal(t.Context(), db, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Version != w.Version || after.State != w.State {
				t.Errorf("requery changed state/version: %s v%d", after.State, after.Version)
			}
			if c.status != 200 {
				if errorCode(t, body) != admin.CodeNotRequeryable || !strings.Contains(body, string(c.state)) {
					t.Errorf("refusal body: %s", body)
				}
				if !after.NextAttemptAt.Equal(w.NextAttemptAt) {
					t.Errorf("refused requery moved next_attempt_at to %v", after.NextAttemptAt)
				}
				return
			}
			var res admin.RequeryResult
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			if res.By != c.by || res.ID != w.ID {
				t.Errorf("result = %+v", res)
			}
			if after.NextAttemptAt.Before(before.Add(-time.Second)) || after.NextAttemptAt.After(time.Now().Add(time.Second)) {
				t.Errorf("next_attempt_at = %v, want about now (%v)", after.NextAttemptAt, before)
			}
			// Its events are untouched: a requery writes none.
			events, err := store.EventsOf(t.Context(), db, w.ID)
			if err != nil || len(events) != w.Version {
				t.Errorf("events after requery: %d, %v", len(events), err)
			}
		})
	}
}
