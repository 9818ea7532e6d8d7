package scale

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paycore/withdraw/internal/dispatch/dispatchbench"
	"github.com/paycore/withdraw/internal/poll"
	"github.com/paycore/withdraw/internal/provider/sandbox"
	"github.com/paycore/withdraw/internal/schedule"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// BurstOptions shape the 08:00 burst.
type BurstOptions struct {
	// Submitted is the number of SUBMITTED withdrawals due at once (a day's
	// volume, queryable from 08:00 Beijing time).
	Submitted int
	// FollowUps is the number of SUCCEEDED withdrawals due for a refund
	// follow-up at the same time.
	FollowUps int
	// Rate is the poller's --poll-query-rate; Merchants the sub-merchants
	// the withdrawals are spread over.
	Rate      float64
	Merchants int
	// Timeout bounds the drain (default 10 minutes).
	Timeout time.Duration
	// Logger is the poller's (default: none).
	Logger *slog.Logger
}

// BurstResult is what draining the burst took.
type BurstResult struct {
	Submitted, FollowUps int
	// Drain is from the first query's start to the last query's end;
	// Wall from the poller's start until none was due.
	Drain, Wall time.Duration
	Queries     int
	// QueriesPerSec is the achieved rate over Drain; Configured the rate
	// set.
	QueriesPerSec, Configured float64
	// FollowUpsDuringBurst are the follow-up queries made before the last
	// submitted withdrawal's query started; FollowUpShare is their share
	// of all queries while both kinds were due.
	FollowUpsDuringBurst int
	FollowUpShare        float64
	// Statements are the poller's own: the Questions counters of its
	// pool's sessions. ServerStatements is MariaDB's global Questions
	// counter over Wall (every client of the shared server).
	Statements              int64
	StatementsPerWithdrawal float64
	ServerStatements        int64
	// Unrecorded are queries whose answer could not be recorded (logged
	// by the poller; the row is queried again after its lease).
	Unrecorded int
	// ByState is what the burst's withdrawals became.
	ByState map[string]int64
}

// Sandbox statuses of the burst's orders, by the withdrawal's number: most
// succeeded overnight, a few failed, a few are still being processed.
func burstStatus(s int) string {
	switch r := (s * 7919) % 100; {
	case r < 95:
		return "SUCCESS"
	case r < 98:
		return "FAIL"
	default:
		return "CREATE_SUCCESS"
	}
}

