package dispatch

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// account is a provider account as the rate limits see it.
type account struct{ channel, name string }

// String is the account's name in configuration (Options.Rates) and in
// metric labels: channel/account.
func (a account) String() string { return a.channel + "/" + a.name }

// accountLimit is an account's rate limiter and its metric series, looked
// up once per account rather than per call.
type accountLimit struct {
	*adaptiveLimiter
	waited prometheus.Observer // rate-limit waits
	rate   prometheus.Gauge    // the current rate
}

// adaptiveLimiter is a token bucket per provider account that halves its
// rate on a 429 (down to a sixteenth of the configured rate) and recovers
// by a twentieth of it per success: the provider's "slow down" is obeyed at
// once, and trust returns gradually.
type adaptiveLimiter struct {
	*rate.Limiter
	mu         sync.Mutex
	configured float64
}

func newAdaptiveLimiter(r Rate) *adaptiveLimiter {
	burst := r.Burst
	if burst <= 0 {
		burst = 1
	}
	return &adaptiveLimiter{Limiter: rate.NewLimiter(rate.Limit(r.PerSecond), burst), configured: r.PerSecond}
}

// throttled lowers the rate after the provider answered 429.
func (l *adaptiveLimiter) throttled() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := float64(l.Limit()) / 2
	if floor := l.configured / 16; next < floor {
		next = floor
	}
	l.SetLimit(rate.Limit(next))
	return next
}

// succeeded lets the rate recover towards the configured one.
func (l *adaptiveLimiter) succeeded() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := float64(l.Limit())
	if cur >= l.configured {
		return cur
	}
	next := cur + l.configured/20
	if next > l.configured {
		next = l.configured
	}
	l.SetLimit(rate.Limit(next))
	return next
}
