// Package recon reconciles our withdrawals daily against WeChat Pay's
// fund-flow bills (资金账单): every movement of an account's balance with its
// business number, amount and booking time. The bill is the wide net; a
// provider query stays the only thing that moves a state.
//
// For each bill date and each configured bill (a Source) it downloads the
// verified file, streams its lines, and stores one recon_items row per
// withdrawal line: MATCHED, NOT_OURS (money moved that we did not order),
// AMOUNT_MISMATCH, or REFUND (the money of a withdrawal we hold as
// SUCCEEDED came back: the row is made due for a query now, and the
// poller's confirming query, through package decide, reverses it). Once
// every bill of the day is read, our SUCCEEDED withdrawals first sent that
// day that no bill booked become MISSING (alert, and a query now). A
// recon_days row sums each outcome for finance.
//
// Runs are idempotent: items are keyed by (date, source, line flow id or
// "ours:"+withdrawal id) and inserted only if absent; alerts, metrics and
// queries follow only a new insert, so re-running a day changes nothing. A
// run that stops half-way (crash, bill not ready, refused file) leaves its
// source PENDING and the next run reads that bill again from the start.
//
// Allinpay has no bill API in our documents: its withdrawals are
// reconciled by query only.
package recon

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// Fetcher downloads one day's bill of a source.
type Fetcher interface {
	// Fetch returns the plain files of the day's bill, in order, each
	// already checked against the provider's hash. An error wrapping
	// ErrNotReady means the provider has no bill for the day yet.
	Fetch(ctx context.Context, date, dir string) ([]string, error)
}

// ErrNotReady is wrapped by a Fetcher's error when the bill does not exist
// yet: not an alert before Options.LateAfter.
var ErrNotReady = errors.New("recon: bill not ready")

// ErrRefused is wrapped by a Fetcher's error when a downloaded file did not
// match its hash (or did not decrypt): it is never used, and fetched again.
var ErrRefused = errors.New("recon: bill file refused")

// Source is one bill: an account's fund account, or its sub-merchants'.
type Source struct {
	// Name identifies the bill in recon_sources and recon_items, e.g.
	// "wechatpay/default/platform/BASIC".
	Name    string
	Account string
	// Channels are the channels whose withdrawals the bill books.
	Channels []withdrawal.Channel
	Layout   *provider.Recon
	Fetcher  Fetcher
	// Covers reports whether a withdrawal of Account in Channels should
	// be on this bill (its fund account, its sub-merchant).
	Covers func(w *store.Withdrawal) bool
}

// Options configure a Reconciler.
type Options struct {
	// ReadyHour is the Beijing hour of the day after the bill date from
	// which Run asks for the bill (ReadyHourDefault).
	ReadyHour int
	// LateAfter is how long after ReadyHour a bill still not available is
	// an alert (LateAfterDefault).
	LateAfter time.Duration
	// Lookback is how many past days Run keeps trying (LookbackDefault;
	// WeChat keeps bills three months, Reconcile reaches any of them).
	Lookback int
	// Attempts is how many times one run fetches a refused file (hash or
	// decryption) before leaving it to the next run (AttemptsDefault).
	Attempts int
	// TempDir holds the downloads while they are read (default os.TempDir).
	TempDir string
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock (tests).
	Now func() time.Time
}

// The defaults of Options.
const (
	// ReadyHourDefault: WeChat generates the bills from 09:00 and advises
	// fetching them after 10:00.
	ReadyHourDefault = 10
	LateAfterDefault = 4 * time.Hour
	LookbackDefault  = 3
	AttemptsDefault  = 3
)

// validate refuses values no reconciliation can run with.
func (o *Options) validate() error {
	switch {
	case o.ReadyHour < 0 || o.ReadyHour > 23:
		return fmt.Errorf("recon: Options.ReadyHour must be an hour of the day (0–23), got %d", o.ReadyHour)
	case o.LateAfter < 0:
		return fmt.Errorf("recon: Options.LateAfter must not be negative, got %s", o.LateAfter)
	case o.Lookback < 0:
		return fmt.Errorf("recon: Options.Lookback must not be negative, got %d", o.Lookback)
	case o.Attempts < 0:
		return fmt.Errorf("recon: Options.Attempts must not be negative, got %d", o.Attempts)
	}
	return nil
}

// Reconciler reconciles days.
type Reconciler struct {
	db      *store.DB
	sources []Source
	opts    Options
	log     *slog.Logger
}