// Burst inserts o.Submitted SUBMITTED withdrawals (sent yesterday) and
// o.FollowUps SUCCEEDED ones (succeeded an hour ago), all due now, preloads
// their orders into a sandbox in this process, runs the real poller
// (poll.Poller.Run: production rules, default options except QueryRate
// and a sweep every second) until none of them is due, and reads from the
// audit trail how fast the queries went and who got them. The poller has a
// pool of its own on dsn (db's database), so that its statements are
// counted by its own sessions. kind (three hex digits) must differ from
// every other fill of the database.
func Burst(ctx context.Context, db *store.DB, dsn string, o BurstOptions, kind string) (BurstResult, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Merchants <= 0 {
		o.Merchants = 5000
	}
	if o.Logger == nil {
		o.Logger = quiet()
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	sentAt := now.Add(-20 * time.Hour)
	followKind := kind[:2] + string("0123456789abcdef"[(hexDigit(kind[2])+1)%16])
	q := db.Gorm().WithContext(ctx)
	ecom, _ := paramsTemplates()
	insert := func(n int, k, prefix, state, status string, version int, final *time.Time, dueFrom time.Time) error {
		if n == 0 {
			return nil
		}
		// Every row of a kind has the same creation time, so that their
		// ids share one prefix: the audit is read by a range of its index.
		return q.Exec(`INSERT INTO withdrawals (id, channel, account, out_request_no, merchant_key, amount, params_hash, params,
			state, version, provider_status, provider_ref, submissions, next_attempt_at, provider_request,
			submitted_at, first_sent_at, final_at, created_at, updated_at)
		SELECT `+idExpr+`, 'wechatpay_ecommerce', 'default', out_request_no, CONCAT('wechatpay:default:', sub), amount,
			SHA2(out_request_no, 256), `+ecom+`, ?, ?, ?, CONCAT(?, LPAD(s, 12, '0')), 1,
			? + INTERVAL s MICROSECOND, `+ecom+`, sent, sent, ?, created, ?
		FROM (
			SELECT seq AS s, ? AS kind, ? AS created, ? AS sent, CONCAT(?, LPAD(seq, 10, '0')) AS out_request_no,
				CONCAT('19', LPAD((seq * 40503) % `+strconv.Itoa(o.Merchants)+`, 8, '0')) AS sub,
				100 + (seq * 7907) % 500000 AS amount
			FROM seq_1_to_`+strconv.Itoa(n)+`
		) a`, state, version, status, prefix, dueFrom, final, now, k, sentAt.Add(-time.Minute), sentAt, prefix).Error
	}
	succeededAt := now.Add(-time.Hour)
	if err := insert(o.Submitted, kind, "Q", "SUBMITTED", "CREATE_SUCCESS", 2, nil, now.Add(-2*time.Minute)); err != nil {
		return BurstResult{}, fmt.Errorf("burst: insert submitted: %w", err)
	}
	if err := insert(o.FollowUps, followKind, "F", "SUCCEEDED", "SUCCESS", 3, &succeededAt, now.Add(-2*time.Minute)); err != nil {
		return BurstResult{}, fmt.Errorf("burst: insert follow-ups: %w", err)
	}

	sb, err := dispatchbench.StartSandbox(ctx)
	if err != nil {
		return BurstResult{}, err
	}
	defer sb.Close()
	if err := preload(ctx, db, sb.Server, kind, followKind, sentAt); err != nil {
		return BurstResult{}, err
	}

	pollDB, err := store.OpenMySQL(ctx, dsn, store.PoolOptions{MaxOpen: pollerPool})
	if err != nil {
		return BurstResult{}, err
	}
	defer pollDB.Close()
	reg := prometheus.NewRegistry()
	p, err := poll.New(pollDB, sb.Registry, poll.Options{Instance: "burst", Rules: schedule.Production(), SweepSpec: "@every 1s",
		QueryRate: o.Rate, Logger: o.Logger, Metrics: poll.NewMetrics(reg)})
	if err != nil {
		return BurstResult{}, err
	}
	total := o.Submitted + o.FollowUps
	q0, err := store.StatementsReceived(ctx, db)
	if err != nil {
		return BurstResult{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(runCtx) }()
	// The poller's own counter says when every row was queried (no
	// statement of the harness meanwhile); the table then confirms that
	// none is due.
	deadline := start.Add(o.Timeout)
	var lastLook time.Time
	for {
		time.Sleep(20 * time.Millisecond)
		if time.Now().After(deadline) {
			return BurstResult{}, fmt.Errorf("burst: not drained after %s (%.0f queries of %d)", o.Timeout, counterSum(reg, "withdraw_poll_queries_total"), total)
		}
		if counterSum(reg, "withdraw_poll_queries_total") < float64(total) || time.Since(lastLook) < time.Second {
			continue
		}
		// Drained: every row's answer recorded (its audit row written with
		// the change) and none due. A row whose record failed holds its
		// claim's lease and is queried again when the lease runs out: it
		// is not drained before then.
		lastLook = time.Now()
		var due, recorded int64
		if err := q.Raw("SELECT COUNT(*) FROM withdrawals WHERE state IN ('SUBMITTED', 'SUCCEEDED') AND next_attempt_at <= ?", time.Now().UTC()).Scan(&due).Error; err != nil {
			return BurstResult{}, err
		}
		if err := q.Raw("SELECT COUNT(DISTINCT withdrawal_id) FROM withdrawal_attempts WHERE (withdrawal_id LIKE ? OR withdrawal_id LIKE ?) AND operation = ?",
			idFloor(sentAt.Add(-time.Minute))+"-7"+kind+"-%", idFloor(sentAt.Add(-time.Minute))+"-7"+followKind+"-%", poll.OpQuery).Scan(&recorded).Error; err != nil {
			return BurstResult{}, err
		}
		if due == 0 && recorded == int64(total) {
			break
		}
	}
	wall := time.Since(start)
	q1, err := store.StatementsReceived(ctx, db)
	if err != nil {
		return BurstResult{}, err
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return BurstResult{}, err
	}

	own, err := poolStatements(ctx, pollDB, pollerPool)
	if err != nil {
		return BurstResult{}, err
	}
	r := BurstResult{Submitted: o.Submitted, FollowUps: o.FollowUps, Wall: wall, Configured: o.Rate,
		Statements: own, StatementsPerWithdrawal: float64(own) / float64(total), ServerStatements: q1 - q0}
	if err := r.readAudit(ctx, db, kind, followKind, sentAt); err != nil {
		return r, err
	}
	r.Unrecorded = int(counterSum(reg, "withdraw_poll_queries_total")) - r.Queries
	r.ByState = map[string]int64{}
	var states []struct {
		State string
		N     int64
	}
	if err := q.Raw("SELECT state, COUNT(*) AS n FROM withdrawals WHERE id LIKE ? OR id LIKE ? GROUP BY state",
		idFloor(sentAt.Add(-time.Minute))+"-7"+kind+"-%", idFloor(sentAt.Add(-time.Minute))+"-7"+followKind+"-%").Scan(&states).Error; err != nil {
		return r, err
	}
	for _, s := range states {
		r.ByState[s.State] = s.N
	}
	// Every order was found: a NOT_FOUND (UNKNOWN) would mean the burst
	// measured something else than the queries of known orders.
	if r.ByState["UNKNOWN"] > 0 {
		return r, fmt.Errorf("burst: %d withdrawals became UNKNOWN", r.ByState["UNKNOWN"])
	}
	return r, nil
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return 0
}

// preload gives the sandbox an order for every row of the burst, with the
// row's own numbers, reference and amount.
func preload(ctx context.Context, db *store.DB, sb *sandbox.Server, kind, followKind string, sentAt time.Time) error {
	floor := idFloor(sentAt.Add(-time.Minute))
	for _, k := range []string{kind, followKind} {
		var rows []struct {
			OutRequestNo string
			ProviderRef  string
			Amount       int64
			Params       []byte
			State        string
		}
		if err := db.Gorm().WithContext(ctx).Raw("SELECT out_request_no, provider_ref, amount, params, state FROM withdrawals WHERE id LIKE ?",
			floor+"-7"+k+"-%").Scan(&rows).Error; err != nil {
			return err
		}
		orders := make([]sandbox.PreloadedOrder, 0, len(rows))
		for i, r := range rows {
			var cmd withdrawal.Command
			if err := json.Unmarshal(r.Params, &cmd); err != nil {
				return fmt.Errorf("burst: params of %s: %w", r.OutRequestNo, err)
			}
			status := "SUCCESS"
			if r.State == string(withdrawal.StateSubmitted) {
				status = burstStatus(i + 1)
			}
			orders = append(orders, sandbox.PreloadedOrder{Channel: withdrawal.ChannelWeChatEcommerce, MchID: dispatchbench.MchID,
				SubMchID: cmd.SubMchID, OutRequestNo: r.OutRequestNo, ProviderRef: r.ProviderRef, Amount: r.Amount,
				AccountType: cmd.AccountType, Status: status, Created: sentAt})
		}
		if err := sb.Preload(orders...); err != nil {
			return err
		}
	}
	return nil
}

// readAudit reads the burst's queries from withdrawal_attempts, by the
// range of its ids in ix_attempts_withdrawal.
func (r *BurstResult) readAudit(ctx context.Context, db *store.DB, kind, followKind string, sentAt time.Time) error {
	floor := idFloor(sentAt.Add(-time.Minute))
	var rows []struct {
		WithdrawalID string
		StartedAt    time.Time
		LatencyUS    int64 `gorm:"column:latency_us"`
	}
	if err := db.Gorm().WithContext(ctx).Raw("SELECT withdrawal_id, started_at, latency_us FROM withdrawal_attempts WHERE (withdrawal_id LIKE ? OR withdrawal_id LIKE ?) AND operation = ? ORDER BY started_at",
		floor+"-7"+kind+"-%", floor+"-7"+followKind+"-%", poll.OpQuery).Scan(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 {
		return errors.New("burst: no query audited")
	}
	isFollow := func(id string) bool { return len(id) > 18 && id[15:18] == followKind }
	first := rows[0].StartedAt
	var lastEnd, lastSubmitted, lastFollow time.Time
	for _, a := range rows {
		if end := a.StartedAt.Add(time.Duration(a.LatencyUS) * time.Microsecond); end.After(lastEnd) {
			lastEnd = end
		}
		if isFollow(a.WithdrawalID) {
			lastFollow = a.StartedAt
		} else {
			lastSubmitted = a.StartedAt
		}
	}
	both := lastSubmitted
	if lastFollow.Before(both) {
		both = lastFollow
	}
	var inWindow, followInWindow int
	for _, a := range rows {
		if isFollow(a.WithdrawalID) && !a.StartedAt.After(lastSubmitted) {
			r.FollowUpsDuringBurst++
		}
		if !a.StartedAt.After(both) {
			inWindow++
			if isFollow(a.WithdrawalID) {
				followInWindow++
			}
		}
	}
	r.Queries = len(rows)
	r.Drain = lastEnd.Sub(first)
	if span := rows[len(rows)-1].StartedAt.Sub(first); span > 0 {
		r.QueriesPerSec = float64(len(rows)-1) / span.Seconds()
	}
	if inWindow > 0 {
		r.FollowUpShare = float64(followInWindow) / float64(inWindow)
	}
	return nil
}

// counterSum adds up every series of the named counter in reg.
func counterSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// pollerPool is the size of the burst poller's pool: its default
// concurrency (16) plus the sweep's claim and heartbeat.
const pollerPool = 20

// poolStatements sums the Questions counters of every session of db's
// pool, of at most n connections, less the statement that reads each: the
// statements the pool's users sent (and the driver's one on connecting).
// The pool must be idle.
func poolStatements(ctx context.Context, db *store.DB, n int) (int64, error) {
	sqlDB, err := db.Gorm().DB()
	if err != nil {
		return 0, err
	}
	// Holding n connections at once reaches every session the pool kept
	// (it keeps all: MaxIdle is MaxOpen); any it opens anew adds ~0.
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := sqlDB.Conn(ctx)
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
	}
	var total int64
	for _, c := range conns {
		var name string
		var v int64
		if err := c.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Questions'").Scan(&name, &v); err != nil {
			return 0, err
		}
		total += v - 1
	}
	return total, nil
}
