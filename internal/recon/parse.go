package recon

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/withdrawal"
)

// LineKind is what a bill line is to us.
type LineKind string

// The kinds of line.
const (
	LineWithdraw LineKind = store.ReconLineWithdraw // money out for a withdrawal
	LineRefund   LineKind = store.ReconLineRefund   // a withdrawal's money back
	LineOther    LineKind = ""                      // any other movement: counted, skipped
)

// Line is one detail line of a fund-flow bill, back-quotes removed.
type Line struct {
	// N is the line's position among the detail lines (1-based).
	N        int
	Kind     LineKind
	Type     string
	Number   string // our out_request_no (NumberColumn)
	Ref      string // WeChat's id (RefColumn)
	Flow     string // the movement's own id (FlowColumn)
	BookedAt string
	// Fen is the amount, exact, never through a float.
	Fen int64
}

// Summary is the bill's summary part, and what the detail part held.
type Summary struct {
	// Lines counts the detail lines read; Declared is the summary's total.
	Lines, Declared int64
	// Income and Expense are the summary's sums (fen), of every movement.
	Income, Expense int64
}

// ParseBill streams a plain fund-flow bill through fn, line by line: the
// detail header (whose column names the layout looks up), the detail lines,
// then the summary header and its row. encoding/csv reads it; nothing but
// the current line is held. It checks that the summary's count agrees with
// the detail lines, so that a truncated file is refused even where its
// hash would not say so.
func ParseBill(r io.Reader, layout *provider.Recon, fn func(Line) error) (Summary, error) {
	var sum Summary
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		return sum, fmt.Errorf("bill: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(unquote(h), "\ufeff"))
		col[h] = i
	}
	idx := func(name string, required bool) (int, error) {
		i, ok := col[name]
		if !ok {
			if required {
				return -1, fmt.Errorf("bill: header has no column %q", name)
			}
			return -1, nil
		}
		return i, nil
	}
	var iType, iAmt, iNo, iRef, iFlow, iTime int
	var errs []error
	for _, c := range []struct {
		p        *int
		name     string
		required bool
	}{{&iType, layout.TypeColumn, true}, {&iAmt, layout.AmountColumn, true}, {&iNo, layout.NumberColumn, false},
		{&iRef, layout.RefColumn, false}, {&iFlow, layout.FlowColumn, false}, {&iTime, layout.TimeColumn, false}} {
		i, err := idx(c.name, c.required)
		*c.p = i
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return sum, err
	}
	if iNo < 0 && iRef < 0 {
		return sum, fmt.Errorf("bill: header has neither %q nor %q: lines cannot be matched", layout.NumberColumn, layout.RefColumn)
	}
	kinds := map[string]LineKind{}
	for _, t := range layout.WithdrawTypes {
		kinds[t] = LineWithdraw
	}
	for _, t := range layout.RefundTypes {
		kinds[t] = LineRefund
	}
	field := func(rec []string, i int) string {
		if i < 0 || i >= len(rec) {
			return ""
		}
		return unquote(rec[i])
	}
	inSummary := false
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("bill: line %d: %w", sum.Lines+2, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if inSummary {
			if err := readSummary(rec, &sum); err != nil {
				return sum, err
			}
			break
		}
		if field(rec, 0) == layout.SummaryFirstColumn {
			inSummary = true
			continue
		}
		sum.Lines++
		fen, err := withdrawal.YuanToFen(field(rec, iAmt))
		if err != nil {
			return sum, fmt.Errorf("bill: detail line %d: %s: %w", sum.Lines, layout.AmountColumn, err)
		}
		if fen < 0 {
			fen = -fen // some bills sign expenses; the direction is the type's
		}
		l := Line{N: int(sum.Lines), Type: field(rec, iType), Number: field(rec, iNo), Ref: field(rec, iRef),
			Flow: field(rec, iFlow), BookedAt: field(rec, iTime), Fen: fen}
		l.Kind = kinds[l.Type]
		if err := fn(l); err != nil {
			return sum, err
		}
	}
	if !inSummary {
		return sum, fmt.Errorf("bill: no summary part (%q) after %d detail lines: file truncated?", layout.SummaryFirstColumn, sum.Lines)
	}
	if sum.Declared != sum.Lines {
		return sum, fmt.Errorf("bill: summary declares %d lines, the detail part has %d", sum.Declared, sum.Lines)
	}
	return sum, nil
}

// readSummary reads the summary row: total count, income count, income sum,
// expense count, expense sum.
func readSummary(rec []string, sum *Summary) error {
	if len(rec) < 5 {
		return fmt.Errorf("bill: summary row has %d fields, want 5", len(rec))
	}
	n, err := parseCount(unquote(rec[0]))
	if err != nil {
		return fmt.Errorf("bill: summary total: %w", err)
	}
	sum.Declared = n
	if sum.Income, err = withdrawal.YuanToFen(unquote(rec[2])); err != nil {
		return fmt.Errorf("bill: summary income: %w", err)
	}
	if sum.Expense, err = withdrawal.YuanToFen(unquote(rec[4])); err != nil {
		return fmt.Errorf("bill: summary expense: %w", err)
	}
	return nil
}

// parseCount reads a count written "20" or "20.0".
func parseCount(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, ".0"), ".00")
	return strconv.ParseInt(s, 10, 64)
}

// unquote removes the back-quote WeChat puts before every value (so that
// spreadsheets keep long numbers as text) and surrounding spaces.
func unquote(s string) string {
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "`"))
}
