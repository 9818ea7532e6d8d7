package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	stdpng "image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/paycore/withdraw/internal/devstack"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/provider/providertest"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// chromium finds the browser: $WITHDRAW_CHROMIUM, else Debian's chromium
// (installed by deploy/local/env.sh up, like MariaDB). Without one the test
// is skipped under -short and fails otherwise, so a missing browser never
// looks like a green run.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WITHDRAW_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skip("no chromium (make env-up installs it)")
	}
	t.Fatal("no chromium found: run make env-up (deploy/local/env.sh installs Debian's chromium) or set WITHDRAW_CHROMIUM")
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const testToken = "console-browser-test-token"

// TestConsoleInBrowser drives a real headless Chromium against a devstack
// (embedded Kafka, SQLite, the provider sandbox, the whole pipeline) as an
// operator would: a wrong token is refused; log in; search a withdrawal by
// out_request_no; open it; see its events and provider calls; press
// Requery and see the state it reaches; a cross-site POST is refused. It
// writes the screenshots of docs/console.md.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	browser := chromium(t)
	logs := &storetest.LogBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	s, err := devstack.Start(ctx, devstack.Options{
		DataDir: t.TempDir(), KafkaAddr: freeAddr(t), HTTPAddr: "127.0.0.1:0", SandboxAddr: "127.0.0.1:0",
		Partitions: 1, AdminToken: testToken, LogOutput: logs, FinalDelay: 12 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.HTTPAddr

	// Some traffic for the overview: the demo's sample commands of every
	// channel, with duplicates, rejections and dead letters.
	_ = devstack.RunDemo(ctx, s, devstack.DemoOptions{N: 24, Timeout: 40 * time.Second, Out: io.Discard, Progress: io.Discard, Seed: 7})

	// The withdrawal the operator looks for: a cancel-withdraw one, whose
	// payee data (Chinese names) is shown masked.
	orn := fmt.Sprintf("CONSOLE%d", time.Now().UnixMilli())
	cmd := providertest.Command(withdrawal.ChannelWeChatCancel, orn, 12345)
	body, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kafkautil.Produce(ctx, s.Brokers, devstack.CommandsTopic, []byte(orn), body, nil); err != nil {
		t.Fatal(err)
	}
	row := waitFor(t, s.DB, orn, func(w *store.Withdrawal) bool { return w.State == string(withdrawal.StateSubmitted) })

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("lang", "en-US"), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The first run starts the browser, for as long as bctx lives: no
	// timeout on it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}

	// A wrong token is refused.
	do(t, bctx, "wrong token",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	if msg := text(t, bctx, "login-error"); !strings.Contains(msg, "Wrong token") {
		t.Fatalf("wrong token: %q", msg)
	}

	// Log in, search by out_request_no, open the withdrawal.
	do(t, bctx, "log in",
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("overview")),
	)
	overview := text(t, bctx, "overview")
	for _, want := range []string{"Withdrawals by channel and state", "Stuck", "Dead letters", "Beijing"} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	do(t, bctx, "search and open",
		chromedp.Navigate(base+"/ui/search"),
		chromedp.WaitVisible(chromedp.ID("out_request_no")),
		chromedp.SendKeys(chromedp.ID("out_request_no"), orn),
		chromedp.Click(chromedp.ID("search")),
		chromedp.WaitVisible(chromedp.ID("results")),
		chromedp.Click(chromedp.CSS(`#results a[href="/ui/withdrawals/`+row.ID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("timeline")),
	)
	state, timeline, command := text(t, bctx, "state"), text(t, bctx, "timeline"), text(t, bctx, "command")
	if state != string(withdrawal.StateSubmitted) {
		t.Errorf("state shown %q, want SUBMITTED", state)
	}
	for _, want := range []string{"withdrawal.accepted", "withdrawal.submitted", "provider call", "HTTP 200", "instance devstack", "Beijing"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
	// Masked payee data: names keep their first character, numbers their
	// last four; the Chinese values come through intact.
	if strings.Contains(command, "6222000011112222") || strings.Contains(command, "测试有限公司") ||
		!strings.Contains(command, "测") || !strings.Contains(command, "工商银行") || !strings.Contains(command, "2222") {
		t.Errorf("command not masked as expected:\n%s", command)
	}

	// Requery, then watch the page reach the provider's final answer.
	do(t, bctx, "requery", chromedp.Click(chromedp.ID("requery")), chromedp.WaitVisible(chromedp.ID("flash")))
	if flash := text(t, bctx, "flash"); !strings.Contains(flash, "Requery requested") {
		t.Fatalf("requery: %q", flash)
	}
	deadline := time.Now().Add(45 * time.Second)
	for state != string(withdrawal.StateSucceeded) {
		if time.Now().After(deadline) {
			t.Fatalf("the page still shows %s", state)
		}
		time.Sleep(500 * time.Millisecond)
		do(t, bctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("state")))
		state = text(t, bctx, "state")
	}
	if tl := text(t, bctx, "timeline"); !strings.Contains(tl, "withdrawal.succeeded") || !strings.Contains(tl, "query") {
		t.Errorf("timeline after the requery lacks the query and the succeeded event:\n%s", tl)
	}

	// A page elsewhere posting to the console is refused, although the
	// browser holds a session (and sends its cookie: the ports differ, the
	// site is the same).
	requeries := strings.Count(logs.String(), "requery requested")
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/ui/withdrawals/%s/requery"><input name="csrf" value="guessed"></form><script>document.getElementById("f").submit()</script>`, base, row.ID)
	}))
	defer evil.Close()
	do(t, bctx, "cross-site POST",
		chromedp.Navigate(evil.URL),
		chromedp.Sleep(time.Second),
		chromedp.WaitReady(chromedp.CSS("body")),
	)
	if body, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body"))); err != nil || !strings.Contains(body, "cross-origin request refused") {
		t.Errorf("cross-site POST was not refused: %q %v", body, err)
	}
	if n := strings.Count(logs.String(), "requery requested"); n != requeries {
		t.Errorf("the refused POST requested a requery (%d, before %d)", n, requeries)
	}
	if !strings.Contains(logs.String(), "cross-origin request refused") {
		t.Errorf("the refusal was not logged")
	}

	// The demo's dead letters: listed, inspected, and a replay of bytes
	// that are not a command is refused by the CLI's rules, until forced
	// and confirmed.
	do(t, bctx, "dead letters",
		chromedp.Navigate(base+"/ui/deadletters"),
		chromedp.Click(chromedp.CSS(`table a[href^="/ui/deadletters/"]`)),
		chromedp.WaitVisible(chromedp.ID("replay")),
		chromedp.Click(chromedp.ID("replay")),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if msg := text(t, bctx, "flash"); !strings.Contains(msg, "Refused: still not a command") {
		t.Errorf("replay of a dead letter: %q", msg)
	}
	do(t, bctx, "forced replay",
		chromedp.Click(chromedp.CSS(`input[name="force"]`)),
		chromedp.Click(chromedp.ID("replay")),
		chromedp.WaitVisible(chromedp.ID("confirm-replay")),
		chromedp.Click(chromedp.ID("confirm-replay")),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if msg := text(t, bctx, "flash"); !strings.Contains(msg, "Replayed "+devstack.DLQTopic) || !strings.Contains(msg, "forced") {
		t.Errorf("forced replay: %q", msg)
	}

	// Screenshots: every run takes and checks them; with
	// WITHDRAW_UPDATE_SCREENSHOTS=1 (make screenshots) they replace
	// docs/console.md's, otherwise they go to a temporary directory so a
	// test run leaves the tree clean (the pages show the time).
	docs := t.TempDir()
	if os.Getenv("WITHDRAW_UPDATE_SCREENSHOTS") != "" {
		docs = filepath.Join("..", "..", "docs", "console")
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shot := func(name, url, ready string, width, height int64, opts ...chromedp.EmulateViewportOption) {
		do(t, bctx, "screenshot "+name,
			chromedp.EmulateViewport(width, height, opts...),
			chromedp.Navigate(url),
			chromedp.WaitVisible(chromedp.ID(ready)),
			chromedp.Sleep(300*time.Millisecond),
		)
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if cfg, err := stdpng.DecodeConfig(bytes.NewReader(png)); err != nil || int64(cfg.Width) < width/2 {
			t.Fatalf("screenshot %s is not a page-sized PNG: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(docs, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shot("overview.png", base+"/ui/overview", "overview", 1280, 900)
	shot("withdrawal.png", base+"/ui/withdrawals/"+row.ID, "timeline", 1280, 900)
	shot("withdrawal-phone.png", base+"/ui/withdrawals/"+row.ID, "timeline", 390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)

	// Logging out ends the session.
	do(t, bctx, "log out",
		chromedp.EmulateReset(),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(base+"/ui/overview"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	if loc, err := chromedp.Run(bctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/ui/") {
		t.Errorf("after logout the overview went to %s (%v), want the login form", loc, err)
	}
}

func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
}

// text is the text of the element with the id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// waitFor polls the database until the withdrawal of orn satisfies ok.
func waitFor(t *testing.T, db *store.DB, orn string, ok func(*store.Withdrawal) bool) *store.Withdrawal {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rows []store.Withdrawal
		if err := db.Gorm().Where("out_request_no = ?", orn).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) == 1 && ok(&rows[0]) {
			return &rows[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("withdrawal %s: not there in time (%d rows)", orn, len(rows))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
