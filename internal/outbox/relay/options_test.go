package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/paycore/withdraw/internal/outbox/relay"
	"github.com/paycore/withdraw/internal/store"
)

// newRelay is relay.New for tests whose options are valid.
func newRelay(t testing.TB, db *store.DB, w relay.Writer, opts relay.Options) *relay.Relay {
	t.Helper()
	r, err := relay.New(db, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOptionsRefused: impossible values are refused by New with an error
// naming the option; a negative StatsInterval (no gauges) is not one.
func TestOptionsRefused(t *testing.T) {
	if _, err := relay.New(nil, nil, relay.Options{StatsInterval: -1}); err != nil {
		t.Errorf("negative StatsInterval: %v", err)
	}
	for name, bad := range map[string]relay.Options{
		"BatchSize":     {BatchSize: -1},
		"Workers":       {Workers: -1},
		"PollInterval":  {PollInterval: -time.Millisecond},
		"LeaseTTL":      {LeaseTTL: -time.Second},
		"MaxBackoff":    {MaxBackoff: -time.Second},
		"ShutdownGrace": {ShutdownGrace: -time.Second},
		"PurgeBatch":    {PurgeBatch: -1},
		"PurgePause":    {PurgePause: -time.Millisecond},
	} {
		if _, err := relay.New(nil, nil, bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: New = %v, want an error naming it", name, err)
		}
	}
}
