package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/paycore/withdraw/internal/withdrawal"
)

// Reconciliation outcomes (recon_items.outcome).
const (
	ReconMatched        = "MATCHED"
	ReconNotOurs        = "NOT_OURS"
	ReconMissing        = "MISSING"
	ReconAmountMismatch = "AMOUNT_MISMATCH"
	ReconRefund         = "REFUND"
)

// ReconOutcomes lists the outcomes in report order.
var ReconOutcomes = []string{ReconMatched, ReconNotOurs, ReconMissing, ReconAmountMismatch, ReconRefund}

// Statuses of recon_sources and recon_days.
const (
	ReconPending = "PENDING"
	ReconDone    = "DONE"
)

// ReconSource is a row of recon_sources: one bill of one day.
type ReconSource struct {
	BillDate   string `gorm:"primaryKey"`
	Source     string `gorm:"primaryKey"`
	Status     string
	Attempts   int
	LastError  string
	BillLines  int64
	OtherLines int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DoneAt     *time.Time
}

// TableName implements gorm's Tabler.
func (ReconSource) TableName() string { return "recon_sources" }

// ReconItem is a row of recon_items: one withdrawal line of a bill, or one
// withdrawal of ours missing from the day's bills.
type ReconItem struct {
	ID           int64 `gorm:"primaryKey;autoIncrement"`
	BillDate     string
	Source       string
	ItemKey      string
	Outcome      string
	LineKind     string
	WithdrawalID string
	OutRequestNo string
	ProviderRef  string
	BillAmount   int64
	OurAmount    int64
	OurState     string
	BookedAt     string
	Note         string
	CreatedAt    time.Time
}

// TableName implements gorm's Tabler.
func (ReconItem) TableName() string { return "recon_items" }