// New returns a reconciler of the sources over a migrated database. Zero
// options take their defaults; impossible ones are an error.
func New(db *store.DB, sources []Source, opts Options) (*Reconciler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.ReadyHour = cmp.Or(opts.ReadyHour, ReadyHourDefault)
	opts.LateAfter = cmp.Or(opts.LateAfter, LateAfterDefault)
	opts.Lookback = cmp.Or(opts.Lookback, LookbackDefault)
	opts.Attempts = cmp.Or(opts.Attempts, AttemptsDefault)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC() }
	}
	return &Reconciler{db: db, sources: sources, opts: opts, log: opts.Logger.With("component", "recon")}, nil
}

// lockName serialises reconciliations across poller instances.
const lockName = "withdraw.recon"

// Run is the cron job: every day of the last Lookback days whose bills are
// due (after ReadyHour Beijing the next day) and not yet reconciled is
// reconciled. On MySQL one instance at a time runs it (GET_LOCK); the
// others skip. It returns the first error, after trying every day.
func (r *Reconciler) Run(ctx context.Context) error {
	if len(r.sources) == 0 {
		return nil
	}
	unlock, ok, err := store.TryAdvisoryLock(ctx, r.db, lockName)
	if err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	if !ok {
		r.log.Debug("another instance is reconciling")
		return nil
	}
	defer unlock()
	now := r.opts.Now()
	local := now.In(withdrawal.Beijing)
	today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, withdrawal.Beijing)
	var first error
	for i := r.opts.Lookback; i >= 1; i-- {
		day := today.AddDate(0, 0, -i)
		if now.Before(day.AddDate(0, 0, 1).Add(time.Duration(r.opts.ReadyHour) * time.Hour)) {
			continue
		}
		date := day.Format(DateLayout)
		if d, err := store.GetReconDay(ctx, r.db, date); err == nil && d.Status == store.ReconDone && d.SourcesTotal == len(r.sources) {
			continue
		}
		if _, err := r.Reconcile(ctx, date); err != nil && first == nil && !errors.Is(err, ErrNotReady) {
			first = err
		}
	}
	return first
}

// DateLayout is the layout of bill dates.
const DateLayout = "2006-01-02"

// Reconcile reconciles one bill date (YYYY-MM-DD, Beijing): every source
// not yet read, then, once all are, our withdrawals missing from them; and
// rewrites the day's summary. Calling it again for a finished day changes
// nothing. The error says which bills could not be read (ErrNotReady when
// only because they do not exist yet).
func (r *Reconciler) Reconcile(ctx context.Context, date string) (*store.ReconDay, error) {
	if _, err := time.ParseInLocation(DateLayout, date, withdrawal.Beijing); err != nil {
		return nil, fmt.Errorf("recon: date %q: want YYYY-MM-DD", date)
	}
	var errs []error
	for _, src := range r.sources {
		if err := r.source(ctx, date, src); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src.Name, err))
		}
	}
	srcs, err := store.ReconSources(ctx, r.db, date)
	if err != nil {
		return nil, err
	}
	done := 0
	for _, s := range srcs {
		if s.Status == store.ReconDone && r.known(s.Source) {
			done++
		}
	}
	r.opts.Metrics.pending.Set(float64(len(r.sources) - done))
	if done == len(r.sources) {
		if err := r.missing(ctx, date); err != nil {
			errs = append(errs, err)
		}
	}
	day, err := store.RecomputeReconDay(ctx, r.db, date, len(r.sources), r.opts.Now())
	if err != nil {
		errs = append(errs, err)
	} else if day.Status == store.ReconDone {
		r.opts.Metrics.observeDay(day)
		r.log.Info("reconciliation done", "bill_date", date, "matched", day.MatchedCount, "not_ours", day.NotOursCount,
			"missing", day.MissingCount, "amount_mismatch", day.AmountMismatchCount, "refund", day.RefundCount,
			"bill_lines", day.BillLines)
	}
	return day, errors.Join(errs...)
}

func (r *Reconciler) known(name string) bool {
	return slices.ContainsFunc(r.sources, func(s Source) bool { return s.Name == name })
}

