package withdrawal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Amounts are integers in fen everywhere inside; the providers speak yuan
// decimals (Allinpay's withdrawAmount, WeChat's bills). These two convert
// exactly, with integer arithmetic only: no float ever touches an amount.

// FenToYuan renders fen as a yuan decimal with exactly two places
// ("0.01", "1.10", "999999.99").
func FenToYuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign, u = "-", uint64(-fen) // -MinInt64 wraps to itself: still correct as uint64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// ErrYuan is returned for a malformed yuan amount.
var ErrYuan = errors.New("malformed yuan amount")

// YuanToFen parses a yuan decimal ("100", "1.1", "1.10", "0.01", "-0.05",
// "+3.10") into fen. More than two decimals are refused unless they are
// zeros ("1.100"), so a fraction of a fen is never rounded away silently;
// exponents, separators, spaces and anything but ASCII digits are refused.
func YuanToFen(s string) (int64, error) {
	in := s
	neg := false
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		neg, s = s[0] == '-', s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w: %q", ErrYuan, in)
	}
	if len(frac) > 2 {
		if strings.Trim(frac[2:], "0") != "" {
			return 0, fmt.Errorf("%w: %q has a fraction of a fen", ErrYuan, in)
		}
		frac = frac[:2]
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<63-1)/100-1 {
		return 0, fmt.Errorf("%w: %q out of range", ErrYuan, in)
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
