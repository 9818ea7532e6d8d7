package poll

import (
	"testing"
	"time"
)

// TestLeaseIsProportionalToTheWork: a small claim is not held for the
// whole maximum lease when its sweep dies.
func TestLeaseIsProportionalToTheWork(t *testing.T) {
	p := &Poller{opts: Options{QueryRate: 20, Lease: 5 * time.Minute}}
	for n, want := range map[int]time.Duration{1: MinLease + 100*time.Millisecond, 43: MinLease + 4300*time.Millisecond,
		200: MinLease + 20*time.Second, 100000: 5 * time.Minute} {
		if got := p.leaseFor(n); got != want {
			t.Errorf("lease for %d rows: %v, want %v", n, got, want)
		}
	}
}
