package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paycore/withdraw/internal/admin"
	"github.com/paycore/withdraw/internal/deadletter"
	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// liveStates are counted in full on the overview; the others only over
// the last day (counting every final withdrawal reads the whole table).
var liveStates = []string{"ACCEPTED", "SUBMITTING", "SUBMITTED", "UNKNOWN"}

var allStates = []string{"ACCEPTED", "SUBMITTING", "SUBMITTED", "UNKNOWN", "SUCCEEDED", "FAILED", "REVERSED"}

// requeryable are the states the admin API's requery accepts.
var requeryable = map[string]bool{"SUBMITTED": true, "SUCCEEDED": true, "UNKNOWN": true}

// BeijingTime formats t in Beijing time, naming the zone.
func BeijingTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(withdrawal.Beijing).Format("2006-01-02 15:04:05") + " Beijing"
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"bj": BeijingTime,
		"bjp": func(t *time.Time) string {
			if t == nil {
				return "—"
			}
			return BeijingTime(*t)
		},
		"fen": func(n int64) string { return fmt.Sprintf("%d.%02d", n/100, n%100) },
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return time.Since(t).Round(time.Second).String()
		},
		"lower": strings.ToLower,
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "overview", "search", "withdrawal", "deadletters", "deadletter"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	CSRF   string
	Authed bool
	Data   any
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, s session, data any) {
	var buf bytes.Buffer
	p := page{Title: name, Nav: name, CSRF: s.csrf, Authed: s.csrf != "", Data: data}
	tmpl := "layout.html"
	if m, ok := data.(map[string]any); ok && m["Fragment"] == true {
		tmpl = "content"
	}
	if err := h.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		h.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error (see the server log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("console: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error (see the server log)", http.StatusInternalServerError)
}

// ----------------------------------------------------------- overview --

// Overview is the overview page's numbers.
type Overview struct {
	At       time.Time
	Channels []string
	States   []string
	// Counts[channel][state]; the final states over the last day only.
	Counts      map[string]map[string]int64
	Waiting     []Row
	WaitingN    int64
	Stuck       []StuckLine
	DeadLetters string
	Lag         string
	Oldest      time.Time
	Outcomes    []OutcomeLine
}

// Row is a withdrawal in a list, with its next step.
type Row struct {
	store.Withdrawal
	NextAt time.Time
	Why    string
}

// StuckLine is one class of the stuck report.
type StuckLine struct {
	State, Reason string
	N             int64
	Rows          []poll.StuckWithdrawal
}

// OutcomeLine is one channel's outcomes of the last hour.
type OutcomeLine struct {
	Channel                     string
	Succeeded, Failed, Reversed int64
	Rate                        string
}

// overviewCache keeps the overview for a few seconds: every open console
// refreshes it, and the counts are not free on a large table.
type overviewCache struct {
	mu sync.Mutex
	at time.Time
	ov *Overview
}

const overviewTTL = 5 * time.Second

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := withTimeout(r)
	defer cancel()
	ov, err := h.overviewData(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, http.StatusOK, "overview", s, map[string]any{"Fragment": r.URL.Query().Get("fragment") == "1", "O": ov})
}

