package config_test

import (
	"slices"
	"testing"

	"github.com/paycore/withdraw/internal/config"
)

func TestWithoutSettings(t *testing.T) {
	got := config.WithoutSettings([]string{"PATH=/bin", "WITHDRAW_MYSQL_DSN=secret", "HOME=/root", "WITHDRAW_=x", "MY_WITHDRAW_X=1"})
	if want := []string{"PATH=/bin", "HOME=/root", "MY_WITHDRAW_X=1"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
