package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// N is the number of messages published: valid commands of every
	// channel, plus (from N = 5) a few identical and conflicting duplicates
	// and invalid commands, and (from N = 10) a dead letter or two.
	N int
	// Timeout bounds the wait for every command to be final.
	Timeout time.Duration
	// Out receives the summary table; Progress the progress bar.
	Out, Progress io.Writer
	// TTY redraws one progress line with \r; otherwise a plain line is
	// printed every few seconds.
	TTY bool
	// Seed varies the sample (default: the clock).
	Seed uint64
}

// Kinds of demo messages.
const (
	kindValid     = "valid"
	kindInvalid   = "invalid"
	kindDuplicate = "duplicate" // byte-identical re-send: a no-op
	kindConflict  = "conflict"  // same key, other parameters: REQUEST_CONFLICT
	kindGarbage   = "garbage"   // not a command at all: dead letter
)

// demoMessage is one published message and what it should lead to.
type demoMessage struct {
	kind    string
	key     string // out_request_no
	channel withdrawal.Channel
	amount  int64
	expect  withdrawal.State // for valid commands
	value   []byte
}

// DemoCommands returns n sample messages in publication order: originals
// first, then the duplicates, conflicts, invalid commands and dead letters.
// Out-request numbers start with prefix, so that runs never collide.
func DemoCommands(n int, prefix string, seed uint64) []demoMessage {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var garbage, invalid, dups int
	if n >= 5 {
		invalid, dups = max(1, n/12), max(1, n/12)
	}
	if n >= 10 {
		garbage = max(1, n/40)
	}
	valid := n - garbage - invalid - dups
	var out []demoMessage
	for i := range valid {
		ch := withdrawal.Channels[i%len(withdrawal.Channels)]
		key := fmt.Sprintf("%sV%04d", prefix, i)
		cmd, amount := sampleCommand(rng, ch, key)
		b, _ := json.Marshal(cmd)
		out = append(out, demoMessage{kind: kindValid, key: key, channel: ch, amount: amount,
			expect: ExpectedFinal(ch, amount), value: b})
	}
	originals := len(out)
	for i := range dups {
		j := (i * 7) % originals
		if out[j].channel == withdrawal.ChannelAllinpayShopoint && originals > 1 {
			j = (j + 1) % originals // a WeChat command: its amount is one field
		}
		orig := out[j]
		if i%2 == 0 {
			out = append(out, demoMessage{kind: kindDuplicate, key: orig.key, channel: orig.channel, value: orig.value})
			continue
		}
		var m map[string]any
		_ = json.Unmarshal(orig.value, &m)
		if _, ok := m["amount"]; ok {
			m["amount"] = orig.amount + 100 // other parameters under the same key
		} else {
			m["details"] = []map[string]any{{"is_platform": true, "amount": orig.amount + 100}}
		}
		b, _ := json.Marshal(m)
		out = append(out, demoMessage{kind: kindConflict, key: orig.key, channel: orig.channel, value: b})
	}
	for i := range invalid {
		key := fmt.Sprintf("%sX%04d", prefix, i)
		ch, v := invalidCommand(i, key)
		out = append(out, demoMessage{kind: kindInvalid, key: key, channel: ch, value: v})
	}
	for i := range garbage {
		key := fmt.Sprintf("%sG%04d", prefix, i)
		out = append(out, demoMessage{kind: kindGarbage, key: key, value: []byte("this is not JSON #" + strconv.Itoa(i))})
	}
	return out
}

