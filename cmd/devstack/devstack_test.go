package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/devstack"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// These tests build the devstack binary and run it as a user would: no
// MySQL, no Kafka, nothing but the binary, on free ports and a temporary
// data directory.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// build compiles cmd/devstack and cmd/withdrawctl once per test binary.
func build(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "devstack-bin"); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/", ".", "../withdrawctl").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func binary(t *testing.T) string {
	build(t)
	return filepath.Join(binDir, "devstack")
}

// withdrawctl runs the project's CLI and returns its output.
func withdrawctl(t *testing.T, args ...string) string {
	t.Helper()
	build(t)
	out, err := exec.Command(filepath.Join(binDir, "withdrawctl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("withdrawctl %v: %v\n%s", args, err, out)
	}
	return string(out)
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

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running devstack.
type proc struct {
	cmd                  *exec.Cmd
	stdout, stderr       *syncBuffer
	kafka, http, sandbox string
	dataDir              string
	done                 chan error
}

func start(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	p := &proc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, kafka: freeAddr(t), http: freeAddr(t), sandbox: freeAddr(t),
		dataDir: dataDir, done: make(chan error, 1)}
	args := append([]string{"--data-dir", dataDir, "--kafka-addr", p.kafka, "--http-addr", p.http,
		"--sandbox-addr", p.sandbox}, extra...)
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = os.Environ()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("devstack stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
			if b, err := os.ReadFile(filepath.Join(dataDir, "devstack.log")); err == nil {
				t.Logf("devstack.log (last 4 KiB):\n%s", tail(b, 4096))
			}
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitUp waits for the banner and for /readyz to answer 200.
func (p *proc) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("devstack exited early: %v", err)
		default:
		}
		if strings.Contains(p.stdout.String(), "devstack is up") {
			resp, err := http.Get("http://" + p.http + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("devstack not ready within 30s")
}

// stop sends SIGINT (Ctrl-C) and expects a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("devstack exit after Ctrl-C: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("devstack did not stop within 25s of Ctrl-C")
	}
	if !strings.Contains(p.stderr.String(), "devstack: stopped") {
		t.Fatalf("no clean stop message; stderr:\n%s", p.stderr)
	}
}

type sent struct {
	key    string
	value  string
	expect withdrawal.State
}

// commands are what the end-to-end test produces: every channel, the
// sandbox's magic outcomes, and invalid commands.
func commands(prefix string) []sent {
	var out []sent
	add := func(key string, expect withdrawal.State, format string) {
		out = append(out, sent{key: key, value: fmt.Sprintf(format, key), expect: expect})
	}
	const (
		ecommerce = `{"channel":"wechatpay_ecommerce","out_request_no":"%%s","sub_mchid":"1900000110","amount":%d,"account_type":"BASIC","remark":"交易提现","bank_memo":"xx平台提现"}`
		platform  = `{"channel":"wechatpay_platform","account":"default","out_request_no":"%%s","amount":%d,"account_type":"BASIC","remark":"交易提现","bank_memo":"xx平台提现"}`
		cancel    = `{"channel":"wechatpay_cancel","out_request_no":"%%s","sub_mchid":"1900000109","amount":%d,"out_account_type":"BASIC_ACCOUNT","payee_type":"OTHER_MERCHANT","payee_mchid":"1900000110",` +
			`"payee_info":{"account_type":"ACCOUNT_TYPE_CORPORATE","bank_account_info":{"account_bank":"工商银行","account_name":"某某有限公司","account_number":"6222020200112233445","bank_branch_id":"402713354941"},` +
			`"identity_info":{"id_doc_type":"IDENTIFICATION_TYPE_IDCARD","identification_name":"张三","identification_no":"110101199003074477"}},` +
			`"proof_media_list":{"proof_payee_media":[{"proof_media":"m1","proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"}]},"remark":"特殊理由"}`
		allinpay = `{"channel":"allinpay_shopoint","out_request_no":"%%s","details":[{"account_user_id":100,"amount":%d,"summary":"提现"},{"is_platform":true,"amount":100}]}`
	)
	for i, amount := range []int64{10000, 12341, 12342, 12343} { // success, FAIL, CLOSE, refunded
		for _, ch := range []struct {
			name, format string
			total        int64
		}{{"E", ecommerce, amount}, {"P", platform, amount}, {"C", cancel, amount}, {"A", allinpay, amount + 100}} {
			if ch.name == "A" && i == 3 {
				continue // Allinpay knows no refund
			}
			ch0 := map[string]withdrawal.Channel{"E": withdrawal.ChannelWeChatEcommerce, "P": withdrawal.ChannelWeChatPlatform,
				"C": withdrawal.ChannelWeChatCancel, "A": withdrawal.ChannelAllinpayShopoint}[ch.name]
			add(fmt.Sprintf("%s%s%d", prefix, ch.name, i), devstack.ExpectedFinal(ch0, ch.total), fmt.Sprintf(ch.format, amount))
		}
	}
	add(prefix+"X1", withdrawal.StateRejected, `{"channel":"wechatpay_platform","out_request_no":"%s","amount":0,"account_type":"BASIC"}`)
	add(prefix+"X2", withdrawal.StateRejected, `{"channel":"wechatpay_ecommerce","out_request_no":"%s","amount":100}`)
	return out
}

// TestDevstackEndToEnd runs the binary, produces commands to its Kafka with
// a kafka-go writer, and sees every one reach its final state on
// withdraw.events; then Ctrl-C stops it cleanly, and a restart keeps the
// data directory's keys and data.
func TestDevstackEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, dir, "--fresh")
	p.waitUp(t)

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + p.http + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + p.sandbox + "/_sandbox/ledger")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sandbox ledger: %v %v", resp, err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	brokers := []string{p.kafka}
	events := make(chan kafka.Message, 256)
	from, err := devstack.EndOffsets(ctx, brokers, devstack.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = devstack.Follow(ctx, brokers, devstack.EventsTopic, from, events) }()

	cmds := commands("E2E")
	w := kafkautil.NewWriter(brokers, devstack.CommandsTopic)
	defer w.Close()
	var msgs []kafka.Message
	want := map[string]withdrawal.State{}
	for _, c := range cmds {
		msgs = append(msgs, kafka.Message{Key: []byte(c.key), Value: []byte(c.value)})
		want[c.key] = c.expect
	}
	started := time.Now()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	// And one with the project's CLI, as the banner shows.
	withdrawctl(t, "submit", "--kafka-brokers", p.kafka, "--channel", "wechatpay_platform", "--out-request-no", "E2ECLI1",
		"--amount", "100", "--account-type", "BASIC")
	want["E2ECLI1"] = withdrawal.StateSucceeded

	got := map[string]withdrawal.State{}
	versions := map[string]int{}
	final := func(key string) bool {
		s := got[key]
		switch want[key] {
		case withdrawal.StateReversed:
			return s == withdrawal.StateReversed
		case withdrawal.StateRejected:
			return s == withdrawal.StateRejected
		}
		return s == withdrawal.StateSucceeded || s == withdrawal.StateFailed || s == withdrawal.StateReversed
	}
	remaining := len(want)
	for remaining > 0 {
		select {
		case m := <-events:
			var e withdrawal.Event
			if err := json.Unmarshal(m.Value, &e); err != nil {
				t.Fatalf("event %s: %v", m.Value, err)
			}
			if _, ours := want[e.OutRequestNo]; !ours {
				continue
			}
			if e.Version != 0 && e.Version <= versions[e.OutRequestNo] {
				t.Errorf("%s: version %d after %d (out of order or duplicate)", e.OutRequestNo, e.Version, versions[e.OutRequestNo])
			}
			versions[e.OutRequestNo] = e.Version
			was := final(e.OutRequestNo)
			got[e.OutRequestNo] = e.State
			if !was && final(e.OutRequestNo) {
				remaining--
			}
		case <-ctx.Done():
			for k, s := range want {
				if !final(k) {
					t.Errorf("%s: state %q, want %s", k, got[k], s)
				}
			}
			t.Fatalf("%d of %d commands not final after %s", remaining, len(want), time.Since(started))
		}
	}
	for k, s := range want {
		if got[k] != s {
			t.Errorf("%s: final state %s, want %s", k, got[k], s)
		}
	}
	t.Logf("%d commands final in %s", len(want), time.Since(started).Round(time.Millisecond))

	// The admin API is mounted: it refuses a request without the token,
	// and withdrawctl shows a withdrawal with the token file the banner names.
	resp, err = http.Get("http://" + p.http + "/v1/withdrawals?channel=wechatpay_platform&out_request_no=E2ECLI1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin API without a token: %s", resp.Status)
	}
	if !strings.Contains(p.stdout.String(), filepath.Join(dir, "admin.token")) {
		t.Fatalf("the banner does not name the admin token file")
	}
	// The console is mounted and the banner names it.
	if !strings.Contains(p.stdout.String(), "http://"+p.http+"/ui/") {
		t.Fatalf("the banner does not name the console")
	}
	if resp, err := http.Get("http://" + p.http + "/ui/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("console login form: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	shown := withdrawctl(t, "show", "--admin-url", "http://"+p.http, "--admin-token-file", filepath.Join(dir, "admin.token"),
		"--channel", "wechatpay_cancel", "--out-request-no", "E2EC0")
	if !strings.Contains(shown, "SUCCEEDED") || strings.Contains(shown, "6222020200112233445") {
		t.Fatalf("withdrawctl show (final state, account number masked):\n%s", shown)
	}
	p.stop(t)

	// A restart reuses the data directory: the same keys, the same data.
	keys, err := os.ReadFile(filepath.Join(dir, "pii.keys"))
	if err != nil {
		t.Fatal(err)
	}
	p2 := start(t, dir)
	p2.waitUp(t)
	if again, _ := os.ReadFile(filepath.Join(dir, "pii.keys")); !bytes.Equal(keys, again) {
		t.Fatal("pii.keys changed across a restart")
	}
	// The embedded broker kept its topics: the events are still there.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	end, err := devstack.EndOffsets(ctx2, []string{p2.kafka}, devstack.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, o := range end {
		n += o
	}
	if n == 0 {
		t.Fatal("withdraw.events is empty after a restart")
	}
	p2.stop(t)
}

