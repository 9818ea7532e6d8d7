package withdrawal

import (
	"errors"
	"math"
	"testing"
)

func TestYuanFenExact(t *testing.T) {
	for _, c := range []struct {
		fen  int64
		yuan string
	}{{1, "0.01"}, {110, "1.10"}, {99999999, "999999.99"}, {10, "0.10"}, {100, "1.00"}, {0, "0.00"},
		{99_999_999_999_999, "999999999999.99"}, {-5, "-0.05"}} {
		if got := FenToYuan(c.fen); got != c.yuan {
			t.Errorf("FenToYuan(%d) = %s, want %s", c.fen, got, c.yuan)
		}
		if got, err := YuanToFen(c.yuan); err != nil || got != c.fen {
			t.Errorf("YuanToFen(%s) = %d %v, want %d", c.yuan, got, err, c.fen)
		}
	}
	for in, want := range map[string]int64{"1.1": 110, "100": 10000, "0.010": 1, "7": 700, "+3.10": 310, "-0.02": -2,
		"1000000.00": 100000000} {
		if got, err := YuanToFen(in); err != nil || got != want {
			t.Errorf("YuanToFen(%s) = %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".5", "1.", "1.001", "1.005", "1e2", "0x10", "abc", "1.2.3", " 1", "1,000.00", "¥1",
		"NaN", "92233720368547758.07", "99999999999999999999", "+", "-"} {
		if got, err := YuanToFen(bad); !errors.Is(err, ErrYuan) {
			t.Errorf("YuanToFen(%q) = %d, %v: accepted", bad, got, err)
		}
	}
	if FenToYuan(math.MinInt64) != "-92233720368547758.08" {
		t.Error("MinInt64")
	}
}
