package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/admin/admintest"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/testenv"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// invoke runs withdrawctl in-process with env and returns stdout, stderr
// and the error.
func invoke(t *testing.T, env map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(args, &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return env[k] }})
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"submit", "--help"}, {"show", "--help"}, {"requery", "--help"}, {"events", "--help"},
		{"dlq", "--help"}, {"dlq", "list", "--help"}, {"dlq", "replay", "--help"}, {"schema", "--help"}, {"validate", "--help"},
	} {
		out, _, err := invoke(t, nil, "", args...)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(out, "Usage: withdrawctl") {
			t.Errorf("%v: no usage:\n%s", args, out)
		}
	}
	// Settings are the services' names.
	out, _, _ := invoke(t, nil, "", "submit", "--help")
	for _, want := range []string{"WITHDRAW_KAFKA_BROKERS", "WITHDRAW_COMMANDS_TOPIC", "--out-request-no"} {
		if !strings.Contains(out, strings.TrimPrefix(want, "--")) {
			t.Errorf("submit --help lacks %s", want)
		}
	}
	if _, _, err := invoke(t, nil, "", "frobnicate"); err == nil {
		t.Error("unknown command accepted")
	}
}

// readAll reads every message of a topic (all partitions) until count are
// read or the deadline passes.
func readAll(t *testing.T, brokers []string, topic string, count int) []kafkautil.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, done := kafkautil.Client(brokers)
	defer done()
	ps, err := kafkautil.Partitions(ctx, client, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafkautil.Record
	next := map[int]int64{}
	for len(out) < count && ctx.Err() == nil {
		for _, p := range ps {
			recs, err := kafkautil.Fetch(ctx, client, topic, p, next[p], 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out = append(out, r)
				next[p] = r.Offset + 1
			}
		}
	}
	if len(out) < count {
		t.Fatalf("%s: read %d messages, want %d", topic, len(out), count)
	}
	return out
}

// countMessages is the number of messages a topic holds.
func countMessages(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	client, done := kafkautil.Client(brokers)
	defer done()
	ps, err := kafkautil.Partitions(context.Background(), client, topic)
	if err != nil {
		t.Fatal(err)
	}
	bnd, err := kafkautil.Bounds(context.Background(), client, topic, ps)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, b := range bnd {
		n += b[1] - b[0]
	}
	return n
}

