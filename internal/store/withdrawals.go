package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// ErrNotFound is returned when no row matches.
var ErrNotFound = errors.New("not found")

// KeyHash is the identity and fingerprint of an existing withdrawal: what the
// intake needs to tell a redelivery from a conflict.
type KeyHash struct {
	ID           string
	Channel      string
	Account      string
	OutRequestNo string
	ParamsHash   string
}

// FindKeyHashes returns the withdrawals whose out_request_no is one of nos
// (any channel and account; the caller matches the full key).
//
// It is a plain read, not a locking one: a shared lock would take gap locks
// on keys that do not exist yet, and two intake instances inserting into each
// other's gaps would deadlock. A concurrent insert of the same key instead
// fails the later transaction on the unique index; the caller retries, and
// the retry sees the winner's row.
func FindKeyHashes(ctx context.Context, ex Executor, nos []string) ([]KeyHash, error) {
	if len(nos) == 0 {
		return nil, nil
	}
	// FORCE INDEX: with a thousand keys in the IN list MariaDB estimates the
	// ranges from index statistics, and while the table is young and
	// growing those statistics lag so far behind that it chose a full scan
	// for every batch: 4.9 million rows read to insert 100,000 on a fresh
	// table, a fifth of the database's CPU. The unique index is always
	// the right plan for this lookup.
	q := "SELECT id, channel, account, out_request_no, params_hash FROM withdrawals"
	if ex.engine() == MySQL {
		q += " FORCE INDEX (uq_withdrawals_key)"
	}
	q += " WHERE out_request_no IN (?" + strings.Repeat(",?", len(nos)-1) + ")"
	args := make([]any, len(nos))
	for i, no := range nos {
		args[i] = no
	}
	rows, err := queryRaw(ctx, ex, q, args...) // straight to the connection (raw.go)
	if err != nil {
		return nil, fmt.Errorf("find withdrawals by out_request_no: %w", err)
	}
	defer rows.Close()
	var out []KeyHash
	for rows.Next() {
		var k KeyHash
		if err := rows.Scan(&k.ID, &k.Channel, &k.Account, &k.OutRequestNo, &k.ParamsHash); err != nil {
			return nil, fmt.Errorf("find withdrawals by out_request_no: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find withdrawals by out_request_no: %w", err)
	}
	return out, nil
}

// GetWithdrawal loads one withdrawal by id.
func GetWithdrawal(ctx context.Context, ex Executor, id string) (*Withdrawal, error) {
	db := ex.handle()
	var w Withdrawal
	err := db.WithContext(ctx).Where("id = ?", id).Take(&w).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("withdrawal %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get withdrawal %s: %w", id, err)
	}
	return &w, nil
}

// GetWithdrawalByKey loads one withdrawal by its idempotency key.
func GetWithdrawalByKey(ctx context.Context, ex Executor, channel, account, outRequestNo string) (*Withdrawal, error) {
	db := ex.handle()
	var w Withdrawal
	err := db.WithContext(ctx).
		Where("out_request_no = ? AND channel = ? AND account = ?", outRequestNo, channel, account).
		Take(&w).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("withdrawal %s/%s/%s: %w", channel, account, outRequestNo, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get withdrawal %s/%s/%s: %w", channel, account, outRequestNo, err)
	}
	return &w, nil
}

// EventsOf lists the outbox events of a withdrawal still kept, oldest first.
func EventsOf(ctx context.Context, ex Executor, withdrawalID string) ([]OutboxEvent, error) {
	db := ex.handle()
	var rows []OutboxEvent
	// uq_outbox_subject (withdrawal_id, version, event_id) serves this.
	if err := db.WithContext(ctx).Where("withdrawal_id = ?", withdrawalID).Order("version, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("events of %s: %w", withdrawalID, err)
	}
	return rows, nil
}

// AttemptsOf lists the provider calls made for a withdrawal, oldest first.
func AttemptsOf(ctx context.Context, ex Executor, withdrawalID string) ([]Attempt, error) {
	db := ex.handle()
	var rows []Attempt
	if err := db.WithContext(ctx).Where("withdrawal_id = ?", withdrawalID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", withdrawalID, err)
	}
	return rows, nil
}