// TestDemo runs --demo 40 to the end and checks its summary.
func TestDemo(t *testing.T) {
	t.Parallel()
	p := start(t, t.TempDir(), "--fresh", "--demo", "40", "--demo-timeout", "45s")
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("--demo 40: %v\nstdout:\n%s\nstderr:\n%s", err, p.stdout, p.stderr)
		}
	case <-time.After(55 * time.Second):
		t.Fatal("--demo 40 did not finish within 55s")
	}
	out := p.stdout.String()
	for _, want := range []string{"devstack is up", "published 40 messages", "all channels", "(all final)",
		"rejected (invalid)     3/3", "rejected (conflicts)   1/1", "dead letters           1/1"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// Every valid command of the summary is final: the NOT FINAL column is 0.
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 7 && f[0] == "all" && f[1] == "channels" {
			if f[5] != "0" || f[6] != "33" {
				t.Errorf("summary line %q: want 0 not final of 33", sc.Text())
			}
		}
	}
	// Without a terminal, progress is plain lines on stderr.
	if !strings.Contains(p.stderr.String(), "final ") || strings.Contains(p.stderr.String(), "\r") {
		t.Errorf("progress on stderr:\n%s", p.stderr)
	}
}

// TestFreshRefusesForeignDirectory: --fresh never wipes a directory the
// devstack did not create.
func TestFreshRefusesForeignDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	precious := filepath.Join(dir, "thesis.tex")
	if err := os.WriteFile(precious, []byte("years of work"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "--fresh")
	select {
	case err := <-p.done:
		if err == nil {
			t.Fatal("devstack accepted a foreign --data-dir with --fresh")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("devstack did not refuse")
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("the foreign file is gone: %v", err)
	}
	if !strings.Contains(p.stderr.String(), "refusing to wipe") {
		t.Fatalf("stderr: %s", p.stderr)
	}
}

// TestHelp: --help documents every flag and the environment variables.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if _, err := parse([]string{"--help"}, &out); err == nil {
		t.Fatal("--help did not return flag.ErrHelp")
	}
	for _, flag := range []string{"-data-dir", "-fresh", "-kafka-addr", "-kafka-brokers", "-mysql-dsn", "-sandbox-addr",
		"-http-addr", "-admin-token", "-demo", "-demo-timeout", "-fault", "-final-delay", "-log-level", envPrefix} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
}

// TestEnv: WITHDRAW_DEVSTACK_* variables set flags; the flag wins.
func TestEnv(t *testing.T) {
	t.Setenv("WITHDRAW_DEVSTACK_DEMO", "7")
	t.Setenv("WITHDRAW_DEVSTACK_HTTP_ADDR", "127.0.0.1:1")
	t.Setenv("WITHDRAW_DEVSTACK_FAULT", "*:5xx=0.1;platform.submit:latency=10ms")
	s, err := parse([]string{"--http-addr", "127.0.0.1:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.demo != 7 || s.opts.HTTPAddr != "127.0.0.1:2" || len(s.opts.Faults) != 2 {
		t.Fatalf("settings %+v", s)
	}
}