// sampleCommand returns a valid command of ch and its total amount. About
// one in five takes a magic amount (see MagicFail etc.).
func sampleCommand(rng *rand.Rand, ch withdrawal.Channel, key string) (*withdrawal.Command, int64) {
	yuan := 1 + rng.Int64N(5000)
	fen := rng.Int64N(100)
	for fen >= MagicFail && fen <= MagicInit {
		fen = rng.Int64N(100)
	}
	switch r := rng.Float64(); {
	case r < 0.10:
		fen = MagicFail
	case r < 0.14:
		fen = MagicClose
	case r < 0.20 && ch.IsWeChat():
		fen = MagicRefund
	case r < 0.23 && (ch == withdrawal.ChannelWeChatEcommerce || ch == withdrawal.ChannelWeChatPlatform):
		fen = MagicInit
	}
	amount := yuan*100 + fen
	subMchIDs := []string{"1900000110", "1900000111", "1900000112"}
	sub := subMchIDs[rng.IntN(len(subMchIDs))]
	c := &withdrawal.Command{Channel: ch, Account: withdrawal.DefaultAccount, OutRequestNo: key, Amount: amount}
	switch ch {
	case withdrawal.ChannelWeChatEcommerce:
		c.SubMchID, c.AccountType, c.Remark, c.BankMemo = sub, []string{"BASIC", "OPERATION", "FEES"}[rng.IntN(3)], "交易提现", "xx平台提现"
	case withdrawal.ChannelWeChatPlatform:
		c.AccountType, c.Remark, c.BankMemo = "BASIC", "平台提现", "devstack"
	case withdrawal.ChannelWeChatCancel:
		c.SubMchID, c.OutAccountType, c.Remark = sub, "BASIC_ACCOUNT", "注销商户提现"
		c.ProofMediaList = json.RawMessage(`{"proof_payee_media":[{"proof_media":"devstack-media-1","proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"}]}`)
		if rng.IntN(2) == 0 {
			c.PayeeType, c.PayeeMchID = "OTHER_MERCHANT", "1900000199"
			c.PayeeInfo = &withdrawal.PayeeInfo{AccountType: "ACCOUNT_TYPE_CORPORATE",
				BankAccountInfo: &withdrawal.BankAccountInfo{AccountBank: "工商银行", AccountName: "某某有限公司",
					AccountNumber: "6222020200112233445", BankBranchID: "402713354941"},
				IdentityInfo: &withdrawal.IdentityInfo{IDDocType: "IDENTIFICATION_TYPE_IDCARD", IdentificationName: "张三",
					IdentificationNo: "110101199003074477"}}
		} else {
			c.PayeeType = "INDIVIDUAL"
			c.PayeeInfo = &withdrawal.PayeeInfo{AccountType: "ACCOUNT_TYPE_PRIVATE",
				BankAccountInfo: &withdrawal.BankAccountInfo{AccountBank: "招商银行", AccountName: "李四",
					AccountNumber: "6214830000000000", BankBranchID: "308584000013"},
				IdentityInfo: &withdrawal.IdentityInfo{IDDocType: "IDENTIFICATION_TYPE_IDCARD", IdentificationName: "李四",
					IdentificationNo: "110101199001011234"}}
		}
	case withdrawal.ChannelAllinpayShopoint:
		c.Amount = 0 // the details carry it
		uid := 100 + rng.Int64N(900)
		parts := 1 + rng.IntN(3)
		rest := amount
		for j := range parts {
			a := rest
			if j < parts-1 {
				a = 100 * (1 + rng.Int64N(max(1, rest/100/2)))
				if a >= rest {
					a = rest / 2 / 100 * 100
				}
			}
			if a <= 0 {
				continue
			}
			rest -= a
			d := withdrawal.AllinpayDetail{Amount: a, Summary: "提现"}
			switch j {
			case 0:
				d.AccountUserID = &uid
			case 1:
				d.ExternalCode = "ext" + strconv.FormatInt(uid, 10)
			default:
				d.IsPlatform = true
			}
			c.Details = append(c.Details, d)
		}
		if rest != 0 { // cannot happen; keep the sum exact anyway
			c.Details[0].Amount += rest
		}
	}
	return c, amount
}

