// Package scale measures what months of history cost the orchestrator: it
// fills a database with the rows that 90 days of withdrawals leave behind
// (Fill), and measures on it what should not depend on them — an idle
// poller sweep and an idle dispatcher (index rows read), admin lookups, and
// the 08:00 burst of status queries (Burst). cmd/bench scale runs them
// against a filled and an empty database and reports the ratios
// (docs/bench.md).
package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/decide"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// FillOptions shape the history.
type FillOptions struct {
	// Rows is the number of withdrawals (default 2,000,000).
	Rows int
	// Days is how far back they go (default 90: WeChat's query window).
	Days int
	// Merchants is the number of e-commerce sub-merchants (default 5,000).
	Merchants int
	// Chunk is the rows per INSERT … SELECT (default 200,000).
	Chunk int
	// Prefix starts every out_request_no (letters; default "H"); Kind is
	// three hex digits inside every id (default "a01"). Two fills into one
	// database need different ones.
	Prefix, Kind string
	// Now is the end of the history (default time.Now).
	Now time.Time
	// Progress, when set, is called after each chunk.
	Progress func(done, total int, took time.Duration)
}

func (o *FillOptions) defaults() {
	if o.Rows <= 0 {
		o.Rows = 2_000_000
	}
	if o.Days <= 0 {
		o.Days = 90
	}
	if o.Merchants <= 0 {
		o.Merchants = 5000
	}
	if o.Chunk <= 0 {
		o.Chunk = 200_000
	}
	if o.Prefix == "" {
		o.Prefix = "H"
	}
	if o.Kind == "" {
		o.Kind = "a01"
	}
	if o.Now.IsZero() {
		o.Now = time.Now().UTC()
	}
	o.Now = o.Now.UTC().Truncate(time.Microsecond)
}

// The shape of the history, per withdrawal (s is its number, 1…Rows, in
// the order of creation):
//   - state by (s·7919) mod 100: SUCCEEDED below 85, FAILED below 99,
//     REVERSED (succeeded, then refunded by the bank) the rest;
//   - channel: WeChat e-commerce over Merchants sub-merchants, every 16th
//     the platform withdraw;
//   - created evenly over Days, ending a day before Now; sent 50 ms later,
//     final two hours after (a refund three days after that);
//   - finished rows leave the sweep (next_attempt_at FarFuture), except
//     SUCCEEDED ones less than 30 days old, which wait for their next
//     refund follow-up (decide.FollowUpSchedule) — all in the future: the
//     few whose next follow-up would fall due in the next hour (about two
//     a second in 2 M rows) wait until Now + 1 h, so that nothing falls
//     due while the figures are taken;
//   - outbox: every event (accepted, submitted, final, reversed) of the
//     withdrawals of the last 7 days, published (older rows are purged by
//     the daily retention);
//   - withdrawal_attempts: three per withdrawal (the submission, the
//     first query, a later query), all within the 180-day retention.
const (
	pctSucceeded = 85
	pctFailed    = 14
)

// FillStats is what Fill wrote.
type FillStats struct {
	Withdrawals int64            `json:"withdrawals"`
	ByState     map[string]int64 `json:"by_state"`
	FollowUps   int64            `json:"succeeded_in_follow_up"`
	Merchants   int64            `json:"merchant_keys"`
	Outbox      int64            `json:"outbox_rows"`
	Attempts    int64            `json:"attempt_rows"`
	Took        time.Duration    `json:"-"`
	Seconds     float64          `json:"seconds"`
}