// CountByState counts withdrawals per state.
func CountByState(ctx context.Context, ex Executor) (map[string]int64, error) {
	db := ex.handle()
	var rows []struct {
		State string
		N     int64
	}
	if err := db.WithContext(ctx).Model(&Withdrawal{}).Select("state, COUNT(*) AS n").Group("state").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count by state: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}

// Search is a search of withdrawals for the operator console. Each kind of
// search reads one index in its order, so that a page costs about its rows
// however many withdrawals there are (keyset paging, no OFFSET):
//
//   - ID: the primary key.
//   - OutRequestNo: uq_withdrawals_key (out_request_no, channel, account);
//     every channel and account, other fields filter.
//   - State (with or without MerchantKey): ix_withdrawals_due or
//     ix_withdrawals_merchant_due, next due first.
//   - MerchantKey alone: the primary key, newest first, filtered by the
//     merchant and bounded to MerchantSearchWindow unless From is given: no
//     index of its own, which every intake insert would pay for.
//   - nothing: the primary key, newest first.
//
// Ids are UUIDv7 (withdrawal.NewID), so a creation time range is an id
// range: it bounds the scan of the last two kinds and filters the others.
type Search struct {
	ID, OutRequestNo, MerchantKey, State string
	// From (inclusive) and To (exclusive) bound the creation time; zero
	// means unbounded.
	From, To time.Time
	// After is the cursor of the previous page (SearchPage.Next).
	After string
	Limit int
}

// MerchantSearchWindow is how far back a search by merchant alone looks
// when it names no start: the scan is of the primary key, newest first.
const MerchantSearchWindow = 7 * 24 * time.Hour

// SearchPage is one page of a search; Next is empty on the last page.
type SearchPage struct {
	Rows []Withdrawal
	Next string
}

// IDAt is the smallest UUIDv7 of the millisecond t: the bound of an id range
// for a time range.
func IDAt(t time.Time) string {
	ms := uint64(t.UnixMilli())
	h := fmt.Sprintf("%012x", ms&0xffffffffffff)
	return h[:8] + "-" + h[8:12] + "-0000-0000-000000000000"
}

// SearchWithdrawals runs s.
func SearchWithdrawals(ctx context.Context, ex Executor, s Search) (SearchPage, error) {
	db := ex.handle()
	if s.Limit <= 0 {
		s.Limit = 50
	}
	q := db.WithContext(ctx).Model(&Withdrawal{})
	if s.ID != "" {
		q = q.Where("id = ?", s.ID)
	}
	if s.OutRequestNo != "" {
		q = q.Where("out_request_no = ?", s.OutRequestNo)
	}
	if s.State != "" {
		q = q.Where("state = ?", s.State)
	}
	if s.MerchantKey != "" {
		q = q.Where("merchant_key = ?", s.MerchantKey)
		if s.From.IsZero() && s.State == "" && s.ID == "" && s.OutRequestNo == "" {
			s.From = time.Now().Add(-MerchantSearchWindow)
		}
	}
	if !s.From.IsZero() {
		q = q.Where("id >= ?", IDAt(s.From))
	}
	if !s.To.IsZero() {
		q = q.Where("id < ?", IDAt(s.To))
	}
	byDue := s.ID == "" && s.OutRequestNo == "" && s.State != ""
	if s.After != "" {
		if byDue {
			at, id, ok := strings.Cut(s.After, "|")
			t, err := time.Parse(time.RFC3339Nano, at)
			if !ok || err != nil {
				return SearchPage{}, fmt.Errorf("search: bad cursor %q", s.After)
			}
			// Spelled out rather than as a row comparison, which MySQL
			// does not always turn into an index range.
			q = q.Where("next_attempt_at > ? OR (next_attempt_at = ? AND id > ?)", t.UTC(), t.UTC(), id)
		} else {
			q = q.Where("id < ?", s.After)
		}
	}
	switch {
	case s.OutRequestNo != "":
		q = q.Order("channel, account")
	case byDue:
		q = q.Order("next_attempt_at, id")
	default:
		q = q.Order("id DESC")
	}
	var rows []Withdrawal
	if err := q.Limit(s.Limit + 1).Find(&rows).Error; err != nil {
		return SearchPage{}, fmt.Errorf("search withdrawals: %w", err)
	}
	page := SearchPage{Rows: rows}
	if len(rows) > s.Limit && s.OutRequestNo == "" && s.ID == "" {
		page.Rows = rows[:s.Limit]
		last := page.Rows[len(page.Rows)-1]
		if byDue {
			page.Next = last.NextAttemptAt.UTC().Format(time.RFC3339Nano) + "|" + last.ID
		} else {
			page.Next = last.ID
		}
	} else if len(rows) > s.Limit {
		page.Rows = rows[:s.Limit]
	}
	return page, nil
}