// invalidCommand returns the i-th kind of invalid command.
func invalidCommand(i int, key string) (withdrawal.Channel, []byte) {
	cases := []struct {
		ch withdrawal.Channel
		v  string
	}{
		{withdrawal.ChannelWeChatPlatform, `{"channel":"wechatpay_platform","out_request_no":"%s","amount":0,"account_type":"BASIC"}`},
		{withdrawal.ChannelWeChatEcommerce, `{"channel":"wechatpay_ecommerce","out_request_no":"%s","amount":100}`},
		{"paypal", `{"channel":"paypal","out_request_no":"%s","amount":100}`},
		{withdrawal.ChannelWeChatPlatform, `{"channel":"wechatpay_platform","out_request_no":"%s","amout":100,"account_type":"BASIC"}`},
		{withdrawal.ChannelWeChatPlatform, `{"channel":"wechatpay_platform","account":"nosuch","out_request_no":"%s","amount":100,"account_type":"BASIC"}`},
		{withdrawal.ChannelAllinpayShopoint, `{"channel":"allinpay_shopoint","out_request_no":"%s","amount":300,"details":[{"is_platform":true,"amount":200}]}`},
	}
	c := cases[i%len(cases)]
	return c.ch, []byte(fmt.Sprintf(c.v, key))
}

// tracker follows the demo's messages through the events and dead letters.
type tracker struct {
	msgs      []demoMessage
	byKey     map[string]int // key → index of the original (valid or invalid)
	state     map[string]withdrawal.State
	version   map[string]int
	rejected  map[string]string // invalid key → reason code
	conflicts int               // rejections of re-used keys (REQUEST_CONFLICT)
	dead      map[string]bool   // dead-lettered keys
	// conflictCodes counts the reason codes of those (all REQUEST_CONFLICT
	// unless something is wrong).
	conflictCodes map[string]int
	events        int
}

func newTracker(msgs []demoMessage) *tracker {
	t := &tracker{msgs: msgs, byKey: map[string]int{}, state: map[string]withdrawal.State{}, version: map[string]int{},
		rejected: map[string]string{}, dead: map[string]bool{}, conflictCodes: map[string]int{}}
	for i, m := range msgs {
		if m.kind == kindValid || m.kind == kindInvalid || m.kind == kindGarbage {
			t.byKey[m.key] = i
		}
	}
	return t
}

func (t *tracker) event(b []byte) {
	var e withdrawal.Event
	if json.Unmarshal(b, &e) != nil {
		return
	}
	i, ok := t.byKey[e.OutRequestNo]
	if !ok {
		return // not ours
	}
	m := t.msgs[i]
	if m.kind == kindGarbage {
		return
	}
	t.events++
	if e.Type == withdrawal.EventRejected {
		if m.kind == kindInvalid {
			t.rejected[m.key] = e.ReasonCode
		} else {
			t.conflicts++
			t.conflictCodes[e.ReasonCode]++
		}
		return
	}
	if e.Version > t.version[m.key] {
		t.version[m.key], t.state[m.key] = e.Version, e.State
	}
}

func (t *tracker) deadLetter(key []byte) {
	if _, ok := t.byKey[string(key)]; ok {
		t.dead[string(key)] = true
	}
}

// done reports whether every message has had its effect.
func (t *tracker) done() bool {
	want := map[string]int{}
	for _, m := range t.msgs {
		switch m.kind {
		case kindValid:
			if !t.final(m) {
				return false
			}
		case kindInvalid:
			if _, ok := t.rejected[m.key]; !ok && !t.dead[m.key] {
				return false
			}
		case kindGarbage:
			if !t.dead[m.key] {
				return false
			}
		case kindConflict:
			want[kindConflict]++
		}
	}
	return t.conflicts >= want[kindConflict]
}

// final reports whether a valid command reached its final state: FAILED
// or REVERSED, or SUCCEEDED unless the sandbox will still refund it.
func (t *tracker) final(m demoMessage) bool {
	switch s := t.state[m.key]; s {
	case withdrawal.StateFailed, withdrawal.StateReversed:
		return true
	case withdrawal.StateSucceeded:
		return m.expect != withdrawal.StateReversed
	}
	return false
}

