package chaos

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver of the checks
	"github.com/segmentio/kafka-go"

	"github.com/paycore/withdraw/internal/devstack"
	"github.com/paycore/withdraw/internal/invariant"
	"github.com/paycore/withdraw/internal/kafkautil"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/store"
)

// pendingStates may not remain after the drain; SUBMITTED may (the
// provider decides when it is final) but is waited for too.
var pendingStates = []string{"ACCEPTED", "SUBMITTING", "UNKNOWN"}

// sandboxFinal are the sandbox's final order statuses (WeChat and Allinpay).
// Allinpay's are "2" (success) and "3" (failed).
var sandboxFinal = map[string]bool{"SUCCESS": true, "FAIL": true, "CLOSE": true, "REFUND": true,
	"PAY_SUCCEED": true, "PAY_FAIL": true, "REJECTED": true, "BANK_REFUNDED": true, "2": true, "3": true}

type progress struct {
	byState     map[string]int
	rows        int
	unpublished int
	lag         int64
	err         error
}

func (p progress) String() string {
	if p.err != nil {
		return "error: " + shortLine(p.err.Error())
	}
	return fmt.Sprintf("rows %d %v, unpublished events %d, intake lag %d", p.rows, p.byState, p.unpublished, p.lag)
}

func (r *run) progress(ctx context.Context) progress {
	var p progress
	db, err := sql.Open("mysql", r.dsn)
	if err != nil {
		p.err = err
		return p
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT state, COUNT(*) FROM withdrawals GROUP BY state")
	if err != nil {
		p.err = err
		return p
	}
	defer rows.Close()
	p.byState = map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			p.err = err
			return p
		}
		p.byState[s] = n
		p.rows += n
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE published_at = ?", store.NotPublished).Scan(&p.unpublished); err != nil {
		p.err = err
		return p
	}
	p.lag, p.err = r.lag(ctx)
	return p
}

// lag is the intake group's total lag on the commands topic.
func (r *run) lag(ctx context.Context) (int64, error) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(r.brokers...), Timeout: 10 * time.Second, Transport: tr}
	lags, err := kafkautil.GroupLag(ctx, client, r.topics.group, r.topics.commands)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range lags {
		n += l.Lag
	}
	return n, nil
}

// drain waits until every valid command has its row, nothing is pending
// at a provider or in the outbox, and the intake has committed every
// command; false when the drain period ended first.
func (r *run) drain(ctx context.Context) bool {
	deadline := time.Now().Add(r.o.Drain)
	var last time.Time
	// SUBMITTED rows that stop moving (e.g. a withdrawal waiting for an
	// operator) would hold the drain to its end: once everything else has
	// settled, they may stay unchanged for submittedPatience, and the checks
	// then judge them against the provider's ledger.
	const submittedPatience = 30 * time.Second
	lastSubmitted, submittedSince := -1, time.Now()
	for {
		p := r.progress(ctx)
		settled := p.err == nil && p.rows >= len(r.wl.Valid) && p.unpublished == 0 && p.lag == 0
		for _, s := range pendingStates {
			settled = settled && p.byState[s] == 0
		}
		if n := p.byState["SUBMITTED"]; n != lastSubmitted || !settled {
			lastSubmitted, submittedSince = n, time.Now()
		}
		if settled && (lastSubmitted == 0 || time.Since(submittedSince) > submittedPatience) {
			return true
		}
		if time.Since(last) > 10*time.Second {
			r.logf("drain: %s", p)
			last = time.Now()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.logf("drain: %s", p)
			return false
		}
		time.Sleep(2 * time.Second)
	}
}

// event is what the checks read of a withdrawal event.
type event struct {
	EventID      string `json:"event_id"`
	Type         string `json:"type"`
	WithdrawalID string `json:"withdrawal_id"`
	Version      int    `json:"version"`
	OutRequestNo string `json:"out_request_no"`
	State        string `json:"state"`
	ReasonCode   string `json:"reason_code"`
}

type row struct {
	id, channel, no, state string
	amount                 int64
	version                int
}

