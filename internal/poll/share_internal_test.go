package poll

import (
	"context"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/paycore/withdraw/internal/provider"
	"github.com/paycore/withdraw/internal/store"
	"github.com/paycore/withdraw/internal/storetest"
)

// TestPollersShareTheQueryRate: however many pollers run, their query
// rates per account add up to the configured one; an instance that stopped
// sweeping no longer counts.
func TestPollersShareTheQueryRate(t *testing.T) {
	t.Parallel()
	db, _ := storetest.MySQL(t, store.PoolOptions{})
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	var ps []*Poller
	for _, name := range []string{"p1", "p2", "p3"} {
		p, err := New(db, provider.NewRegistry(), Options{Instance: name, QueryRate: 30, QueryBurst: 9, SweepSpec: "@every 10s", Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	ctx := context.Background()
	for _, p := range ps {
		if _, err := p.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ps[0].share(ctx) // p1 now sees all three
	if l, b := rateOf(ps[0]); l != 10 || b != 3 {
		t.Errorf("with 3 pollers: %v/s burst %d each, want 10/s burst 3", l, b)
	}
	// p3 stops; past three sweep intervals it no longer counts.
	now = now.Add(31 * time.Second)
	ps[1].share(ctx)
	ps[0].share(ctx)
	if l, _ := rateOf(ps[0]); l != 15 {
		t.Errorf("with 2 pollers alive: %v/s each, want 15/s", l)
	}
	if got := ps[0].limiter("wechatpay_platform/default").Limit(); got != 15 {
		t.Errorf("an account's limiter runs at %v/s, want 15/s", got)
	}
}

func rateOf(p *Poller) (rate.Limit, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate()
}