// ReconDay is a row of recon_days: a day's summary, counts and sums (fen)
// per outcome. Sums are of the bill's amount, or ours where the bill has
// none (MISSING).
type ReconDay struct {
	BillDate            string    `gorm:"primaryKey" json:"bill_date"`
	Status              string    `json:"status"`
	SourcesTotal        int       `json:"sources_total"`
	SourcesDone         int       `json:"sources_done"`
	MatchedCount        int64     `json:"matched_count"`
	MatchedFen          int64     `json:"matched_fen"`
	NotOursCount        int64     `json:"not_ours_count"`
	NotOursFen          int64     `json:"not_ours_fen"`
	MissingCount        int64     `json:"missing_count"`
	MissingFen          int64     `json:"missing_fen"`
	AmountMismatchCount int64     `json:"amount_mismatch_count"`
	AmountMismatchFen   int64     `json:"amount_mismatch_fen"`
	RefundCount         int64     `json:"refund_count"`
	RefundFen           int64     `json:"refund_fen"`
	BillLines           int64     `json:"bill_lines"`
	OtherLines          int64     `json:"other_lines"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// TableName implements gorm's Tabler.
func (ReconDay) TableName() string { return "recon_days" }

// Count returns the count and sum of an outcome.
func (d *ReconDay) Count(outcome string) (int64, int64) {
	switch outcome {
	case ReconMatched:
		return d.MatchedCount, d.MatchedFen
	case ReconNotOurs:
		return d.NotOursCount, d.NotOursFen
	case ReconMissing:
		return d.MissingCount, d.MissingFen
	case ReconAmountMismatch:
		return d.AmountMismatchCount, d.AmountMismatchFen
	case ReconRefund:
		return d.RefundCount, d.RefundFen
	}
	return 0, 0
}

func (d *ReconDay) set(outcome string, n, fen int64) {
	switch outcome {
	case ReconMatched:
		d.MatchedCount, d.MatchedFen = n, fen
	case ReconNotOurs:
		d.NotOursCount, d.NotOursFen = n, fen
	case ReconMissing:
		d.MissingCount, d.MissingFen = n, fen
	case ReconAmountMismatch:
		d.AmountMismatchCount, d.AmountMismatchFen = n, fen
	case ReconRefund:
		d.RefundCount, d.RefundFen = n, fen
	}
}

var reconItemColumns = []string{"bill_date", "source", "item_key", "outcome", "line_kind", "withdrawal_id",
	"out_request_no", "provider_ref", "bill_amount", "our_amount", "our_state", "booked_at", "note", "created_at"}

// InsertReconItems inserts items, skipping those already stored (same day,
// source and key), and returns how many were new. The statement is built
// here: GORM's insert returns the ids (RETURNING on MariaDB), and counts a
// skipped duplicate as a row.
func InsertReconItems(ctx context.Context, ex Executor, items []ReconItem) (int64, error) {
	db := ex.handle()
	skip := " ON DUPLICATE KEY UPDATE id = id"
	if ex.engine() != MySQL {
		skip = " ON CONFLICT (bill_date, source, item_key) DO NOTHING"
	}
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(reconItemColumns)), ",") + ")"
	var n int64
	for start := 0; start < len(items); start += 500 {
		batch := items[start:min(start+500, len(items))]
		var q strings.Builder
		q.WriteString("INSERT INTO recon_items (" + strings.Join(reconItemColumns, ",") + ") VALUES ")
		args := make([]any, 0, len(batch)*len(reconItemColumns))
		for i, it := range batch {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(tuple)
			args = append(args, it.BillDate, it.Source, it.ItemKey, it.Outcome, it.LineKind, it.WithdrawalID,
				it.OutRequestNo, it.ProviderRef, it.BillAmount, it.OurAmount, it.OurState, it.BookedAt, it.Note,
				it.CreatedAt.UTC().Truncate(time.Microsecond))
		}
		q.WriteString(skip)
		res := db.WithContext(ctx).Exec(q.String(), args...)
		if res.Error != nil {
			return n, fmt.Errorf("insert recon items: %w", res.Error)
		}
		n += res.RowsAffected
	}
	return n, nil
}

// ReconSources returns the day's source rows.
func ReconSources(ctx context.Context, ex Executor, date string) ([]ReconSource, error) {
	db := ex.handle()
	var out []ReconSource
	err := db.WithContext(ctx).Where("bill_date = ?", date).Order("source").Find(&out).Error
	return out, err
}

// RecomputeReconDay rebuilds the day's summary row from its items and
// sources: the same items always give the same row.
func RecomputeReconDay(ctx context.Context, ex Executor, date string, sourcesTotal int, now time.Time) (*ReconDay, error) {
	db := ex.handle()
	var rows []struct {
		Outcome string
		N       int64
		Fen     int64
	}
	err := db.WithContext(ctx).Model(&ReconItem{}).
		Select("outcome, COUNT(*) AS n, COALESCE(SUM(CASE WHEN bill_amount <> 0 THEN bill_amount ELSE our_amount END), 0) AS fen").
		Where("bill_date = ?", date).Group("outcome").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("recon day %s: %w", date, err)
	}
	d := &ReconDay{BillDate: date, Status: ReconPending, SourcesTotal: sourcesTotal, UpdatedAt: now}
	for _, r := range rows {
		d.set(r.Outcome, r.N, r.Fen)
	}
	srcs, err := ReconSources(ctx, ex, date)
	if err != nil {
		return nil, err
	}
	for _, s := range srcs {
		if s.Status == ReconDone {
			d.SourcesDone++
			d.BillLines += s.BillLines
			d.OtherLines += s.OtherLines
		}
	}
	if d.SourcesTotal > 0 && d.SourcesDone >= d.SourcesTotal {
		d.Status = ReconDone
	}
	if err := db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(d).Error; err != nil {
		return nil, fmt.Errorf("recon day %s: %w", date, err)
	}
	return d, nil
}

// GetReconDay loads a day's summary.
func GetReconDay(ctx context.Context, ex Executor, date string) (*ReconDay, error) {
	db := ex.handle()
	var d ReconDay
	err := db.WithContext(ctx).Where("bill_date = ?", date).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("recon day %s: %w", date, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("recon day %s: %w", date, err)
	}
	return &d, nil
}

// ReconFindings lists a day's items other than MATCHED, at most limit.
func ReconFindings(ctx context.Context, ex Executor, date string, limit int) ([]ReconItem, error) {
	db := ex.handle()
	var out []ReconItem
	err := db.WithContext(ctx).Where("bill_date = ? AND outcome <> ?", date, ReconMatched).
		Order("outcome, id").Limit(limit).Find(&out).Error
	return out, err
}

// Requery makes a withdrawal due now for whoever follows it in its state:
// the poller (SUBMITTED, SUCCEEDED) or the dispatcher (UNKNOWN). Only
// next_attempt_at changes, and only while the row is still at version: no
// state, no version, no event. It returns who takes it ("" when the state
// is not requeryable) and whether the row was still at that version.
func Requery(ctx context.Context, ex Executor, w *Withdrawal, now time.Time) (by string, ok bool, err error) {
	db := ex.handle()
	switch withdrawal.State(w.State) {
	case withdrawal.StateSubmitted, withdrawal.StateSucceeded:
		by = "poller"
	case withdrawal.StateUnknown:
		by = "dispatcher"
	default:
		return "", false, nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	res := db.WithContext(ctx).Model(&Withdrawal{}).
		Where("id = ? AND state = ? AND version = ?", w.ID, w.State, w.Version).
		Update("next_attempt_at", now)
	if res.Error != nil {
		return by, false, res.Error
	}
	if res.RowsAffected > 0 {
		return by, true, nil
	}
	// MySQL counts changed rows: 0 also when next_attempt_at already was
	// exactly now, which a re-read tells apart from a real change.
	again, err := GetWithdrawal(ctx, ex, w.ID)
	if err != nil {
		return by, false, err
	}
	return by, again.State == w.State && again.Version == w.Version, nil
}

// Kinds of bill line (recon_items.line_kind); empty for an item of ours
// that no line booked (MISSING).
const (
	ReconLineWithdraw = "withdraw" // money out for a withdrawal
	ReconLineRefund   = "refund"   // a withdrawal's money back
)

// WidthReconError is the width of recon_sources.last_error, in characters.
const WidthReconError = 512

// EnsureReconSource returns the row of one bill of one day, creating it
// PENDING (at now) when the day's reconciliation first meets the bill.
func EnsureReconSource(ctx context.Context, ex Executor, date, source string, now time.Time) (*ReconSource, error) {
	db := ex.handle()
	row := ReconSource{BillDate: date, Source: source, Status: ReconPending, CreatedAt: now, UpdatedAt: now}
	if err := db.WithContext(ctx).Where("bill_date = ? AND source = ?", date, source).FirstOrCreate(&row).Error; err != nil {
		return nil, fmt.Errorf("recon source %s %s: %w", date, source, err)
	}
	return &row, nil
}

// MarkReconSourceFailed counts a failed read of a bill: one more attempt,
// and why (cut to its column, WidthReconError). The bill stays PENDING, to
// be read again from the start.
func MarkReconSourceFailed(ctx context.Context, ex Executor, date, source, why string, now time.Time) error {
	return updateReconSource(ctx, ex, date, source, map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "updated_at": now, "last_error": Fit(why, WidthReconError)})
}

// MarkReconSourceDone records a bill read in full: DONE, with its detail
// lines and how many of them were not withdrawal movements. Reconcile never
// reads a DONE bill again.
func MarkReconSourceDone(ctx context.Context, ex Executor, date, source string, billLines, otherLines int64, now time.Time) error {
	return updateReconSource(ctx, ex, date, source, map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "updated_at": now, "status": ReconDone, "last_error": "",
		"done_at": now, "bill_lines": billLines, "other_lines": otherLines})
}

func updateReconSource(ctx context.Context, ex Executor, date, source string, set map[string]any) error {
	db := ex.handle()
	if err := db.WithContext(ctx).Model(&ReconSource{}).Where("bill_date = ? AND source = ?", date, source).
		Updates(set).Error; err != nil {
		return fmt.Errorf("recon source %s %s: %w", date, source, err)
	}
	return nil
}

// reconColumns are what reconciliation needs of a withdrawal: matching a
// line, recording an item, requerying.
var reconColumns = []string{"id", "channel", "account", "out_request_no", "amount", "params", "state", "version",
	"provider_ref", "next_attempt_at", "first_sent_at"}

func channelStrings(channels []withdrawal.Channel) []string {
	out := make([]string, len(channels))
	for i, c := range channels {
		out[i] = string(c)
	}
	return out
}

// ReconWithdrawalsByOutRequestNo returns the withdrawals of account in
// channels whose out_request_no is one of nos, with the columns
// reconciliation reads (the other fields are zero): uq_withdrawals_key
// serves the lookup.
func ReconWithdrawalsByOutRequestNo(ctx context.Context, ex Executor, account string, channels []withdrawal.Channel, nos []string) ([]Withdrawal, error) {
	if len(nos) == 0 {
		return nil, nil
	}
	db := ex.handle()
	var rows []Withdrawal
	if err := db.WithContext(ctx).Select(reconColumns).
		Where("out_request_no IN ? AND account = ? AND channel IN ?", nos, account, channelStrings(channels)).
		Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find withdrawals by out_request_no: %w", err)
	}
	return rows, nil
}

// ReconWithdrawalsByProviderRef returns the withdrawals of account in
// channels created in [createdFrom, createdTo) whose provider_ref is one of
// refs, with the columns reconciliation reads. There is no index on
// provider_ref, which every submission would pay for to serve one job a
// day: ids are UUIDv7, so the creation window is a range of the primary
// key, and the lookup reads that range.
func ReconWithdrawalsByProviderRef(ctx context.Context, ex Executor, account string, channels []withdrawal.Channel, refs []string,
	createdFrom, createdTo time.Time) ([]Withdrawal, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	db := ex.handle()
	var rows []Withdrawal
	if err := db.WithContext(ctx).Select(reconColumns).
		Where("id >= ? AND id < ? AND provider_ref IN ? AND account = ? AND channel IN ?",
			IDAt(createdFrom), IDAt(createdTo), refs, account, channelStrings(channels)).
		Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("find withdrawals by provider id: %w", err)
	}
	return rows, nil
}

// FirstSentPage is one page of ListSucceededFirstSent: the SUCCEEDED
// withdrawals of Channels created in [CreatedFrom, CreatedTo) and first
// sent in [SentFrom, SentTo), after the id After (the last of the previous
// page; empty for the first), at most Limit of them.
type FirstSentPage struct {
	Channels               []withdrawal.Channel
	CreatedFrom, CreatedTo time.Time
	SentFrom, SentTo       time.Time
	After                  string
	Limit                  int
}

// ListSucceededFirstSent lists one page of p in id order, with the columns
// reconciliation reads; the next page starts after the last id. The
// creation window is a range of the primary key (ids are UUIDv7) that
// bounds the scan, first_sent_at filters it: no index on first_sent_at,
// which every submission would pay for to serve one job a day.
func ListSucceededFirstSent(ctx context.Context, ex Executor, p FirstSentPage) ([]Withdrawal, error) {
	db := ex.handle()
	after := p.After
	if after == "" {
		after = IDAt(p.CreatedFrom)
	}
	var rows []Withdrawal
	if err := db.WithContext(ctx).Select(reconColumns).
		Where("id > ? AND id < ? AND first_sent_at >= ? AND first_sent_at < ? AND state = ? AND channel IN ?",
			after, IDAt(p.CreatedTo), p.SentFrom, p.SentTo, string(withdrawal.StateSucceeded), channelStrings(p.Channels)).
		Order("id").Limit(p.Limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("succeeded withdrawals first sent from %s: %w", p.SentFrom, err)
	}
	return rows, nil
}

// ReconBooked returns those of withdrawalIDs that a withdrawal line of a
// bill booked (an item MATCHED or AMOUNT_MISMATCH), each once:
// ix_recon_items_withdrawal serves it.
func ReconBooked(ctx context.Context, ex Executor, withdrawalIDs []string) ([]string, error) {
	if len(withdrawalIDs) == 0 {
		return nil, nil
	}
	db := ex.handle()
	var booked []string
	if err := db.WithContext(ctx).Model(&ReconItem{}).Distinct("withdrawal_id").
		Where("withdrawal_id IN ? AND line_kind = ? AND outcome IN ?", withdrawalIDs, ReconLineWithdraw,
			[]string{ReconMatched, ReconAmountMismatch}).Pluck("withdrawal_id", &booked).Error; err != nil {
		return nil, fmt.Errorf("booked withdrawals: %w", err)
	}
	return booked, nil
}

// RecordReconFinding stores a finding (an item other than MATCHED) unless
// the same item is stored already, and only when it is new makes requery —
// the withdrawal the finding is about, or nil — due now (Requery). Both in
// tx: a crash never leaves a finding without its query, and a finding
// recorded before never queries again. requeriedBy is who takes the query
// ("" when none was made: not new, no withdrawal, not requeryable, or the
// row moved on).
func RecordReconFinding(ctx context.Context, tx *Tx, item ReconItem, requery *Withdrawal, now time.Time) (isNew bool, requeriedBy string, err error) {
	n, err := InsertReconItems(ctx, tx, []ReconItem{item})
	if err != nil || n == 0 {
		return false, "", err
	}
	if requery == nil {
		return true, "", nil
	}
	by, ok, err := Requery(ctx, tx, requery, now)
	if err != nil {
		return true, "", fmt.Errorf("requery %s: %w", requery.ID, err)
	}
	if !ok {
		by = ""
	}
	return true, by, nil
}

// ResolveLateMissing turns the MISSING items of days before date about
// withdrawalIDs into MATCHED, noting the bill of date booked them (sent
// just before midnight, booked just after), and returns them as they were.
// Each is updated on its own by primary key. On an error, the items
// resolved before it are returned with it.
func ResolveLateMissing(ctx context.Context, ex Executor, date string, withdrawalIDs []string) ([]ReconItem, error) {
	if len(withdrawalIDs) == 0 {
		return nil, nil
	}
	db := ex.handle()
	var late []ReconItem
	if err := db.WithContext(ctx).Where("withdrawal_id IN ? AND outcome = ? AND bill_date < ?", withdrawalIDs, ReconMissing, date).
		Find(&late).Error; err != nil {
		return nil, fmt.Errorf("late bookings: %w", err)
	}
	for i, it := range late {
		if err := db.WithContext(ctx).Model(&ReconItem{}).Where("id = ?", it.ID).
			Updates(map[string]any{"outcome": ReconMatched, "note": "booked on the bill of " + date}).Error; err != nil {
			return late[:i], fmt.Errorf("resolve late booking %d: %w", it.ID, err)
		}
	}
	return late, nil
}
