package wechatpay

import (
	"log/slog"

	"github.com/paycore/withdraw/internal/provider"
)

// slogLevel picks a level for a non-accepted outcome: operators are paged
// on Alert, definite answers are routine.
func slogLevel(o provider.Outcome) slog.Level {
	switch {
	case o.Alert:
		return slog.LevelError
	case o.Kind == provider.KindNotFound:
		return slog.LevelDebug // routine before the provider's visibility delay
	case o.Kind == provider.KindAmbiguous:
		return slog.LevelWarn
	default:
		return slog.LevelInfo
	}
}
