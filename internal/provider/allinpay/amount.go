// Package allinpay is a client of the Allinpay shopoint gateway for the
// multi-detail withdraw (allinpay.shopoint.fundService.withdraw) and its
// status query: the form-encoded envelope, RSA2 signing of the sorted
// k=v&… string, verification of answers, and exact fen ↔ yuan conversion.
package allinpay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FenToYuan renders fen as a yuan decimal with exactly two places
// ("0.01", "1.10", "999999.99"). Integer arithmetic only: no float ever
// touches an amount.
func FenToYuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign, u = "-", uint64(-fen) // -MinInt64 wraps to itself: still correct as uint64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// ErrAmount is returned for a malformed yuan amount.
var ErrAmount = errors.New("allinpay: malformed yuan amount")

// YuanToFen parses a yuan decimal ("100", "1.1", "1.10", "0.01") into fen.
// More than two decimals are refused unless they are zeros ("1.100"), so a
// fraction of a fen is never rounded away silently.
func YuanToFen(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w: %q", ErrAmount, s)
	}
	if len(frac) > 2 {
		if strings.Trim(frac[2:], "0") != "" {
			return 0, fmt.Errorf("%w: %q has a fraction of a fen", ErrAmount, s)
		}
		frac = frac[:2]
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<63-1)/100-1 {
		return 0, fmt.Errorf("%w: %q out of range", ErrAmount, s)
	}
	f, _ := strconv.ParseInt(frac, 10, 64) // two digits, cannot fail
	fen := w*100 + f
	if neg {
		fen = -fen
	}
	return fen, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