// readTopic reads every message of topic, from the first offset to the
// end offsets as of the call.
func readTopic(ctx context.Context, brokers []string, topic string) ([]kafka.Message, error) {
	ends, err := devstack.EndOffsets(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	var out []kafka.Message
	for p, end := range ends {
		if end == 0 { // empty (the run's topics are fresh: nothing expired)
			continue
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond, ReadLagInterval: -1})
		if err := rd.SetOffset(kafka.FirstOffset); err != nil {
			rd.Close()
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		for {
			m, err := rd.ReadMessage(rctx)
			if err != nil {
				cancel()
				rd.Close()
				return nil, fmt.Errorf("read %s[%d] up to %d: %w", topic, p, end, err)
			}
			out = append(out, m)
			if m.Offset >= end-1 {
				break
			}
		}
		cancel()
		rd.Close()
	}
	return out, nil
}

func (r *run) check(ctx context.Context, drained bool, drainTook time.Duration, stopErrs []string) (*Report, error) {
	rep := &Report{Run: r.id, Dir: r.dir, KafkaNodes: r.o.Env.KafkaNodes, Drained: drained, DrainTook: drainTook}
	wl := r.wl

	// Load.
	r.mu.Lock()
	rep.Load = append(rep.Load,
		kv{"valid commands", fmt.Sprint(wl.Counts[KindValid])},
		kv{"identical redeliveries", fmt.Sprint(wl.Counts[KindDuplicate])},
		kv{"conflicting resends", fmt.Sprint(wl.Counts[KindConflict])},
		kv{"hostile messages", fmt.Sprint(wl.Counts[KindHostile])},
		kv{"messages produced", fmt.Sprintf("%d in %s (%d batch retries while Kafka was away)", r.produced.msgs,
			r.produced.end.Sub(r.produced.start).Round(time.Second), r.produced.retries)},
	)
	prodErr := r.produced.err
	rep.Kills = append(rep.Kills, r.kills...)
	outages := append([]outage(nil), r.outages...)
	r.mu.Unlock()
	if prodErr != nil {
		return nil, fmt.Errorf("produce: %w", prodErr)
	}

	// The database.
	db, err := sql.Open("mysql", r.dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, "SELECT id, channel, out_request_no, amount, state, version FROM withdrawals")
	if err != nil {
		return nil, err
	}
	var rows []row
	for rs.Next() {
		var w row
		if err := rs.Scan(&w.id, &w.channel, &w.no, &w.amount, &w.state, &w.version); err != nil {
			rs.Close()
			return nil, err
		}
		rows = append(rows, w)
	}
	rs.Close()
	byNo := map[string][]row{}
	byState := map[string]int{}
	for _, w := range rows {
		byNo[w.no] = append(byNo[w.no], w)
		byState[w.state]++
	}

	// 1. Every valid command is exactly one withdrawal, of the commanded amount.
	var missing, dups, wrongAmount []string
	for no, c := range wl.Valid {
		ws := byNo[no]
		switch {
		case len(ws) == 0:
			missing = append(missing, no)
		case len(ws) > 1:
			dups = append(dups, no)
		case ws[0].amount != c.Amount || ws[0].channel != c.Channel:
			wrongAmount = append(wrongAmount, fmt.Sprintf("%s %s %d≠%d", no, ws[0].channel, ws[0].amount, c.Amount))
		}
	}
	rep.inv("every valid command is exactly one withdrawal row (commanded amount)",
		len(missing)+len(dups)+len(wrongAmount) == 0,
		fmt.Sprintf("%d commands, %d rows; missing %d, duplicated %d, wrong amount/channel %d%s", len(wl.Valid), len(rows),
			len(missing), len(dups), len(wrongAmount), examples(missing, dups, wrongAmount)))
	var extra []string
	for no := range byNo {
		if _, ok := wl.Valid[no]; !ok {
			what := wl.Hostile[no]
			if what == "" {
				what = "unknown"
			}
			extra = append(extra, no+" ("+what+")")
		}
	}
	rep.inv("no hostile message became a withdrawal", len(extra) == 0,
		fmt.Sprintf("%d hostile messages, %d rows not from a valid command%s", wl.Counts[KindHostile], len(extra), examples(extra)))

	// 2. The sandbox's ledger.
	ledger, err := r.ledger(ctx)
	if err != nil {
		return nil, err
	}
	commanded := make(map[string]int64, len(wl.Valid))
	for no, c := range wl.Valid {
		commanded[no] = c.Amount
	}
	paid := invariant.PaidAtMostOnce(ledger.Orders, commanded)
	created := map[string]int{}
	for _, o := range ledger.Orders {
		created[o.OutRequestNo] += o.Created
	}
	var paidNotCreated []string
	for _, w := range rows {
		if (w.state == "SUCCEEDED" || w.state == "REVERSED") && created[w.no] != 1 {
			paidNotCreated = append(paidNotCreated, fmt.Sprintf("%s %s created %d×", w.no, w.state, created[w.no]))
		}
	}
	rep.inv("sandbox ledger: created ≤ 1 per order, amounts as commanded",
		len(paid.Violations)+len(paidNotCreated) == 0,
		fmt.Sprintf("%d orders, %d submit requests; created twice, wrong amount or not a command %d, succeeded without one order %d%s",
			paid.Orders, paid.Submissions, len(paid.Violations), len(paidNotCreated), examples(paid.Violations, paidNotCreated)))
	rep.Faults = faultLines(ledger.FaultsInjected)

	// 3. Nothing pending after the drain.
	pending := 0
	var pendingDesc []string
	for _, s := range pendingStates {
		pending += byState[s]
		if byState[s] > 0 {
			pendingDesc = append(pendingDesc, fmt.Sprintf("%s %d", s, byState[s]))
		}
	}
	rep.inv("nothing left ACCEPTED/SUBMITTING/UNKNOWN after the drain", pending == 0,
		fmt.Sprintf("drain %s in %s; final states %s%s", map[bool]string{true: "complete", false: "TIMED OUT"}[drained],
			drainTook.Round(time.Second), fmtCounts(byState), examples(pendingDesc)))

	// 3b. No withdrawal is left behind by a provider that finished its order.
	finalAtProvider := map[string]string{}
	for _, o := range ledger.Orders {
		if o.Created > 0 && o.Status != "" {
			finalAtProvider[o.OutRequestNo] = o.Status
		}
	}
	var behind []string
	for _, w := range rows {
		if st, ok := finalAtProvider[w.no]; ok && w.state == "SUBMITTED" && sandboxFinal[st] {
			behind = append(behind, fmt.Sprintf("%s %s SUBMITTED, provider %s", w.no, w.channel, st))
		}
	}
	rep.inv("no withdrawal left SUBMITTED once the provider's order is final", len(behind) == 0,
		fmt.Sprintf("%d SUBMITTED rows, %d of them final at the provider%s", byState["SUBMITTED"], len(behind), examples(behind)))

	// 4. Events: versions 1..N, in order, the last one the row's state.
	msgs, err := readTopic(ctx, r.brokers, r.topics.events)
	if err != nil {
		return nil, err
	}
	var events []invariant.Event
	conflictRejected := map[string]bool{}
	var undecodable int
	var leaks []string
	for _, m := range msgs {
		if bytes.Contains(m.Value, []byte(wl.Marker)) || bytes.Contains(m.Key, []byte(wl.Marker)) || headersContain(m.Headers, wl.Marker) {
			leaks = append(leaks, fmt.Sprintf("event at %s[%d]@%d", m.Topic, m.Partition, m.Offset))
		}
		var e event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			undecodable++
			continue
		}
		if e.WithdrawalID == "" {
			if e.Type == "withdrawal.rejected" && e.ReasonCode == "REQUEST_CONFLICT" {
				conflictRejected[e.OutRequestNo] = true
			}
			continue
		}
		events = append(events, invariant.Event{WithdrawalID: e.WithdrawalID, Version: e.Version, State: e.State})
	}
	histRows := make([]invariant.Row, len(rows))
	for i, w := range rows {
		histRows[i] = invariant.Row{ID: w.id, OutRequestNo: w.no, State: w.state, Version: w.version}
	}
	hist := invariant.VersionsGapFree(histRows, events)
	if undecodable > 0 {
		hist.Violations = append(hist.Violations, fmt.Sprintf("%d events are not JSON", undecodable))
	}
	rep.inv("events: versions 1..N, no gaps, in order, last = row state", len(hist.Violations) == 0,
		fmt.Sprintf("%d events of %d withdrawals (%d re-published copies); %d violations%s",
			len(msgs), hist.Withdrawals, hist.Republished, len(hist.Violations), examples(hist.Violations)))
	var unrejected []string
	for no := range wl.Conflicts {
		if !conflictRejected[no] {
			unrejected = append(unrejected, no)
		}
	}
	rep.inv("every conflicting resend rejected as REQUEST_CONFLICT", len(unrejected) == 0,
		fmt.Sprintf("%d conflicting keys, %d without a REQUEST_CONFLICT rejection%s", len(wl.Conflicts), len(unrejected), examples(unrejected)))

	// 5. No process exited on its own.
	var exits []string
	total := 0
	causes := map[string]int{}
	for _, p := range r.procs() {
		starts, kills, unexpected := p.Stats()
		rep.Procs = append(rep.Procs, kv{p.Name, fmt.Sprintf("%d starts, %d SIGKILLs by the harness, %d unexpected exits", starts, kills, len(unexpected))})
		total += len(unexpected)
		for _, e := range unexpected {
			cause := strings.TrimSuffix(strings.TrimPrefix(during(outages, e.At), " (during/after the "), ")")
			if cause == "" {
				cause = "no outage"
			}
			causes[cause]++
			exits = append(exits, fmt.Sprintf("%s at +%s: %s%s; last log: %s", p.Name, e.At.Sub(r.produced.start).Round(time.Second),
				e.Status, during(outages, e.At), shortLine(e.LastLine)))
		}
	}
	rep.inv("no consumer/poller exited on its own (e.g. a dependency away)", total == 0,
		fmt.Sprintf("%d unexpected exits%s", total, map[bool]string{true: " (" + fmtCounts(causes) + "; each restarted after 2s to keep the run going)"}[total > 0]))
	rep.Exits = exits
	rep.inv("every process exits cleanly on SIGTERM at the end", len(stopErrs) == 0,
		fmt.Sprintf("%d unclean%s", len(stopErrs), examples(stopErrs)))

	// 6. No partition stalled: the group committed everything.
	lag, lagErr := r.lag(ctx)
	lagDesc := fmt.Sprintf("intake group lag %d at the end", lag)
	if lagErr != nil {
		lagDesc = "lag unknown: " + lagErr.Error()
	}
	rep.inv("no message stalled a partition (intake lag 0)", lagErr == nil && lag == 0, lagDesc)

	// 7. The marker is nowhere.
	dlq, err := readTopic(ctx, r.brokers, r.topics.dlq)
	if err != nil {
		return nil, err
	}
	for _, m := range dlq {
		if headersContain(m.Headers, wl.Marker) {
			leaks = append(leaks, fmt.Sprintf("dead-letter headers at %s[%d]@%d", m.Topic, m.Partition, m.Offset))
		}
	}
	for _, p := range r.procs() {
		n, err := countInFile(p.LogPath, wl.Marker)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			leaks = append(leaks, fmt.Sprintf("%d lines of %s", n, filepath.Base(p.LogPath)))
		}
	}
	rep.inv("marker payee value absent from events, logs, dead-letter headers", len(leaks) == 0,
		fmt.Sprintf("%d events, %d dead letters, %d process logs searched; found in %d places%s", len(msgs), len(dlq), len(r.procs()),
			len(leaks), examples(leaks)))
	rep.Load = append(rep.Load, kv{"dead letters", fmt.Sprint(len(dlq))})
	return rep, nil
}

