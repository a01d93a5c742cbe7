package laked

import (
	"fmt"
	"sync/atomic"
)

// Limits are laked's resource budgets: what one client (session) and all
// clients together may hold at once. A request that would exceed one is
// refused at admission, before laked spends the memory, with
// StatusBusy (try again later: the budget frees as work completes) or,
// at the handshake, a reply naming the limit. Zero fields take
// DefaultLimits; deploy/laked.yaml documents each under "limits".
type Limits struct {
	// RegionBytes caps one client's region (the memfd laked creates for
	// a new client or maps for a re-attaching one).
	RegionBytes uint64
	// TotalRegionBytes caps the regions of all clients together,
	// handshakes in progress included.
	TotalRegionBytes uint64
	// Handshakes caps the handshakes in progress at once (each may hold
	// a region before its client is attached).
	Handshakes int
}

// DefaultLimits are the budgets laked uses for zero Limits fields.
var DefaultLimits = Limits{
	RegionBytes:      256 << 20,
	TotalRegionBytes: 2 << 30,
	Handshakes:       64,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.RegionBytes == 0 {
		l.RegionBytes = d.RegionBytes
	}
	if l.TotalRegionBytes == 0 {
		l.TotalRegionBytes = d.TotalRegionBytes
	}
	if l.Handshakes == 0 {
		l.Handshakes = d.Handshakes
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.RegionBytes > l.TotalRegionBytes:
		return fmt.Errorf("laked: limits: region bytes %d above total region bytes %d", l.RegionBytes, l.TotalRegionBytes)
	case l.Handshakes < 1:
		return fmt.Errorf("laked: limits: handshakes %d: want at least 1", l.Handshakes)
	}
	return nil
}

// budget is a capped counter: take succeeds only while the total stays
// within max, so concurrent admissions can never overshoot it.
type budget struct {
	used atomic.Uint64
	max  uint64
}

func (b *budget) take(n uint64) bool {
	for {
		u := b.used.Load()
		if n > b.max-u {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n uint64) { b.used.Add(-n) }
