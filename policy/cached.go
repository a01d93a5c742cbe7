package policy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Cached is a LoadSource that samples another at most once per TTL and
// otherwise returns the last sample, so that a slow source (NVML: several
// driver calls) can feed the per-batch decision. Only one caller
// refreshes at a time; the others get the last sample meanwhile instead
// of waiting. A failed sample is returned (with its error) and retried
// after the TTL.
type Cached struct {
	src LoadSource
	ttl time.Duration
	now func() time.Time

	refresh sync.Mutex
	last    atomic.Pointer[cachedSample]
}

type cachedSample struct {
	at  time.Time
	l   Load
	err error
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
	s := c.last.Load()
	if s != nil && c.now().Sub(s.at) < c.ttl {
		return s.l, s.err
	}
	if s != nil {
		if !c.refresh.TryLock() {
			return s.l, s.err // another caller is refreshing
		}
	} else {
		c.refresh.Lock() // the very first sample: wait for it
	}
	defer c.refresh.Unlock()
	if s2 := c.last.Load(); s2 != s && s2 != nil {
		return s2.l, s2.err // refreshed while we waited
	}
	l, err := c.src.Sample()
	c.last.Store(&cachedSample{at: c.now(), l: l, err: err})
	return l, err
}