// Fill writes the history into a migrated MariaDB database with INSERT …
// SELECT over the sequence engine, Chunk rows per statement, then refreshes
// the statistics. It expects the database to hold none of its rows yet.
func Fill(ctx context.Context, db *store.DB, o FillOptions) (FillStats, error) {
	o.defaults()
	if db.Dialect != store.MySQL {
		return FillStats{}, fmt.Errorf("scale: fill needs MariaDB (its sequence engine)")
	}
	started := time.Now()
	end := o.Now.Add(-24 * time.Hour)
	span := time.Duration(o.Days) * 24 * time.Hour
	t0 := end.Add(-span)
	stepUS := span.Microseconds() / int64(o.Rows)
	q := db.Gorm().WithContext(ctx)
	var lastID string
	for from := 1; from <= o.Rows; from += o.Chunk {
		to := min(from+o.Chunk-1, o.Rows)
		seqTable := fmt.Sprintf("seq_%d_to_%d", from, to)
		if err := q.Exec(withdrawalsSQL(seqTable, o), withdrawalsArgs(o, t0, stepUS)...).Error; err != nil {
			return FillStats{}, fmt.Errorf("scale: fill withdrawals %d–%d: %w", from, to, err)
		}
		var maxID string
		if err := q.Raw("SELECT MAX(id) FROM withdrawals WHERE id LIKE ?", "%-7"+o.Kind+"-%").Scan(&maxID).Error; err != nil {
			return FillStats{}, err
		}
		if err := q.Exec(attemptsSQL, lastID, maxID, "%-7"+o.Kind+"-%").Error; err != nil {
			return FillStats{}, fmt.Errorf("scale: fill attempts %d–%d: %w", from, to, err)
		}
		lastID = maxID
		if o.Progress != nil {
			o.Progress(to, o.Rows, time.Since(started))
		}
	}
	// The outbox of the last week: one statement over the primary key's
	// time-ordered range.
	weekAgo := o.Now.Add(-7 * 24 * time.Hour)
	tpl := eventTemplate()
	if err := q.Exec(fmt.Sprintf(outboxSQL, tpl), idFloor(weekAgo), "%-7"+o.Kind+"-%").Error; err != nil {
		return FillStats{}, fmt.Errorf("scale: fill outbox: %w", err)
	}
	for _, t := range []string{"withdrawals", "outbox", "withdrawal_attempts"} {
		if err := q.Exec("ANALYZE TABLE " + t).Error; err != nil {
			return FillStats{}, err
		}
	}
	st, err := Count(ctx, db, o.Now)
	st.Took = time.Since(started)
	st.Seconds = st.Took.Seconds()
	return st, err
}

// Count reads what a database holds: withdrawals by state, SUCCEEDED ones
// waiting for a follow-up after now, merchants, outbox and audit rows.
func Count(ctx context.Context, db *store.DB, now time.Time) (FillStats, error) {
	q := db.Gorm().WithContext(ctx)
	st := FillStats{ByState: map[string]int64{}}
	var err error
	if st.ByState, err = store.CountByState(ctx, db); err != nil {
		return st, err
	}
	for _, n := range st.ByState {
		st.Withdrawals += n
	}
	if err := q.Raw("SELECT COUNT(*) FROM withdrawals WHERE state = 'SUCCEEDED' AND next_attempt_at > ? AND next_attempt_at < ?",
		now, decide.FarFuture).Scan(&st.FollowUps).Error; err != nil {
		return st, err
	}
	if err := q.Raw("SELECT COUNT(DISTINCT merchant_key) FROM withdrawals").Scan(&st.Merchants).Error; err != nil {
		return st, err
	}
	if err := q.Raw("SELECT COUNT(*) FROM outbox").Scan(&st.Outbox).Error; err != nil {
		return st, err
	}
	if err := q.Raw("SELECT COUNT(*) FROM withdrawal_attempts").Scan(&st.Attempts).Error; err != nil {
		return st, err
	}
	return st, nil
}

// idExpr is a time-ordered id in the layout of a UUIDv7 (withdrawal.NewID):
// the creation's milliseconds, then the fill's kind and the row's number,
// so that rows are appended to the primary key in creation order, as the
// intake's are.
const idExpr = `LOWER(CONCAT(SUBSTR(LPAD(HEX(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', created) DIV 1000), 12, '0'), 1, 8), '-',
	SUBSTR(LPAD(HEX(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', created) DIV 1000), 12, '0'), 9, 4), '-7', kind, '-8000-',
	LPAD(HEX(s), 12, '0')))`

// idFloor is the smallest id idExpr gives for a row created at t.
func idFloor(t time.Time) string {
	h := fmt.Sprintf("%012x", t.UnixMilli())
	return h[:8] + "-" + h[8:12]
}

