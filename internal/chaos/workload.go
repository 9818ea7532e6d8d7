package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/bench"
)

// Kind of a produced message.
type Kind string

const (
	KindValid     Kind = "valid"     // a valid command, first send
	KindDuplicate Kind = "duplicate" // an earlier valid command again, same bytes
	KindConflict  Kind = "conflict"  // an earlier command's key, another amount
	KindHostile   Kind = "hostile"   // malformed or malicious
)

// Msg is one message of the workload.
type Msg struct {
	Kind Kind
	// What names a hostile message's trick (for the report).
	What string
	// Accept: a hostile message whose command is valid all the same.
	Accept bool
	kafka.Message
}

// Command is a valid command the run expects to become one withdrawal.
type Command struct {
	Channel      string
	OutRequestNo string
	Amount       int64 // total, fen
}

// Workload is every message of a run, in production order, and what the
// valid ones must leave behind.
type Workload struct {
	Msgs      []Msg
	Valid     map[string]Command // by out_request_no
	Conflicts map[string]bool    // out_request_nos that got a conflicting resend
	Hostile   map[string]string  // out_request_no (key) → trick
	Counts    map[Kind]int
	// Marker is carried in enum fields of some hostile commands; it must
	// never show up in events, logs or dead-letter headers.
	Marker string
}

// hugeValueBytes is the size of the oversized command: just under Kafka's
// default max.message.bytes (1,048,588), so that only a topic configured
// for it accepts it and the consumer meets a value of a megabyte.
const hugeValueBytes = 1_048_400

var amountRE = regexp.MustCompile(`"amount":(\d+)`)

// NewWorkload builds n valid commands (bench.Valid: the production channel
// mix) with, per 100 of them, about dupPct identical redeliveries and
// conflictPct conflicting resends of earlier commands, interleaved with the
// hostile messages.
func NewWorkload(run string, n int, dupPct, conflictPct float64, seed uint64) (*Workload, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0xc4a05))
	w := &Workload{Valid: map[string]Command{}, Conflicts: map[string]bool{}, Hostile: map[string]string{},
		Counts: map[Kind]int{}, Marker: "MARKER-" + run + "-6222021234567890"}
	hostile := w.hostileMsgs(run)
	// Spread the hostile messages over the whole run.
	every := max(1, n/(len(hostile)+1))
	var valid []kafka.Message
	for i := range n {
		m := bench.Valid(run, i)
		cmd, err := commandOf(m.Value)
		if err != nil {
			return nil, fmt.Errorf("bench.Valid(%d): %w", i, err)
		}
		w.Valid[cmd.OutRequestNo] = cmd
		w.add(Msg{Kind: KindValid, Message: m})
		valid = append(valid, m)
		if rng.Float64()*100 < dupPct {
			w.add(Msg{Kind: KindDuplicate, Message: valid[rng.IntN(len(valid))]})
		}
		if rng.Float64()*100 < conflictPct {
			orig := valid[rng.IntN(len(valid))]
			no := string(orig.Key)
			loc := amountRE.FindSubmatchIndex(orig.Value)
			a, _ := strconv.ParseInt(string(orig.Value[loc[2]:loc[3]]), 10, 64)
			v := append(append(append([]byte{}, orig.Value[:loc[2]]...), strconv.FormatInt(a+1, 10)...), orig.Value[loc[3]:]...)
			w.Conflicts[no] = true
			w.add(Msg{Kind: KindConflict, Message: kafka.Message{Key: orig.Key, Value: v}})
		}
		if i%every == every-1 && len(hostile) > 0 {
			w.add(hostile[0])
			hostile = hostile[1:]
		}
	}
	for _, h := range hostile {
		w.add(h)
	}
	return w, nil
}

func (w *Workload) add(m Msg) {
	w.Msgs = append(w.Msgs, m)
	w.Counts[m.Kind]++
	if m.Kind == KindHostile {
		c, err := commandOf(m.Value)
		if err == nil && c.OutRequestNo != "" {
			w.Hostile[c.OutRequestNo] = m.What
		}
		if m.Accept {
			w.Valid[c.OutRequestNo] = c
		}
	}
}

// commandOf reads channel, out_request_no and the total amount (the sum of
// the details for Allinpay) of a valid command.
func commandOf(v []byte) (Command, error) {
	var c struct {
		Channel      string `json:"channel"`
		OutRequestNo string `json:"out_request_no"`
		Amount       int64  `json:"amount"`
		Details      []struct {
			Amount int64 `json:"amount"`
		} `json:"details"`
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return Command{}, err
	}
	total := c.Amount
	for _, d := range c.Details {
		total += d.Amount
	}
	return Command{Channel: c.Channel, OutRequestNo: c.OutRequestNo, Amount: total}, nil
}