// source reads one bill of the day unless it was read before.
func (r *Reconciler) source(ctx context.Context, date string, src Source) error {
	row, err := store.EnsureReconSource(ctx, r.db, date, src.Name, r.opts.Now())
	if err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	if row.Status == store.ReconDone {
		return nil
	}
	lines, other, err := r.read(ctx, date, src)
	var uerr error
	if err != nil {
		reason := "error"
		switch {
		case errors.Is(err, ErrNotReady):
			reason = "not_ready"
			late := r.dueAt(date).Add(r.opts.LateAfter)
			if r.opts.Now().After(late) {
				r.log.Error("fund-flow bill still not available", "bill_date", date, "source", src.Name, "alert", true, "err", err)
			} else {
				r.log.Info("fund-flow bill not available yet; asked again on the next run", "bill_date", date, "source", src.Name)
			}
		case errors.Is(err, ErrRefused):
			reason = "refused"
			r.log.Error("fund-flow bill file refused; fetched again on the next run", "bill_date", date, "source", src.Name, "alert", true, "err", err)
		default:
			r.log.Error("fund-flow bill could not be reconciled", "bill_date", date, "source", src.Name, "alert", true, "err", err)
		}
		r.opts.Metrics.failures.WithLabelValues(src.Name, reason).Inc()
		uerr = store.MarkReconSourceFailed(ctx, r.db, date, src.Name, err.Error(), r.opts.Now())
	} else {
		uerr = store.MarkReconSourceDone(ctx, r.db, date, src.Name, lines, other, r.opts.Now())
	}
	if uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

// dueAt is when the bill of date is first asked for.
func (r *Reconciler) dueAt(date string) time.Time {
	d, _ := time.ParseInLocation(DateLayout, date, withdrawal.Beijing)
	return d.AddDate(0, 0, 1).Add(time.Duration(r.opts.ReadyHour) * time.Hour)
}

// batchLines is how many withdrawal lines are matched per database round.
const batchLines = 1000

// read fetches, verifies and matches one bill. It returns the detail lines
// read and how many were not withdrawal movements.
func (r *Reconciler) read(ctx context.Context, date string, src Source) (int64, int64, error) {
	dir, err := os.MkdirTemp(r.opts.TempDir, "recon-*")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	var files []string
	for i := 1; ; i++ {
		files, err = src.Fetcher.Fetch(ctx, date, dir)
		if err == nil || !errors.Is(err, ErrRefused) || i >= r.opts.Attempts || ctx.Err() != nil {
			break
		}
		r.opts.Metrics.failures.WithLabelValues(src.Name, "refused").Inc()
		r.log.Warn("fund-flow bill file refused; fetching it again", "bill_date", date, "source", src.Name, "attempt", i, "err", err)
	}
	if err != nil {
		return 0, 0, err
	}
	readers := make([]io.Reader, 0, len(files))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return 0, 0, err
		}
		defer fh.Close()
		readers = append(readers, fh)
	}
	var (
		batch []Line
		other int64
	)
	flush := func() error {
		err := r.match(ctx, date, src, batch)
		batch = batch[:0]
		return err
	}
	sum, err := ParseBill(io.MultiReader(readers...), src.Layout, func(l Line) error {
		if l.Kind == LineOther {
			other++
			return nil
		}
		batch = append(batch, l)
		if len(batch) >= batchLines {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	return sum.Lines, other, err
}

// SendWindow bounds how long before a bill's day a withdrawal on it was
// created (accepted): its first send, and so its booking, follows within
// it. Withdrawals are looked up by provider id, and the day's are listed,
// among those created in [day - SendWindow, day + 2 days): ids are UUIDv7,
// so that is a range of the primary key (store.ReconWithdrawalsByProviderRef,
// store.ListSucceededFirstSent), instead of indexes on provider_ref and
// first_sent_at, which every intake insert and every submission would pay
// for to serve one job a day.
const SendWindow = 7 * 24 * time.Hour

// createdWindow is when the withdrawals a bill of date may book were
// created.
func createdWindow(date string) (from, to time.Time) {
	day, _ := time.ParseInLocation(DateLayout, date, withdrawal.Beijing)
	return day.Add(-SendWindow), day.AddDate(0, 0, 2)
}

// match classifies a batch of withdrawal lines and stores them.
func (r *Reconciler) match(ctx context.Context, date string, src Source, lines []Line) error {
	var nos, refs []string
	for _, l := range lines {
		if l.Number != "" {
			nos = append(nos, l.Number)
		}
	}
	byNo := map[string]*store.Withdrawal{}
	byRef := map[string]*store.Withdrawal{}
	rows, err := store.ReconWithdrawalsByOutRequestNo(ctx, r.db, src.Account, src.Channels, nos)
	if err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	for i := range rows {
		byNo[rows[i].OutRequestNo] = &rows[i]
	}
	for _, l := range lines {
		if byNo[l.Number] == nil && l.Ref != "" {
			refs = append(refs, l.Ref)
		}
	}
	from, to := createdWindow(date)
	rows, err = store.ReconWithdrawalsByProviderRef(ctx, r.db, src.Account, src.Channels, refs, from, to)
	if err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	for i := range rows {
		byRef[rows[i].ProviderRef] = &rows[i]
	}

	now := r.opts.Now()
	var matched []store.ReconItem
	var matchedIDs []string
	for _, l := range lines {
		it := store.ReconItem{BillDate: date, Source: src.Name, ItemKey: itemKey(l), LineKind: string(l.Kind),
			OutRequestNo: clip(l.Number, 64), ProviderRef: clip(l.Ref, 128), BillAmount: l.Fen, BookedAt: clip(l.BookedAt, 32), CreatedAt: now}
		w := byNo[l.Number]
		if w == nil {
			w = byRef[l.Ref]
		}
		var outcome string
		switch {
		case w == nil:
			outcome = store.ReconNotOurs
		case l.Ref != "" && w.ProviderRef != "" && l.Ref != w.ProviderRef:
			// Our number, another provider order: not a booking of ours.
			outcome, it.Note = store.ReconNotOurs, "out_request_no is ours but the provider id differs"
		case l.Fen != w.Amount:
			outcome = store.ReconAmountMismatch
		case l.Kind == LineRefund && refundable(w.State):
			outcome = store.ReconRefund
		default:
			outcome = store.ReconMatched
		}
		it.Outcome = outcome
		if w != nil {
			it.WithdrawalID, it.OurAmount, it.OurState = w.ID, w.Amount, w.State
			if it.OutRequestNo == "" {
				it.OutRequestNo = w.OutRequestNo
			}
		}
		if outcome == store.ReconMatched {
			matched = append(matched, it)
			if l.Kind == LineWithdraw {
				matchedIDs = append(matchedIDs, w.ID)
			}
			continue
		}
		if err := r.finding(ctx, it, w); err != nil {
			return err
		}
	}
	n, err := store.InsertReconItems(ctx, r.db, matched)
	if err != nil {
		return err
	}
	r.opts.Metrics.findings.WithLabelValues(store.ReconMatched).Add(float64(n))
	return r.resolveLate(ctx, date, matchedIDs)
}

// refundable says whether a refund line tells us something about a
// withdrawal in this state: the money of a SUCCEEDED (or still open)
// withdrawal came back. A FAILED or REVERSED one already accounts for it.
func refundable(state string) bool {
	switch withdrawal.State(state) {
	case withdrawal.StateFailed, withdrawal.StateReversed:
		return false
	}
	return true
}

// finding stores one non-matched item and, only when it is new, alerts and
// makes the withdrawal due for a query (REFUND, MISSING), in the same
// transaction: a crash never leaves a finding without its query.
func (r *Reconciler) finding(ctx context.Context, it store.ReconItem, w *store.Withdrawal) error {
	var requery *store.Withdrawal
	if it.Outcome == store.ReconRefund || it.Outcome == store.ReconMissing {
		requery = w
	}
	var isNew bool
	var requeried string
	err := r.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		isNew, requeried, err = store.RecordReconFinding(ctx, tx, it, requery, r.opts.Now())
		return err
	})
	if err != nil || !isNew {
		return err
	}
	r.opts.Metrics.findings.WithLabelValues(it.Outcome).Inc()
	msg := map[string]string{
		store.ReconNotOurs:        "bill line not ours: money moved that we did not order",
		store.ReconAmountMismatch: "bill amount differs from our withdrawal",
		store.ReconRefund:         "bill shows a withdrawal's money returned: queried now, the query decides",
		store.ReconMissing:        "succeeded withdrawal not on the day's bills: queried now",
	}[it.Outcome]
	r.log.Error(msg, "alert", true, "bill_date", it.BillDate, "source", it.Source, "outcome", it.Outcome,
		"withdrawal_id", it.WithdrawalID, "out_request_no", it.OutRequestNo, "provider_ref", it.ProviderRef,
		"bill_amount", it.BillAmount, "our_amount", it.OurAmount, "our_state", it.OurState, "requery", requeried, "note", it.Note)
	return nil
}