func (h *Handler) overviewData(ctx context.Context) (*Overview, error) {
	c := h.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := h.opts.Now()
	if c.ov != nil && now.Sub(c.at) < overviewTTL {
		return c.ov, nil
	}
	ov := &Overview{At: now, States: allStates, Counts: map[string]map[string]int64{}}
	for _, ch := range withdrawal.Channels {
		ov.Channels = append(ov.Channels, string(ch))
		ov.Counts[string(ch)] = map[string]int64{}
	}
	counts, err := store.CountByChannelState(ctx, h.db, liveStates, now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		if ov.Counts[c.Channel] == nil {
			ov.Counts[c.Channel] = map[string]int64{}
			ov.Channels = append(ov.Channels, c.Channel)
		}
		ov.Counts[c.Channel][c.State] += c.N
	}

	waiting, n, err := store.Waiting(ctx, h.db, []string{"SUBMITTED", "UNKNOWN"}, now, decide.FarFuture, 10)
	if err != nil {
		return nil, err
	}
	ov.WaitingN = n
	for i := range waiting {
		ov.Waiting = append(ov.Waiting, h.row(&waiting[i], now))
	}

	report, lists, err := h.stuck.Stuck(ctx, h.db, now, 5)
	if err != nil {
		return nil, err
	}
	for _, class := range poll.StuckClasses() {
		ov.Stuck = append(ov.Stuck, StuckLine{State: string(class.State), Reason: class.Reason, N: report[class], Rows: lists[class]})
	}

	if ov.Oldest, err = store.OldestUnpublished(ctx, h.db); err != nil {
		return nil, err
	}
	outcomes, err := store.OutcomesSince(ctx, h.db,
		[]string{string(withdrawal.EventSucceeded), string(withdrawal.EventFailed), string(withdrawal.EventReversed)}, now.Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	by := map[string]*OutcomeLine{}
	for _, ch := range ov.Channels {
		by[ch] = &OutcomeLine{Channel: ch}
	}
	for _, o := range outcomes {
		l := by[o.Channel]
		if l == nil {
			l = &OutcomeLine{Channel: o.Channel}
			by[o.Channel] = l
		}
		switch withdrawal.EventType(o.EventType) {
		case withdrawal.EventSucceeded:
			l.Succeeded += o.N
		case withdrawal.EventFailed:
			l.Failed += o.N
		case withdrawal.EventReversed:
			l.Reversed += o.N
		}
	}
	for _, ch := range ov.Channels {
		l := by[ch]
		if t := l.Succeeded + l.Failed; t > 0 {
			l.Rate = fmt.Sprintf("%.1f%%", 100*float64(l.Succeeded)/float64(t))
		} else {
			l.Rate = "—"
		}
		ov.Outcomes = append(ov.Outcomes, *l)
	}

	ov.Lag = h.consumerLag()
	ov.DeadLetters = "not configured"
	if len(h.opts.DeadLetters.Brokers) > 0 {
		kctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		n, err := h.opts.DeadLetters.Count(kctx)
		cancel()
		if err != nil {
			ov.DeadLetters = "unavailable: " + err.Error()
		} else {
			ov.DeadLetters = strconv.FormatInt(n, 10)
		}
	}
	c.ov, c.at = ov, now
	return ov, nil
}

// consumerLag reads withdraw_intake_consumer_group_lag from the process's
// registry: only a consumer measures it.
func (h *Handler) consumerLag() string {
	if h.opts.Gatherer == nil {
		return "not measured by this process"
	}
	mfs, err := h.opts.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return "unavailable: " + err.Error()
	}
	for _, mf := range mfs {
		if mf.GetName() != "withdraw_intake_consumer_group_lag" {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue()
		}
		return strconv.FormatFloat(sum, 'f', 0, 64) + " commands"
	}
	return "not measured by this process (only consumers measure it)"
}

func (h *Handler) row(w *store.Withdrawal, now time.Time) Row {
	at, why := h.decide.Explain(w, now)
	return Row{Withdrawal: *w, NextAt: at, Why: why}
}

// ------------------------------------------------------------- search --

// SearchForm is the search as typed.
type SearchForm struct {
	OutRequestNo, ID, Merchant, Account, State, From, To string
}

func (h *Handler) search(w http.ResponseWriter, r *http.Request, s session) {
	q := r.URL.Query()
	f := SearchForm{OutRequestNo: strings.TrimSpace(q.Get("out_request_no")), ID: strings.TrimSpace(q.Get("id")),
		Merchant: strings.TrimSpace(q.Get("merchant")), Account: strings.TrimSpace(q.Get("account")),
		State: q.Get("state"), From: q.Get("from"), To: q.Get("to")}
	data := map[string]any{"F": f, "States": allStates}
	sr := store.Search{ID: f.ID, OutRequestNo: f.OutRequestNo, State: f.State, After: q.Get("after"), Limit: 50}
	if f.State != "" && !contains(allStates, f.State) {
		data["Error"] = "unknown state " + f.State
		h.render(w, http.StatusBadRequest, "search", s, data)
		return
	}
	sr.MerchantKey = merchantKey(f.Merchant, f.Account)
	var err error
	if sr.From, err = parseLocal(f.From); err == nil {
		sr.To, err = parseLocal(f.To)
	}
	if err != nil {
		data["Error"] = err.Error()
		h.render(w, http.StatusBadRequest, "search", s, data)
		return
	}
	data["MerchantKey"] = sr.MerchantKey
	ctx, cancel := withTimeout(r)
	defer cancel()
	res, err := store.SearchWithdrawals(ctx, h.db, sr)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.opts.Now()
	var rows []Row
	for i := range res.Rows {
		rows = append(rows, h.row(&res.Rows[i], now))
	}
	data["Rows"] = rows
	data["Searched"] = len(q) > 0
	if res.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("after", res.Next)
		data["Next"] = "/ui/search?" + nq.Encode()
	}
	if q.Get("after") != "" {
		fq := url.Values{}
		for k, v := range q {
			fq[k] = v
		}
		fq.Del("after")
		data["First"] = "/ui/search?" + fq.Encode()
	}
	h.render(w, http.StatusOK, "search", s, data)
}