// ChannelStateCount is the number of withdrawals of one channel in one state.
type ChannelStateCount struct {
	Channel, State string
	N              int64
}

// CountByChannelState counts the withdrawals in the live states (every
// one: a range of ix_withdrawals_due each) and those in the other states
// created since `since` (an id range of the primary key), by channel and
// state. Counting every final withdrawal would read the whole table.
func CountByChannelState(ctx context.Context, ex Executor, live []string, since time.Time) ([]ChannelStateCount, error) {
	db := ex.handle()
	var a, b []ChannelStateCount
	if err := db.WithContext(ctx).Model(&Withdrawal{}).Select("channel, state, COUNT(*) AS n").
		Where("state IN ?", live).Group("channel, state").Scan(&a).Error; err != nil {
		return nil, fmt.Errorf("count by channel and state: %w", err)
	}
	if err := db.WithContext(ctx).Model(&Withdrawal{}).Select("channel, state, COUNT(*) AS n").
		Where("id >= ? AND state NOT IN ?", IDAt(since), live).Group("channel, state").Scan(&b).Error; err != nil {
		return nil, fmt.Errorf("count by channel and state: %w", err)
	}
	return append(a, b...), nil
}

// OldestUnpublished is the creation time of the oldest outbox row the
// broker has not acknowledged yet (zero when there is none): a range of
// ix_outbox_pending (published_at, lane, id).
func OldestUnpublished(ctx context.Context, ex Executor) (time.Time, error) {
	db := ex.handle()
	var rows []OutboxEvent
	if err := db.WithContext(ctx).Select("created_at").Where("published_at = ?", NotPublished).
		Order("created_at").Limit(1).Find(&rows).Error; err != nil {
		return time.Time{}, fmt.Errorf("oldest unpublished: %w", err)
	}
	if len(rows) == 0 {
		return time.Time{}, nil
	}
	return rows[0].CreatedAt, nil
}

// OutcomeCount is the number of events of one type published for a channel.
type OutcomeCount struct {
	Channel, EventType string
	N                  int64
}

// OutcomesSince counts the events of the given types published since
// `since`, by channel: a range of ix_outbox_pending (published_at, ...) and
// a primary-key lookup of each event's withdrawal.
func OutcomesSince(ctx context.Context, ex Executor, types []string, since time.Time) ([]OutcomeCount, error) {
	db := ex.handle()
	var out []OutcomeCount
	if err := db.WithContext(ctx).Table("outbox AS o").
		Select("w.channel AS channel, o.event_type AS event_type, COUNT(*) AS n").
		Joins("JOIN withdrawals AS w ON w.id = o.withdrawal_id").
		Where("o.published_at >= ? AND o.event_type IN ?", since.UTC(), types).
		Group("w.channel, o.event_type").Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("outcomes since %s: %w", since, err)
	}
	return out, nil
}

// Waiting lists the withdrawals of the given states due after now (and
// before `never`, the mark of rows no sweep takes again), next due first, at
// most limit of them, and how many there are: one range of
// ix_withdrawals_due per state.
func Waiting(ctx context.Context, ex Executor, states []string, now, never time.Time, limit int) ([]Withdrawal, int64, error) {
	db := ex.handle()
	var all []Withdrawal
	var total int64
	for _, st := range states {
		q := func() *gorm.DB {
			return db.WithContext(ctx).Model(&Withdrawal{}).Where("state = ? AND next_attempt_at > ? AND next_attempt_at < ?", st, now.UTC(), never)
		}
		var n int64
		if err := q().Count(&n).Error; err != nil {
			return nil, 0, fmt.Errorf("waiting %s: %w", st, err)
		}
		total += n
		var rows []Withdrawal
		if err := q().Order("next_attempt_at, id").Limit(limit).Find(&rows).Error; err != nil {
			return nil, 0, fmt.Errorf("waiting %s: %w", st, err)
		}
		all = append(all, rows...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].NextAttemptAt.Before(all[j].NextAttemptAt) })
	if len(all) > limit {
		all = all[:limit]
	}
	return all, total, nil
}
