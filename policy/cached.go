package policy

import (
	"sync"
	"time"
)

// Cached is a LoadSource that samples another at most once per TTL and
// otherwise returns the last sample, so that a slow source (NVML: several
// driver calls) can feed the per-batch decision. A failed sample is
// returned (with its error) and retried at the next call after the TTL.
type Cached struct {
	src LoadSource
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	at   time.Time
	last Load
	err  error
	ok   bool
}

// NewCached wraps src. now is the clock (time.Now when nil).
func NewCached(src LoadSource, ttl time.Duration, now func() time.Time) *Cached {
	if now == nil {
		now = time.Now
	}
	return &Cached{src: src, ttl: ttl, now: now}
}

// Sample implements LoadSource.
func (c *Cached) Sample() (Load, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.ok && now.Sub(c.at) < c.ttl {
		return c.last, c.err
	}
	c.last, c.err = c.src.Sample()
	c.at, c.ok = now, true
	return c.last, c.err
}