// merchantKey turns the search's merchant field into a merchant key: a key
// as stored ("wechatpay:default:1900000109", "allinpay:default"), or a
// WeChat sub_mchid of the account (default "default").
func merchantKey(m, account string) string {
	if m == "" {
		return ""
	}
	if strings.Contains(m, ":") {
		return m
	}
	if account == "" {
		account = withdrawal.DefaultAccount
	}
	return "wechatpay:" + account + ":" + m
}

// parseLocal reads a datetime-local field as Beijing time.
func parseLocal(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, withdrawal.Beijing); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want YYYY-MM-DDTHH:MM (Beijing)", v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --------------------------------------------------------- withdrawal --

// TimelineEntry is an event or a provider call, in time order.
type TimelineEntry struct {
	At      time.Time
	Event   *admin.EventView
	Attempt *admin.AttemptView
	State   string // the event's state, from its payload
}

func (h *Handler) withdrawal(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := withTimeout(r)
	defer cancel()
	v, err := h.admin.Withdrawal(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.render(w, http.StatusNotFound, "withdrawal", s, map[string]any{"NotFound": r.PathValue("id")})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	row, err := store.GetWithdrawal(ctx, h.db, v.Withdrawal.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.opts.Now()
	next := h.row(row, now)
	var tl []TimelineEntry
	for i := range v.Events {
		e := &v.Events[i]
		var p struct {
			State string `json:"state"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		tl = append(tl, TimelineEntry{At: e.CreatedAt, Event: e, State: p.State})
	}
	for i := range v.Attempts {
		a := &v.Attempts[i]
		tl = append(tl, TimelineEntry{At: a.StartedAt, Attempt: a})
	}
	sort.SliceStable(tl, func(i, j int) bool { return tl[i].At.Before(tl[j].At) })
	cmd, _ := json.MarshalIndent(v.Withdrawal.Command, "", "  ")
	q := r.URL.Query()
	h.render(w, http.StatusOK, "withdrawal", s, map[string]any{
		"W": v.Withdrawal, "Next": next, "Timeline": tl, "Command": string(cmd),
		"Requeryable": requeryable[v.Withdrawal.State], "Events": len(v.Events), "Attempts": len(v.Attempts),
		"Done": q.Get("requeried"), "Failed": q.Get("refused"),
	})
}

// requery is the admin API's requery, then back to the withdrawal's page
// with what happened.
func (h *Handler) requery(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	ctx, cancel := withTimeout(r)
	defer cancel()
	res, err := h.admin.Requery(ctx, id, r.RemoteAddr+" (console)")
	var rerr *admin.RequeryError
	q := url.Values{}
	switch {
	case errors.As(err, &rerr):
		q.Set("refused", rerr.Message)
	case err != nil:
		h.fail(w, r, err)
		return
	default:
		q.Set("requeried", fmt.Sprintf("Requery requested at %s: the %s queries it now (state was %s).", BeijingTime(res.NextAttemptAt), res.By, res.State))
	}
	http.Redirect(w, r, "/ui/withdrawals/"+url.PathEscape(id)+"?"+q.Encode(), http.StatusSeeOther)
}

// ------------------------------------------------------- dead letters --

// LetterView is a dead letter as the pages show it.
type LetterView struct {
	Partition int
	Offset    int64
	Time      time.Time
	Error     string
	From      string
	Key       string
	Preview   string
	Original  string
	Truncated bool
	Headers   []string
	Size      int
}

func viewOf(l *deadletter.Letter, n int) LetterView {
	v := LetterView{Partition: l.Partition, Offset: l.Offset, Time: l.Time, Error: l.Error(), From: l.From(),
		Key: strconv.Quote(string(l.Key)), Preview: deadletter.Preview(l.Value, n), Original: l.Original(),
		Truncated: l.Truncated(), Size: len(l.Value)}
	for _, hd := range l.Headers {
		v.Headers = append(v.Headers, hd.Key+"="+strconv.Quote(string(hd.Value)))
	}
	return v
}

func (h *Handler) deadLetters(w http.ResponseWriter, r *http.Request, s session) {
	data := map[string]any{}
	if len(h.opts.DeadLetters.Brokers) == 0 {
		data["Error"] = "no Kafka brokers configured for this process"
		h.render(w, http.StatusOK, "deadletters", s, data)
		return
	}
	ctx, cancel := withTimeout(r)
	defer cancel()
	letters, total, err := h.opts.DeadLetters.List(ctx, 100)
	if err != nil {
		data["Error"] = err.Error()
		h.render(w, http.StatusBadGateway, "deadletters", s, data)
		return
	}
	var views []LetterView
	for i := len(letters) - 1; i >= 0; i-- { // newest first
		views = append(views, viewOf(&letters[i], 64))
	}
	data["Letters"], data["Total"], data["Topic"] = views, total, h.opts.DeadLetters.DLQ
	h.render(w, http.StatusOK, "deadletters", s, data)
}

func (h *Handler) letter(w http.ResponseWriter, r *http.Request) (*deadletter.Letter, bool) {
	p, err1 := strconv.Atoi(r.PathValue("partition"))
	o, err2 := strconv.ParseInt(r.PathValue("offset"), 10, 64)
	if err1 != nil || err2 != nil || len(h.opts.DeadLetters.Brokers) == 0 {
		http.NotFound(w, r)
		return nil, false
	}
	ctx, cancel := withTimeout(r)
	defer cancel()
	l, err := h.opts.DeadLetters.Get(ctx, p, o)
	if errors.Is(err, deadletter.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return l, true
}

func (h *Handler) deadLetter(w http.ResponseWriter, r *http.Request, s session) {
	l, ok := h.letter(w, r)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "deadletter", s, map[string]any{"L": viewOf(l, 512), "Topic": h.opts.DeadLetters.DLQ,
		"Commands": h.opts.DeadLetters.Commands})
}

// replay is two steps: without confirm=yes it shows what the replay would
// do (the rules' refusal or warnings); with it, it replays.
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, s session) {
	l, ok := h.letter(w, r)
	if !ok {
		return
	}
	var fixed []byte
	if v := r.PostFormValue("value"); strings.TrimSpace(v) != "" {
		fixed = []byte(v)
	}
	force := r.PostFormValue("force") == "yes"
	data := map[string]any{"L": viewOf(l, 512), "Topic": h.opts.DeadLetters.DLQ, "Commands": h.opts.DeadLetters.Commands,
		"Fixed": string(fixed), "Force": force}
	warnings, err := deadletter.Check(l, fixed, force)
	var refused *deadletter.Refused
	if errors.As(err, &refused) {
		data["Refused"] = refused.Reason
		h.render(w, http.StatusConflict, "deadletter", s, data)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		data["Confirm"], data["Warnings"] = true, warnings
		h.render(w, http.StatusOK, "deadletter", s, data)
		return
	}
	ctx, cancel := withTimeout(r)
	defer cancel()
	res, err := h.opts.DeadLetters.Replay(ctx, l, fixed, force)
	if errors.As(err, &refused) {
		data["Refused"] = refused.Reason
		h.render(w, http.StatusConflict, "deadletter", s, data)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("console: dead letter replayed", "from", res.From, "topic", res.Topic, "partition", res.Partition,
		"offset", res.Offset, "fixed", fixed != nil, "force", force, "remote", r.RemoteAddr)
	data["Replayed"] = res
	h.render(w, http.StatusOK, "deadletter", s, data)
}