// withdrawalsSQL inserts the rows of seqTable. The inner select numbers and
// times the rows, the outer one builds their columns.
func withdrawalsSQL(seqTable string, o FillOptions) string {
	ecom, plat := paramsTemplates()
	return `INSERT INTO withdrawals (id, channel, account, out_request_no, merchant_key, amount, params_hash, params,
		state, version, provider_status, provider_ref, reason_code, submissions, next_attempt_at, provider_request,
		submitted_at, first_sent_at, final_at, created_at, updated_at)
	SELECT id, channel, 'default', out_request_no, merchant_key, amount, SHA2(out_request_no, 256), params,
		state, IF(state = 'REVERSED', 4, 3), ELT(st, 'SUCCESS', 'FAIL', 'REFUND'), CONCAT(?, LPAD(s, 12, '0')),
		ELT(st, '', 'FAIL', 'REFUND'), 1,
		GREATEST(? + INTERVAL 1 HOUR, CASE WHEN state <> 'SUCCEEDED' OR age_s >= 2592000 THEN ?
			WHEN age_s < 3600 THEN final + INTERVAL 3600 SECOND
			WHEN age_s < 21600 THEN final + INTERVAL 21600 SECOND
			WHEN age_s < 86400 THEN final + INTERVAL 1 DAY
			WHEN age_s < 172800 THEN final + INTERVAL 2 DAY
			WHEN age_s < 345600 THEN final + INTERVAL 4 DAY
			WHEN age_s < 604800 THEN final + INTERVAL 7 DAY
			WHEN age_s < 1209600 THEN final + INTERVAL 14 DAY
			WHEN age_s < 1814400 THEN final + INTERVAL 21 DAY
			ELSE final + INTERVAL 30 DAY END),
		params, sent, sent, final, created, final
	FROM (
		SELECT *, ` + idExpr + ` AS id,
			IF(plat, 'wechatpay_platform', 'wechatpay_ecommerce') AS channel,
			IF(plat, 'wechatpay:default:platform', CONCAT('wechatpay:default:', sub)) AS merchant_key,
			IF(plat, ` + plat + `, ` + ecom + `) AS params,
			ELT(st, 'SUCCEEDED', 'FAILED', 'REVERSED') AS state,
			TIMESTAMPDIFF(SECOND, IF(st = 3, succeeded, final), ?) AS age_s
		FROM (
			SELECT *, CONCAT(?, DATE_FORMAT(created, '%Y%m%d'), LPAD(s, 10, '0')) AS out_request_no,
				created + INTERVAL 50000 MICROSECOND AS sent,
				created + INTERVAL (7200 + s % 3600) SECOND AS succeeded,
				IF(st = 3, LEAST(created + INTERVAL 3 DAY, ? - INTERVAL 1 HOUR), created + INTERVAL (7200 + s % 3600) SECOND) AS final
			FROM (
				SELECT seq AS s, ? AS kind,
					? + INTERVAL (seq * ?) MICROSECOND AS created,
					CASE WHEN (seq * 7919) % 100 < ` + strconv.Itoa(pctSucceeded) + ` THEN 1
						WHEN (seq * 7919) % 100 < ` + strconv.Itoa(pctSucceeded+pctFailed) + ` THEN 2 ELSE 3 END AS st,
					seq % 16 = 0 AS plat,
					CONCAT('19', LPAD((seq * 40503) % ` + strconv.Itoa(o.Merchants) + `, 8, '0')) AS sub,
					100 + (seq * 7907) % 500000 AS amount
				FROM ` + seqTable + `
			) a
		) b
	) c`
}

func withdrawalsArgs(o FillOptions, t0 time.Time, stepUS int64) []any {
	return []any{o.Prefix, o.Now, decide.FarFuture, o.Now, o.Prefix, o.Now, o.Kind, t0, stepUS}
}

// attemptsSQL writes three audit rows for each withdrawal of the fill with
// an id in (?, ?].
const attemptsSQL = `INSERT INTO withdrawal_attempts (withdrawal_id, operation, started_at, latency_us, http_status,
		provider_code, outcome, instance)
	SELECT w.id, IF(a.seq = 1, 'submit', 'query'),
		CASE a.seq WHEN 1 THEN w.first_sent_at WHEN 2 THEN w.first_sent_at + INTERVAL 20 HOUR ELSE w.final_at END,
		40000 + (a.seq * 977 + LENGTH(w.out_request_no)) % 80000, 200, '', 'ACCEPTED',
		IF(a.seq = 1, 'dispatcher-0', 'poller-0')
	FROM withdrawals w JOIN seq_1_to_3 a
	WHERE w.id > ? AND w.id <= ? AND w.id LIKE ?`

