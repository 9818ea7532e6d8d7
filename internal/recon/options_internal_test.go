package recon

import (
	"strings"
	"testing"
	"time"
)

func TestOptions(t *testing.T) {
	t.Run("ZeroTakesTheDefaults", func(t *testing.T) {
		r, err := New(nil, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		o := r.opts
		if o.ReadyHour != ReadyHourDefault || o.LateAfter != LateAfterDefault || o.Lookback != LookbackDefault || o.Attempts != AttemptsDefault {
			t.Errorf("defaults %+v", o)
		}
	})
	for _, tc := range []struct {
		name, option string
		opts         Options
	}{
		{"ReadyHourPastTheDay", "ReadyHour", Options{ReadyHour: 24}},
		{"NegativeLateAfter", "LateAfter", Options{LateAfter: -time.Minute}},
		{"NegativeLookback", "Lookback", Options{Lookback: -1}},
		{"NegativeAttempts", "Attempts", Options{Attempts: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(nil, nil, tc.opts)
			if err == nil || !strings.Contains(err.Error(), "Options."+tc.option) {
				t.Errorf("error %v, want one naming Options.%s", err, tc.option)
			}
		})
	}
}
