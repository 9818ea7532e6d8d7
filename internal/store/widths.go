package store

import "unicode/utf8"

// Widths of the columns that hold text a provider supplied (codes,
// statuses, ids, messages), in characters, as the migrations declare them.
// Whatever a provider sends is cut to these by Fit before it is written: a
// value too long for its column would otherwise fail the whole transaction
// (the answer unrecorded, the row left to its lease, again and again).
const (
	WidthProviderStatus = 32  // withdrawals.provider_status
	WidthProviderRef    = 128 // withdrawals.provider_ref
	WidthReasonCode     = 64  // withdrawals.reason_code
	WidthReason         = 512 // withdrawals.reason
	WidthProviderCode   = 64  // withdrawal_attempts.provider_code
	WidthAttemptError   = 512 // withdrawal_attempts.error
)

// Fit returns s cut to at most n characters (runes), never splitting one.
func Fit(s string, n int) string {
	if len(s) <= n { // n runes are at least n bytes
		return s
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i]
}