// hostileMsgs are the malformed and malicious messages: none may create a
// withdrawal, stall a partition, or leak the marker.
func (w *Workload) hostileMsgs(run string) []Msg {
	n := 0
	key := func() string { n++; return fmt.Sprintf("H%s%09d", run, n) }
	ecommerce := func(no string) string {
		return fmt.Sprintf(`{"channel":"wechatpay_ecommerce","sub_mchid":"1900000101","out_request_no":%q,"amount":1234,"remark":"交易提现","bank_memo":"xx平台提现","account_type":"BASIC"}`, no)
	}
	var out []Msg
	add := func(what, k, v string) {
		out = append(out, Msg{Kind: KindHostile, What: what, Message: kafka.Message{Key: []byte(k), Value: []byte(v)}})
	}
	// acceptable: hostile in form, valid in content; it must become exactly
	// one withdrawal like any valid command.
	acceptable := func(what, k, v string) {
		add(what, k, v)
		out[len(out)-1].Accept = true
	}
	k := key()
	add("case-variant key AMOUNT", k, strings.Replace(ecommerce(k), `"amount"`, `"AMOUNT"`, 1))
	k = key()
	add("case-variant key Channel", k, strings.Replace(ecommerce(k), `"channel"`, `"Channel"`, 1))
	k = key()
	add("duplicate key amount", k, strings.Replace(ecommerce(k), `"amount":1234`, `"amount":1234,"amount":99999999`, 1))
	k = key()
	add("invalid UTF-8 in remark", k, strings.Replace(ecommerce(k), "交易提现", "\xff\xfe\xfd", 1))
	k = key()
	// The key only picks the partition; the command itself is valid.
	acceptable("invalid UTF-8 in the message key (valid command)", k+"\xff", ecommerce(k))
	k = key()
	{
		base := ecommerce(k)
		pad := hugeValueBytes - len(base) + len("交易提现")
		add("value of 1,048,400 bytes", k, strings.Replace(base, "交易提现", strings.Repeat("x", pad), 1))
	}
	k = key()
	add("proof_media_list nested 100,000 deep (arrays)", k, strings.Replace(cancelCommand(k),
		`"proof_media_list":{`, `"proof_media_list":{"deep":`+strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)+`,`, 1))
	k = key()
	add("proof_media_list nested 10,000 deep (objects)", k, strings.Replace(cancelCommand(k),
		`"proof_media_list":{`, `"proof_media_list":{"proof_payee_media":`+strings.Repeat(`{"a":`, 10_000)+"1"+strings.Repeat("}", 10_000)+`,"x":`, 1))
	k = key()
	add("marker in payee_type", k, strings.Replace(cancelCommand(k), `"payee_type":"OTHER_MCH"`, `"payee_type":"`+w.Marker+`"`, 1))
	k = key()
	add("marker in payee_info.account_type", k, strings.Replace(cancelCommand(k), `"account_type":"ACCOUNT_TYPE_CORPORATE"`, `"account_type":"`+w.Marker+`"`, 1))
	k = key()
	add("marker in out_account_type", k, strings.Replace(cancelCommand(k), `"out_account_type":"BASIC_ACCOUNT"`, `"out_account_type":"`+w.Marker+`"`, 1))
	k = key()
	// proof_media_list is passed to WeChat as it is (not payee data, not
	// validated): the command is valid, but the marker still must not leak.
	acceptable("marker in proof_media_type (passed through)", k, strings.Replace(cancelCommand(k), `"proof_media_type":"WECHAT_PAY_WITHDRAWAL_APPLICATION_TYPE_1"`, `"proof_media_type":"`+w.Marker+`"`, 1))
	k = key()
	add("marker in ecommerce account_type", k, strings.Replace(ecommerce(k), `"account_type":"BASIC"`, `"account_type":"`+w.Marker+`"`, 1))
	k = key()
	// Not the marker: channel is no payee field, and a rejection names the
	// channel it could not route.
	add("unknown channel", k, strings.Replace(ecommerce(k), `"channel":"wechatpay_ecommerce"`, `"channel":"wechatpay_unknown"`, 1))
	k = key()
	add("not JSON", k, "\x00\x01not json at all {")
	k = key()
	add("empty value", k, "")
	k = key()
	add("JSON array", k, `[`+ecommerce(k)+`]`)
	return out
}

// cancelCommand is a valid wechatpay_cancel command (payee data included).
func cancelCommand(no string) string {
	v := bench.Valid("x", 19).Value // channel mix: i%20 == 19 is the cancel channel
	var m map[string]json.RawMessage
	_ = json.Unmarshal(v, &m)
	m["out_request_no"], _ = json.Marshal(no)
	m["amount"] = json.RawMessage("4321")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return strings.TrimSpace(b.String())
}