func (r *run) ledger(ctx context.Context) (*sandbox.Ledger, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.sbURL+"/_sandbox/ledger", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox ledger: %w", err)
	}
	defer resp.Body.Close()
	var l sandbox.Ledger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, fmt.Errorf("sandbox ledger: %w", err)
	}
	return &l, nil
}

// during names the outage an exit fell into (or followed within 30s).
func during(outages []outage, at time.Time) string {
	for _, o := range outages {
		if !at.Before(o.From) && !at.After(o.To.Add(30*time.Second)) {
			return fmt.Sprintf(" (during/after the %s outage)", o.What)
		}
	}
	return ""
}

func headersContain(hs []kafka.Header, s string) bool {
	for _, h := range hs {
		if strings.Contains(h.Key, s) || bytes.Contains(h.Value, []byte(s)) {
			return true
		}
	}
	return false
}

func countInFile(path, s string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(line, []byte(s)) {
			n++
		}
	}
	return n, nil
}

// faultLines sums the injected faults by kind, and by kind and endpoint.
func faultLines(m map[string]int) []kv {
	byKind := map[string]int{}
	total := 0
	for k, n := range m {
		endpoint, kind, _ := strings.Cut(k, " ")
		kind = strings.TrimSpace(kind)
		_ = endpoint
		byKind[kind] += n
		total += n
	}
	var out []kv
	for _, k := range sortedKeys(byKind) {
		var where []string
		for _, e := range sortedKeys(m) {
			if ep, kind, _ := strings.Cut(e, " "); kind == k {
				where = append(where, fmt.Sprintf("%s %d", ep, m[e]))
			}
		}
		out = append(out, kv{k, fmt.Sprintf("%d (%s)", byKind[k], strings.Join(where, ", "))})
	}
	return append(out, kv{"total", fmt.Sprint(total)})
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// examples lists up to three items of the lists given, for the report.
func examples(lists ...[]string) string {
	var ex []string
	for _, l := range lists {
		sort.Strings(l)
		for _, s := range l {
			if len(ex) == 3 {
				break
			}
			ex = append(ex, s)
		}
	}
	if len(ex) == 0 {
		return ""
	}
	return "; e.g. " + strings.Join(ex, "; ")
}