// outboxSQL writes the published events of the withdrawals created since
// the id floor (?); %s is the payload template (eventTemplate).
const outboxSQL = `INSERT INTO outbox (event_id, withdrawal_id, event_key, lane, event_type, version, payload, created_at, published_at)
	SELECT event_id, id, id, CRC32(id) %% 64, event_type, v, %s, at, at + INTERVAL 20000 MICROSECOND
	FROM (
		SELECT w.*, v.seq AS v, CONCAT(LEFT(w.id, 24), LPAD(v.seq, 12, '0')) AS event_id,
			ELT(v.seq, 'withdrawal.accepted', 'withdrawal.submitted',
				IF(w.state = 'FAILED', 'withdrawal.failed', 'withdrawal.succeeded'), 'withdrawal.reversed') AS event_type,
			ELT(v.seq, 'ACCEPTED', 'SUBMITTED', IF(w.state = 'FAILED', 'FAILED', 'SUCCEEDED'), 'REVERSED') AS ev_state,
			ELT(v.seq, '', 'ACCEPTED', 'SUBMITTED', 'SUCCEEDED') AS ev_prev,
			CASE v.seq WHEN 1 THEN w.created_at WHEN 2 THEN w.first_sent_at
				WHEN 3 THEN IF(w.state = 'REVERSED', w.created_at + INTERVAL 7200 SECOND, w.final_at) ELSE w.final_at END AS at
		FROM withdrawals w JOIN seq_1_to_4 v ON v.seq <= w.version
		WHERE w.id >= ? AND w.id LIKE ?
	) e`

// Sentinels replaced by SQL expressions in the JSON templates.
const (
	sentNo     = "XNOX"
	sentSub    = "XSUBX"
	sentAmount = 987650001
)

// paramsTemplates are SQL expressions of the params column (the command as
// json.Marshal writes it) of an e-commerce and a platform withdrawal.
func paramsTemplates() (ecom, plat string) {
	e, _ := json.Marshal(&withdrawal.Command{Channel: withdrawal.ChannelWeChatEcommerce, Account: "default", OutRequestNo: sentNo,
		Amount: sentAmount, SubMchID: sentSub, AccountType: "BASIC", Remark: "daily settlement"})
	p, _ := json.Marshal(&withdrawal.Command{Channel: withdrawal.ChannelWeChatPlatform, Account: "default", OutRequestNo: sentNo,
		Amount: sentAmount, AccountType: "BASIC", Remark: "daily settlement"})
	subs := map[string]string{`"` + sentNo + `"`: `'"', out_request_no, '"'`, `"` + sentSub + `"`: `'"', sub, '"'`,
		strconv.Itoa(sentAmount): `amount`}
	return sqlConcat(string(e), subs), sqlConcat(string(p), subs)
}

// eventTemplate is the SQL expression of an event's payload (the JSON of
// withdrawal.Event), over the columns of outboxSQL's inner select.
func eventTemplate() string {
	b, _ := json.Marshal(&withdrawal.Event{EventID: "XEIDX", Type: "XTYPEX", WithdrawalID: "XWIDX", Version: 987650002,
		Channel: "XCHX", Account: "default", OutRequestNo: sentNo, State: "XSTATEX", PreviousState: "XPREVX",
		ProviderStatus: "XPSX", ProviderRef: "XREFX", Amount: sentAmount, ReasonCode: "XRCX", OccurredAt: "XATX"})
	q := func(col string) string { return `'"', ` + col + `, '"'` }
	return sqlConcat(string(b), map[string]string{
		`"XEIDX"`: q("event_id"), `"XTYPEX"`: q("event_type"), `"XWIDX"`: q("id"), "987650002": "v",
		`"XCHX"`: q("channel"), `"` + sentNo + `"`: q("out_request_no"), `"XSTATEX"`: q("ev_state"),
		`"XPREVX"`: q("ev_prev"), `"XPSX"`: q("IF(v < 3, 'CREATE_SUCCESS', provider_status)"), `"XREFX"`: q("IF(v = 1, '', provider_ref)"),
		strconv.Itoa(sentAmount): "amount", `"XRCX"`: q("IF(v < 3 OR state = 'SUCCEEDED', '', reason_code)"),
		`"XATX"`: q(`DATE_FORMAT(at + INTERVAL 8 HOUR, '%Y-%m-%dT%H:%i:%s.000+08:00')`),
	})
}

// sqlConcat turns s into CONCAT('…', expr, '…') with each key of subs
// replaced by its expression.
func sqlConcat(s string, subs map[string]string) string {
	var parts []string
	for len(s) > 0 {
		at, key := len(s), ""
		for k := range subs {
			if i := strings.Index(s, k); i >= 0 && (i < at || (i == at && len(k) > len(key))) {
				at, key = i, k
			}
		}
		if at > 0 {
			parts = append(parts, "'"+strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s[:at])+"'")
		}
		if key == "" {
			break
		}
		parts = append(parts, subs[key])
		s = s[at+len(key):]
	}
	return "CONCAT(" + strings.Join(parts, ", ") + ")"
}