func TestSubmit(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.UniqueTopic(t, "ctl.commands")
	testenv.CreateTopic(t, topic, 3)
	env := map[string]string{"WITHDRAW_KAFKA_BROKERS": strings.Join(brokers, ","), "WITHDRAW_COMMANDS_TOPIC": topic}

	// From flags.
	out, _, err := invoke(t, env, "", "submit", "--channel", "wechatpay_platform", "--out-request-no", "CTL0001",
		"--amount", "100", "--account-type", "BASIC", "--remark", "交易提现")
	if err != nil || !strings.Contains(out, "produced wechatpay_platform default/CTL0001 amount 100 fen") {
		t.Fatalf("submit from flags: %v\n%s", err, out)
	}
	// From stdin, byte for byte; an Allinpay one from --detail flags.
	fileCmd := `{"channel":"wechatpay_ecommerce","out_request_no":"CTL0002","sub_mchid":"1900000109","amount":7}`
	if out, _, err := invoke(t, env, fileCmd+"\n", "submit", "--file", "-"); err != nil {
		t.Fatalf("submit from stdin: %v\n%s", err, out)
	}
	if out, _, err := invoke(t, env, "", "submit", "--channel", "allinpay_shopoint", "--out-request-no", "CTL0003",
		"--detail", "account_user_id=100,amount=60,summary=提现", "--detail", "is_platform=true,amount=40"); err != nil {
		t.Fatalf("submit allinpay: %v\n%s", err, out)
	}

	// Invalid ones are not produced, with their reason code and status 2.
	for _, c := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"--channel", "wechatpay_platform", "--out-request-no", "BAD1", "--amount", "0", "--account-type", "BASIC"}, "", "reason_code=INVALID_AMOUNT"},
		{[]string{"--channel", "wechatpay_ecommerce", "--out-request-no", "BAD2", "--amount", "5"}, "", "reason_code=FIELD_REQUIRED field=sub_mchid"},
		{[]string{"--channel", "paypal", "--out-request-no", "BAD3", "--amount", "5"}, "", "reason_code=INVALID_CHANNEL"},
		{[]string{"--file", "-"}, `{"channel":"wechatpay_platform","out_request_no":"BAD4","amount":"5"}`, "reason_code=INVALID_FIELD_TYPE"},
		{[]string{"--file", "-"}, `not json`, ""},
	} {
		out, stderr, err := invoke(t, env, c.stdin, append([]string{"submit"}, c.args...)...)
		if exitCode(err) != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d (%v), out %q %q; want status 2 and %q", c.args, exitCode(err), err, out, stderr, c.want)
		}
	}

	msgs := readAll(t, brokers, topic, 3)
	if n := countMessages(t, brokers, topic); n != 3 {
		t.Fatalf("%d messages on the topic, want 3 (invalid ones must not be produced)", n)
	}
	byKey := map[string]kafkautil.Record{}
	for _, m := range msgs {
		byKey[string(m.Key)] = m
	}
	if got := string(byKey["CTL0002"].Value); got != fileCmd {
		t.Errorf("stdin command produced as %q, want the bytes %q", got, fileCmd)
	}
	for _, k := range []string{"CTL0001", "CTL0003"} {
		cmd, err := withdrawal.Decode(byKey[k].Value)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if rej := withdrawal.Validate(cmd); rej != nil {
			t.Errorf("%s: %v", k, rej)
		}
		if k == "CTL0003" && (cmd.TotalAmount() != 100 || len(cmd.Details) != 2) {
			t.Errorf("allinpay command = %+v", cmd)
		}
		if k == "CTL0001" && (cmd.Amount != 100 || cmd.Remark != "交易提现") {
			t.Errorf("platform command = %+v", cmd)
		}
	}
	// The partition is the one the services' murmur2 writer picks.
	ps := []int{0, 1, 2}
	for k, m := range byKey {
		if want := (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(k)}, ps...); m.Partition != want {
			t.Errorf("%s on partition %d, want %d", k, m.Partition, want)
		}
	}
}

