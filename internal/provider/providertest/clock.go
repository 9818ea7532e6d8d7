package providertest

import (
	"sync"
	"time"
)

// Clock is a settable clock for sandbox.Options.Now and the clients, so
// lifecycle tests need no sleeping. Signatures stay valid as long as the
// clock is within 5 minutes of both sides — both use this clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the current fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