// progressStates are the columns of the progress line.
var progressStates = []withdrawal.State{withdrawal.StateAccepted, withdrawal.StateSubmitted, withdrawal.StateUnknown,
	withdrawal.StateSucceeded, withdrawal.StateFailed, withdrawal.StateReversed}

func (t *tracker) progress(elapsed time.Duration, width int) string {
	counts := map[withdrawal.State]int{}
	finished, total := 0, 0
	for _, m := range t.msgs {
		switch m.kind {
		case kindValid:
			total++
			if s := t.state[m.key]; s != "" {
				counts[s]++
			} else {
				counts["SENT"]++
			}
			if t.final(m) {
				finished++
			}
		case kindInvalid:
			total++
			if _, ok := t.rejected[m.key]; ok || t.dead[m.key] {
				finished++
			}
		case kindGarbage:
			total++
			if t.dead[m.key] {
				finished++
			}
		}
	}
	filled := 0
	if total > 0 {
		filled = finished * width / total
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %d/%d final ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), finished, total)
	if counts["SENT"] > 0 {
		fmt.Fprintf(&b, " sent %d", counts["SENT"])
	}
	for _, s := range progressStates {
		fmt.Fprintf(&b, " %s %d", strings.ToLower(string(s)), counts[s])
	}
	fmt.Fprintf(&b, "  rejected %d  dead letters %d  %.1fs", len(t.rejected)+t.conflicts, len(t.dead), elapsed.Seconds())
	return b.String()
}

// summary writes the table: per channel × state, then the rest.
func (t *tracker) summary(w io.Writer, elapsed time.Duration, complete bool) {
	cols := []withdrawal.State{withdrawal.StateSucceeded, withdrawal.StateFailed, withdrawal.StateReversed}
	fmt.Fprintf(w, "\n%-22s", "channel")
	for _, c := range cols {
		fmt.Fprintf(w, " %10s", c)
	}
	fmt.Fprintf(w, " %12s %8s\n", "NOT FINAL", "total")
	var totals [5]int
	for _, ch := range withdrawal.Channels {
		var row [5]int
		for _, m := range t.msgs {
			if m.kind != kindValid || m.channel != ch {
				continue
			}
			row[4]++
			switch {
			case !t.final(m):
				row[3]++
			case t.state[m.key] == withdrawal.StateSucceeded:
				row[0]++
			case t.state[m.key] == withdrawal.StateFailed:
				row[1]++
			default:
				row[2]++
			}
		}
		fmt.Fprintf(w, "%-22s %10d %10d %10d %12d %8d\n", ch, row[0], row[1], row[2], row[3], row[4])
		for i := range row {
			totals[i] += row[i]
		}
	}
	fmt.Fprintf(w, "%-22s %10d %10d %10d %12d %8d\n", "all channels", totals[0], totals[1], totals[2], totals[3], totals[4])

	var invalid, dups, conflicts, garbage, unexpected int
	reasons := map[string]int{}
	for _, m := range t.msgs {
		switch m.kind {
		case kindInvalid:
			invalid++
			if r, ok := t.rejected[m.key]; ok {
				reasons[r]++
			}
		case kindDuplicate:
			dups++
		case kindConflict:
			conflicts++
		case kindGarbage:
			garbage++
		case kindValid:
			if t.final(m) && t.state[m.key] != m.expect {
				unexpected++
			}
		}
	}
	var rs []string
	for _, r := range sortedReasons(reasons) {
		rs = append(rs, fmt.Sprintf("%s×%d", r, reasons[r]))
	}
	fmt.Fprintf(w, "\nrejected (invalid)     %d/%d  %s\n", len(t.rejected), invalid, strings.Join(rs, " "))
	var cs []string
	for _, r := range sortedReasons(t.conflictCodes) {
		cs = append(cs, fmt.Sprintf("%s×%d", r, t.conflictCodes[r]))
	}
	fmt.Fprintf(w, "rejected (conflicts)   %d/%d  %s (same out_request_no, other parameters; the original is untouched)\n",
		t.conflicts, conflicts, strings.Join(cs, " "))
	fmt.Fprintf(w, "duplicates (no-op)     %d     byte-identical re-sends: no new withdrawal, no event\n", dups)
	fmt.Fprintf(w, "dead letters           %d/%d  on %s\n", len(t.dead), garbage, DLQTopic)
	fmt.Fprintf(w, "events read            %d on %s\n", t.events, EventsTopic)
	if unexpected > 0 {
		fmt.Fprintf(w, "UNEXPECTED             %d final states differ from the sandbox's plan\n", unexpected)
	}
	status := "all final"
	if !complete {
		status = "NOT all final"
	}
	fmt.Fprintf(w, "elapsed                %s (%s)\n", elapsed.Round(100*time.Millisecond), status)
}