func TestDLQListReplay(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	dlq := testenv.UniqueTopic(t, "ctl.dlq")
	commands := testenv.UniqueTopic(t, "ctl.commands")
	testenv.CreateTopic(t, dlq, 1)
	testenv.CreateTopic(t, commands, 1)
	env := map[string]string{"WITHDRAW_KAFKA_BROKERS": strings.Join(brokers, ","),
		"WITHDRAW_COMMANDS_TOPIC": commands, "WITHDRAW_DLQ_TOPIC": dlq}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Two dead letters as the intake writes them.
	dead := func(key, value, reason string, extra ...kafka.Header) {
		headers := []kafka.Header{{Key: "trace", Value: []byte("t-1")}, {Key: "error", Value: []byte(reason)},
			{Key: "original_topic", Value: []byte("withdraw.commands")}, {Key: "original_partition", Value: []byte("4")},
			{Key: "original_offset", Value: []byte("1234")}}
		if _, _, err := kafkautil.Produce(ctx, brokers, dlq, []byte(key), []byte(value), append(headers, extra...)); err != nil {
			t.Fatal(err)
		}
	}
	dead("DLQ1", `{"channel":"wechatpay_platform","out_request_no":DLQ1,"amount":1}`, "undecodable command: not JSON")
	dead("DLQ2", `{"channel":"wechatpay_platform","amount":1}`, "undecodable command: no string out_request_no")
	// A dead letter truncated to fit the topic.
	sha := strings.Repeat("ab", 32)
	dead("DLQ3", `{"channel":"wechatpay_platform","out_request_no":"DLQ3","remark":"xxxx`,
		"value of 1048400 bytes exceeds the 65536-byte limit [dead letter truncated to fit the topic: value cut to its first 70 of 1048400 bytes; see original_size, original_sha256]",
		kafka.Header{Key: "truncated", Value: []byte("true")}, kafka.Header{Key: "original_size", Value: []byte("1048400")},
		kafka.Header{Key: "original_sha256", Value: []byte(sha)})

	out, _, err := invoke(t, env, "", "dlq", "list", "--bytes", "20")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0  ", "undecodable command: not JSON", "withdraw.commands/4@1234", `"{\"channel\":\"wechatpa"… (65 bytes)`,
		"TRUNCATED: value 1048400 bytes sha256=" + sha, "3 dead letter(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list lacks %q:\n%s", want, out)
		}
	}

	// Replaying the broken bytes is refused; a fixed version goes through;
	// --force replays bytes as they are.
	if out, _, err := invoke(t, env, "", "dlq", "replay", "--offset", "0"); exitCode(err) != 2 || !strings.Contains(err.Error(), "still not a command") {
		t.Fatalf("replay of undecodable bytes: %v %s", err, out)
	}
	fixed := filepath.Join(t.TempDir(), "fixed.json")
	fixedCmd := `{"channel":"wechatpay_platform","out_request_no":"DLQ1","amount":1,"account_type":"BASIC"}`
	if err := os.WriteFile(fixed, []byte(fixedCmd), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = invoke(t, env, "", "dlq", "replay", "--offset", "0", "--value-file", fixed)
	if err != nil || !strings.Contains(out, "replayed "+dlq+"/0@0 to "+commands) {
		t.Fatalf("replay fixed: %v\n%s", err, out)
	}
	if _, stderr, err := invoke(t, env, "", "dlq", "replay", "--partition", "0", "--offset", "1", "--force"); err != nil || !strings.Contains(stderr, "--force") {
		t.Fatalf("replay --force: %v %s", err, stderr)
	}
	for _, force := range []string{"--force=false", "--force"} {
		if _, _, err := invoke(t, env, "", "dlq", "replay", "--offset", "2", force); exitCode(err) != 2 || !strings.Contains(err.Error(), "only the first 70 of 1048400 bytes") {
			t.Errorf("replay of a truncated dead letter (%s): %v", force, err)
		}
	}
	if _, _, err := invoke(t, env, "", "dlq", "replay", "--offset", "9"); err == nil || !strings.Contains(err.Error(), "no dead letter") {
		t.Errorf("replay of a missing offset: %v", err)
	}

	msgs := readAll(t, brokers, commands, 2)
	if string(msgs[0].Value) != fixedCmd || string(msgs[0].Key) != "DLQ1" {
		t.Errorf("replayed fixed = %q key %q", msgs[0].Value, msgs[0].Key)
	}
	if msgs[0].Header("replayed_from") != dlq+"/0@0" || msgs[0].Header("trace") != "t-1" || msgs[0].Header("error") != "" || msgs[0].Header("original_offset") != "" {
		t.Errorf("replayed headers = %+v", msgs[0].Headers)
	}
	if string(msgs[1].Value) != `{"channel":"wechatpay_platform","amount":1}` || string(msgs[1].Key) != "DLQ2" {
		t.Errorf("forced replay = %q key %q", msgs[1].Value, msgs[1].Key)
	}
}

func TestShowAndRequery(t *testing.T) {
	db := admintest.DB(t)
	keys := admintest.Keys(t)
	w := admintest.SeedCancel(t, db, keys, "CTLSHOW1", withdrawal.StateSubmitted)
	const token = "ctl-test-token"
	h, err := admin.New(db, admin.Options{Token: token, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	tokenFile, wrongFile := filepath.Join(dir, "token"), filepath.Join(dir, "wrong")
	_ = os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	_ = os.WriteFile(wrongFile, []byte("nope\n"), 0o600)
	env := map[string]string{"WITHDRAW_ADMIN_URL": srv.URL, "WITHDRAW_ADMIN_TOKEN_FILE": tokenFile}

	out, _, err := invoke(t, env, "", "show", w.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{w.ID, "wechatpay_cancel / default / CTLSHOW1", "SUBMITTED (version 2)", "101 fen (1.01 yuan)",
		"withdrawal.accepted", "submit", "HTTP 200", "2222\""} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{admintest.AccountNumber, admintest.IDNumber, admintest.AccountName, admintest.ProviderRequestMarker} {
		if strings.Contains(out, secret) {
			t.Errorf("show printed %q", secret)
		}
	}
	byKey, _, err := invoke(t, env, "", "show", "--channel", "wechatpay_cancel", "--out-request-no", "CTLSHOW1")
	if err != nil || byKey != out {
		t.Errorf("show by key: %v\n%s", err, byKey)
	}
	raw, _, err := invoke(t, env, "", "show", w.ID, "--json")
	var v admin.View
	if err != nil || json.Unmarshal([]byte(raw), &v) != nil || v.Withdrawal.ID != w.ID {
		t.Errorf("show --json: %v %s", err, raw)
	}

	if _, _, err := invoke(t, env, "", "show", "missing-id"); exitCode(err) != 3 || !strings.Contains(err.Error(), "404 NOT_FOUND") {
		t.Errorf("show missing: %v", err)
	}
	if _, _, err := invoke(t, env, "", "show", w.ID, "--admin-token-file", wrongFile); exitCode(err) != 3 || !strings.Contains(err.Error(), "401 UNAUTHORIZED") {
		t.Errorf("show with a wrong token: %v", err)
	}
	if _, _, err := invoke(t, map[string]string{"WITHDRAW_ADMIN_URL": srv.URL}, "", "show", w.ID); err == nil || !strings.Contains(err.Error(), "WITHDRAW_ADMIN_TOKEN_FILE") {
		t.Errorf("show without a token: %v", err)
	}

	out, _, err = invoke(t, env, "", "requery", w.ID)
	if err != nil || !strings.Contains(out, "due now for the poller") {
		t.Fatalf("requery: %v %s", err, out)
	}
	row, err := store.GetWithdrawal(context.Background(), db, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(row.NextAttemptAt); d < -time.Second || d > time.Minute {
		t.Errorf("after requery next_attempt_at = %v", row.NextAttemptAt)
	}
	failed := admintest.SeedCancel(t, db, keys, "CTLFAILED", withdrawal.StateFailed)
	if _, _, err := invoke(t, env, "", "requery", failed.ID); exitCode(err) != 3 || !strings.Contains(err.Error(), "409 NOT_REQUERYABLE") {
		t.Errorf("requery of a FAILED withdrawal: %v", err)
	}
}

func TestEvents(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.UniqueTopic(t, "ctl.events")
	testenv.CreateTopic(t, topic, 2)
	env := map[string]string{"WITHDRAW_KAFKA_BROKERS": strings.Join(brokers, ","), "WITHDRAW_EVENTS_TOPIC": topic}
	ctx := context.Background()
	publish := func(ev withdrawal.Event) {
		b, _ := json.Marshal(ev)
		key := ev.WithdrawalID
		if key == "" {
			key = ev.OutRequestNo
		}
		if _, _, err := kafkautil.Produce(ctx, brokers, topic, []byte(key), b, nil); err != nil {
			t.Fatal(err)
		}
	}
	base := withdrawal.Event{Channel: withdrawal.ChannelWeChatPlatform, Account: "default", Amount: 100, OccurredAt: "2026-11-22T10:00:00.000+08:00"}
	e1, e2, rej, other := base, base, base, base
	e1.EventID, e1.Type, e1.WithdrawalID, e1.Version, e1.OutRequestNo, e1.State = "e1", "withdrawal.accepted", "W1", 1, "N1", withdrawal.StateAccepted
	e2.EventID, e2.Type, e2.WithdrawalID, e2.Version, e2.OutRequestNo, e2.State, e2.PreviousState, e2.ProviderStatus =
		"e2", "withdrawal.submitted", "W1", 2, "N1", withdrawal.StateSubmitted, withdrawal.StateSubmitting, "CREATE_SUCCESS"
	rej.EventID, rej.Type, rej.OutRequestNo, rej.State, rej.ReasonCode = "r1", "withdrawal.rejected", "R1", withdrawal.StateRejected, "INVALID_AMOUNT"
	other.EventID, other.Type, other.WithdrawalID, other.Version, other.OutRequestNo = "o1", "withdrawal.accepted", "W2", 1, "N2"
	for _, ev := range []withdrawal.Event{e1, other, e2, rej} {
		publish(ev)
	}
	// The broker serves the new topic's records before the CLI reads them
	// (a just-created topic can answer fetches empty for a moment).
	readAll(t, brokers, topic, 4)

	out, _, err := invoke(t, env, "", "events", "--from", "beginning", "--withdrawal-id", "W1", "--max", "2", "--timeout", "20s")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "withdrawal.accepted") || !strings.Contains(lines[1], "SUBMITTING→SUBMITTED") ||
		!strings.Contains(lines[1], "provider=CREATE_SUCCESS") || strings.Contains(out, "W2") {
		t.Errorf("events of W1:\n%s", out)
	}
	out, _, err = invoke(t, env, "", "events", "--from", "beginning", "--out-request-no", "R1", "--max", "1", "--timeout", "20s")
	if err != nil || !strings.Contains(out, "reason_code=INVALID_AMOUNT") {
		t.Errorf("rejection by out_request_no: %v\n%s", err, out)
	}
	// Following: only new events; ends at --timeout without error.
	done := make(chan string)
	go func() {
		out, _, err := invoke(t, env, "", "events", "--json", "--max", "1", "--timeout", "20s")
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	time.Sleep(1500 * time.Millisecond) // the tail has read the ends of the partitions
	e3 := e2
	e3.EventID, e3.Type, e3.Version, e3.State = "e3", "withdrawal.succeeded", 3, withdrawal.StateSucceeded
	publish(e3)
	if out := <-done; !strings.Contains(out, `"event_id":"e3"`) {
		t.Errorf("follow printed %q, want only e3", out)
	}
}

func TestHealth(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer ok.Close()
	if _, _, err := invoke(t, nil, "", "health", ok.URL+"/readyz"); err != nil {
		t.Errorf("healthy: %v", err)
	}
	if _, _, err := invoke(t, nil, "", "health", ok.URL+"/other"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("unhealthy: %v", err)
	}
	if _, _, err := invoke(t, nil, "", "health", "http://127.0.0.1:1/readyz"); err == nil {
		t.Error("closed port reported healthy")
	}
}

func TestReconShow(t *testing.T) {
	db := admintest.DB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	items := []store.ReconItem{
		{BillDate: "2024-05-01", Source: "wechatpay/default/platform/BASIC", ItemKey: "flow:1", Outcome: store.ReconMatched, LineKind: "withdraw", OutRequestNo: "A1", BillAmount: 1234, OurAmount: 1234, CreatedAt: now},
		{BillDate: "2024-05-01", Source: "wechatpay/default/platform/BASIC", ItemKey: "flow:2", Outcome: store.ReconNotOurs, LineKind: "withdraw", OutRequestNo: "X9", BillAmount: 500, CreatedAt: now},
		{BillDate: "2024-05-01", Source: "wechatpay/default/platform/BASIC", ItemKey: "ours:w3", Outcome: store.ReconMissing, OutRequestNo: "A3", OurAmount: 700, OurState: "SUCCEEDED", WithdrawalID: "w3", CreatedAt: now},
	}
	if _, err := store.InsertReconItems(ctx, db, items); err != nil {
		t.Fatal(err)
	}
	src := store.ReconSource{BillDate: "2024-05-01", Source: "wechatpay/default/platform/BASIC", Status: store.ReconDone, Attempts: 2, BillLines: 2, CreatedAt: now, UpdatedAt: now}
	if err := db.Gorm().Create(&src).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := store.RecomputeReconDay(ctx, db, "2024-05-01", 1, now); err != nil {
		t.Fatal(err)
	}
	const token = "ctl-test-token"
	h, err := admin.New(db, admin.Options{Token: token, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	env := map[string]string{"WITHDRAW_ADMIN_URL": srv.URL, "WITHDRAW_ADMIN_TOKEN_FILE": tokenFile}

	out, _, err := invoke(t, env, "", "recon", "show", "--date", "2024-05-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Reconciliation of 2024-05-01: DONE (1 of 1 bills read, 2 bill lines", "MATCHED", "12.34",
		"NOT_OURS", "5.00", "MISSING", "7.00", "attempts 2", "X9", "A3", "SUCCEEDED"} {
		if !strings.Contains(out, want) {
			t.Errorf("recon show lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := invoke(t, env, "", "recon", "show", "--date", "2024-05-02"); exitCode(err) != 3 || !strings.Contains(err.Error(), "404 NOT_FOUND") {
		t.Errorf("recon show of a day never reconciled: %v", err)
	}
	if _, _, err := invoke(t, env, "", "recon", "show", "--date", "May 1"); err == nil {
		t.Error("recon show accepted a bad date")
	}
}
