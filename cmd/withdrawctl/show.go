package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paycore/withdraw/internal/admin"
)

// adminClient calls the admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

// adminFlags declares --admin-url and --admin-token-file.
func (c *cli) adminFlags(fs *flag.FlagSet) func() (*adminClient, error) {
	def := c.getenv("WITHDRAW_ADMIN_URL")
	if def == "" {
		addr := c.getenv("WITHDRAW_HTTP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		def = "http://" + addr
	}
	base := fs.String("admin-url", def, "base URL of a consumer's or poller's HTTP server (env WITHDRAW_ADMIN_URL; default http://<WITHDRAW_HTTP_ADDR>)")
	tokenFile := c.setting(fs, "admin-token-file")
	timeout := fs.Duration("timeout", 15*time.Second, "HTTP timeout")
	return func() (*adminClient, error) {
		if *tokenFile == "" {
			return nil, errors.New("--admin-token-file / WITHDRAW_ADMIN_TOKEN_FILE is required (the token the services were given)")
		}
		tok, err := admin.LoadToken(*tokenFile)
		if err != nil {
			return nil, err
		}
		return &adminClient{base: strings.TrimRight(*base, "/"), token: tok, http: &http.Client{Timeout: *timeout}}, nil
	}
}

// call sends a request and decodes a 2xx JSON answer into out; an error
// answer becomes an exitError with its code and message.
func (a *adminClient) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e admin.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
			return &exitError{3, fmt.Errorf("admin API: %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)}
		}
		if resp.StatusCode == http.StatusNotFound {
			return &exitError{3, fmt.Errorf("admin API: 404 from %s: is the admin API mounted there (--admin-token-file on the service)?", a.base)}
		}
		return &exitError{3, fmt.Errorf("admin API: %s: %s", resp.Status, bytes.TrimSpace(body))}
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = body
		return nil
	}
	return json.Unmarshal(body, out)
}

func (c *cli) show(args []string) error {
	fs := c.flags("show", "[flags] <withdrawal id> | --channel C [--account A] --out-request-no N",
		`Shows a withdrawal (payee data masked), its events (those the outbox still keeps) and every
provider call, through the admin API of a consumer or poller.`)
	client := c.adminFlags(fs)
	channel := fs.String("channel", "", "look up by key: channel")
	account := fs.String("account", "default", "look up by key: provider account")
	no := fs.String("out-request-no", "", "look up by key: out_request_no")
	asJSON := fs.Bool("json", false, "print the API's JSON as is")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var path string
	switch {
	case len(pos) == 1 && *channel == "" && *no == "":
		path = "/v1/withdrawals/" + url.PathEscape(pos[0])
	case len(pos) == 0 && *channel != "" && *no != "":
		path = "/v1/withdrawals?" + url.Values{"channel": {*channel}, "account": {*account}, "out_request_no": {*no}}.Encode()
	default:
		fs.Usage()
		return errors.New("show: give a withdrawal id, or --channel and --out-request-no")
	}
	a, err := client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if *asJSON {
		var raw json.RawMessage
		if err := a.call(ctx, http.MethodGet, path, &raw); err != nil {
			return err
		}
		_, err := c.stdout.Write(raw)
		return err
	}
	var v admin.View
	if err := a.call(ctx, http.MethodGet, path, &v); err != nil {
		return err
	}
	printView(c.stdout, &v)
	return nil
}

func printView(out io.Writer, v *admin.View) {
	w := v.Withdrawal
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	ts := func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "-"
		}
		return t.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "withdrawal\t%s\n", w.ID)
	fmt.Fprintf(tw, "key\t%s / %s / %s\n", w.Channel, w.Account, w.OutRequestNo)
	fmt.Fprintf(tw, "state\t%s (version %d)\n", w.State, w.Version)
	fmt.Fprintf(tw, "amount\t%d fen (%d.%02d yuan)\n", w.Amount, w.Amount/100, w.Amount%100)
	fmt.Fprintf(tw, "provider\tstatus %s  ref %s\n", dash(w.ProviderStatus), dash(w.ProviderRef))
	if w.ReasonCode != "" || w.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s %s\n", w.ReasonCode, w.Reason)
	}
	fmt.Fprintf(tw, "merchant\t%s\n", w.MerchantKey)
	fmt.Fprintf(tw, "submissions\t%d  first sent %s  submitted %s\n", w.Submissions, ts(w.FirstSentAt), ts(w.SubmittedAt))
	next := w.NextAttemptAt
	nextS := ts(&next)
	if next.Year() >= 9999 {
		nextS = "never (nothing left to follow)"
	}
	fmt.Fprintf(tw, "next attempt\t%s\n", nextS)
	if w.LeaseOwner != "" {
		fmt.Fprintf(tw, "lease\t%s until %s (claimed from %s)\n", w.LeaseOwner, ts(w.LeaseExpiresAt), w.ClaimedFrom)
	}
	if w.ResubmitRequested {
		fmt.Fprintf(tw, "resubmit\trequested (byte-identical re-send by the dispatcher)\n")
	}
	fmt.Fprintf(tw, "created / updated / final\t%s / %s / %s\n", ts(&w.CreatedAt), ts(&w.UpdatedAt), ts(w.FinalAt))
	tw.Flush()

	fmt.Fprintf(out, "\nevents (%d kept in the outbox):\n", len(v.Events))
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, e := range v.Events {
		pub := "pending"
		if e.PublishedAt != nil {
			pub = "published " + ts(e.PublishedAt)
		}
		fmt.Fprintf(tw, "  v%d\t%s\t%s\t%s\t%s\n", e.Version, e.Type, ts(&e.CreatedAt), pub, e.EventID)
	}
	tw.Flush()

	fmt.Fprintf(out, "\nprovider attempts (%d):\n", len(v.Attempts))
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, a := range v.Attempts {
		fmt.Fprintf(tw, "  %s\t%s\tHTTP %d\t%s\t%s\t%.1fms\t%s\t%s\n", ts(&a.StartedAt), a.Operation, a.HTTPStatus,
			a.Outcome, dash(a.ProviderCode), a.LatencyMS, a.Instance, a.Error)
	}
	tw.Flush()

	if w.Command != nil {
		b, _ := json.MarshalIndent(w.Command, "  ", "  ")
		fmt.Fprintf(out, "\ncommand (payee data masked):\n  %s\n", b)
	}
	if w.PayeeInfoSealed {
		fmt.Fprintln(out, "  (payee_info present but not shown: that instance has no PII keys)")
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) requery(args []string) error {
	fs := c.flags("requery", "[flags] <withdrawal id>",
		`Asks for a fresh provider query of a withdrawal now: a SUBMITTED or SUCCEEDED one is taken by the
poller's next sweep, an UNKNOWN one by the dispatcher (which queries first and re-sends the stored
request only once the provider's "not found" is conclusive). Other states are refused (409).
Nothing else changes: no state change, no event.`)
	client := c.adminFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("requery: give one withdrawal id")
	}
	a, err := client()
	if err != nil {
		return err
	}
	var res admin.RequeryResult
	if err := a.call(context.Background(), http.MethodPost, "/v1/withdrawals/"+url.PathEscape(pos[0])+"/requery", &res); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "requery of %s (%s, %s) is due now for the %s\n", res.ID, res.OutRequestNo, res.State, res.By)
	return nil
}