// resolveLate clears MISSING findings of earlier days for withdrawals a
// later bill booked (sent just before midnight, booked just after): the
// earlier day's summary is rewritten.
func (r *Reconciler) resolveLate(ctx context.Context, date string, ids []string) error {
	late, err := store.ResolveLateMissing(ctx, r.db, date, ids)
	for _, it := range late {
		r.log.Info("missing withdrawal found on a later bill", "withdrawal_id", it.WithdrawalID, "out_request_no", it.OutRequestNo,
			"missing_on", it.BillDate, "booked_on", date)
	}
	if err != nil {
		return fmt.Errorf("recon: %w", err)
	}
	days := map[string]bool{}
	for _, it := range late {
		days[it.BillDate] = true
	}
	for d := range days {
		if _, err := store.RecomputeReconDay(ctx, r.db, d, len(r.sources), r.opts.Now()); err != nil {
			return err
		}
	}
	return nil
}

// missing records our SUCCEEDED withdrawals first sent on the day that no
// withdrawal line of any bill booked.
func (r *Reconciler) missing(ctx context.Context, date string) error {
	day, _ := time.ParseInLocation(DateLayout, date, withdrawal.Beijing)
	from, to := day.UTC(), day.AddDate(0, 0, 1).UTC()
	var channels []withdrawal.Channel
	for _, s := range r.sources {
		for _, c := range s.Channels {
			if !slices.Contains(channels, c) {
				channels = append(channels, c)
			}
		}
	}
	createdFrom, createdTo := createdWindow(date)
	page := store.FirstSentPage{Channels: channels, CreatedFrom: createdFrom, CreatedTo: createdTo,
		SentFrom: from, SentTo: to, Limit: batchLines}
	for {
		rows, err := store.ListSucceededFirstSent(ctx, r.db, page)
		if err != nil {
			return fmt.Errorf("recon: day's withdrawals: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		page.After = rows[len(rows)-1].ID
		ids := make([]string, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
		}
		booked, err := store.ReconBooked(ctx, r.db, ids)
		if err != nil {
			return fmt.Errorf("recon: %w", err)
		}
		for i := range rows {
			w := &rows[i]
			if slices.Contains(booked, w.ID) {
				continue
			}
			src := r.covering(w)
			if src == nil {
				continue // no configured bill books it: reconciled by query only
			}
			it := store.ReconItem{BillDate: date, Source: src.Name, ItemKey: "ours:" + w.ID, Outcome: store.ReconMissing,
				WithdrawalID: w.ID, OutRequestNo: w.OutRequestNo, ProviderRef: w.ProviderRef, OurAmount: w.Amount,
				OurState: w.State, CreatedAt: r.opts.Now()}
			if err := r.finding(ctx, it, w); err != nil {
				return err
			}
		}
	}
}

// covering is the source whose bill should book w, nil if none.
func (r *Reconciler) covering(w *store.Withdrawal) *Source {
	for i := range r.sources {
		s := &r.sources[i]
		if s.Account == w.Account && slices.Contains(s.Channels, withdrawal.Channel(w.Channel)) && (s.Covers == nil || s.Covers(w)) {
			return s
		}
	}
	return nil
}

// itemKey is a line's key: its flow id, else its position (stable for the
// same file).
func itemKey(l Line) string {
	if l.Flow != "" {
		return clip("flow:"+l.Flow, 160)
	}
	return fmt.Sprintf("line:%d:%s:%s", l.N, l.Kind, clip(l.Number, 64))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// params are the fields of a stored command the sources select on.
type params struct {
	SubMchID       string `json:"sub_mchid"`
	AccountType    string `json:"account_type"`
	OutAccountType string `json:"out_account_type"`
}

// fundAccount is the fund account a withdrawal draws on: BASIC unless the
// command says otherwise (the cancel application's BASIC_ACCOUNT and
// OPERATE_ACCOUNT map to BASIC and OPERATION).
func fundAccount(w *store.Withdrawal) (sub, account string) {
	var p params
	_ = json.Unmarshal(w.Params, &p)
	account = p.AccountType
	switch p.OutAccountType {
	case "BASIC_ACCOUNT":
		account = "BASIC"
	case "OPERATE_ACCOUNT":
		account = "OPERATION"
	}
	if account == "" {
		account = "BASIC"
	}
	return p.SubMchID, strings.ToUpper(account)
}
