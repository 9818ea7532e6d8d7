package store

import (
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestTimesAreCutToTheColumnsPrecision: whatever the operator's DSN says,
// the driver cuts every time to microseconds.
func TestTimesAreCutToTheColumnsPrecision(t *testing.T) {
	for _, dsn := range []string{"u:p@tcp(h:3306)/db", "u:p@tcp(h:3306)/db?timeTruncate=0", "u:p@tcp(h:3306)/db?parseTime=true&timeTruncate=1ns&loc=UTC"} {
		got := withParam(dsn, "timeTruncate", "1us")
		cfg, err := mysql.ParseDSN(got)
		if err != nil {
			t.Fatalf("%s → %s: %v", dsn, got, err)
		}
		// FormatDSN writes the setting back only when it is set.
		if want := "timeTruncate=1µs"; !strings.Contains(cfg.FormatDSN(), want) {
			t.Errorf("%s → %s: %s lacks %s", dsn, got, cfg.FormatDSN(), want)
		}
	}
}