func sortedReasons(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ErrDemoTimeout is returned when the demo's commands are not all final in
// time.
var ErrDemoTimeout = errors.New("demo: not every command reached a final state in time")

// RunDemo publishes opts.N sample commands to the stack's Kafka, shows
// their progress from the events and dead-letter topics, and writes a
// summary. It returns when everything is final, at the timeout
// (ErrDemoTimeout), or when ctx ends.
func RunDemo(ctx context.Context, s *Stack, opts DemoOptions) error {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	prefix := "DEMO" + strings.ToUpper(strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36*36*36), 36))
	msgs := DemoCommands(opts.N, prefix, opts.Seed)
	t := newTracker(msgs)

	eventsFrom, err := EndOffsets(ctx, s.Brokers, EventsTopic)
	if err != nil {
		return err
	}
	dlqFrom, err := EndOffsets(ctx, s.Brokers, DLQTopic)
	if err != nil {
		return err
	}
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	events := make(chan kafka.Message, 256)
	dead := make(chan kafka.Message, 16)
	go func() { _ = Follow(followCtx, s.Brokers, EventsTopic, eventsFrom, events) }()
	go func() { _ = Follow(followCtx, s.Brokers, DLQTopic, dlqFrom, dead) }()

	start := time.Now()
	w := kafkautil.NewWriter(s.Brokers, CommandsTopic)
	defer w.Close()
	var first, rest []kafka.Message
	for _, m := range msgs {
		km := kafka.Message{Key: []byte(m.key), Value: m.value}
		if m.kind == kindValid {
			first = append(first, km)
		} else {
			rest = append(rest, km)
		}
	}
	for _, batch := range [][]kafka.Message{first, rest} {
		if len(batch) == 0 {
			continue
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("demo: publish to %s: %w", CommandsTopic, err)
		}
	}
	fmt.Fprintf(opts.Out, "demo: published %d messages to %s (%d valid, prefix %s); following %s…\n",
		len(msgs), CommandsTopic, len(first), prefix, EventsTopic)

	every := 2 * time.Second
	if opts.TTY {
		every = 100 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	timeout := time.NewTimer(opts.Timeout)
	defer timeout.Stop()
	draw := func(final bool) {
		line := t.progress(time.Since(start), 30)
		switch {
		case opts.TTY && final:
			fmt.Fprintf(opts.Progress, "\r\033[K%s\n", line)
		case opts.TTY:
			fmt.Fprintf(opts.Progress, "\r\033[K%s", line)
		default:
			fmt.Fprintln(opts.Progress, line)
		}
	}
	for !t.done() {
		select {
		case m := <-events:
			t.event(m.Value)
		case m := <-dead:
			t.deadLetter(m.Key)
		case <-tick.C:
			draw(false)
		case <-timeout.C:
			draw(true)
			t.summary(opts.Out, time.Since(start), false)
			return fmt.Errorf("%w (%s); see the log and http://%s/_sandbox/ledger", ErrDemoTimeout, opts.Timeout, s.SandboxAddr)
		case <-ctx.Done():
			draw(true)
			t.summary(opts.Out, time.Since(start), false)
			return ctx.Err()
		}
	}
	draw(true)
	t.summary(opts.Out, time.Since(start), true)
	return nil
}
