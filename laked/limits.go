package laked

import (
	"fmt"
	"sync"
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
	// UserHandshakes caps the handshakes in progress at once from one
	// uid (SO_PEERCRED), so that one local user holding connections that
	// never say hello cannot take every Handshakes place; UserClients
	// caps one uid's attached clients (and handshakes holding a place),
	// so that one user cannot take every max_clients place.
	UserHandshakes int
	UserClients    int
	// SessionInflight caps one client's accepted predicts not yet
	// completed; TotalInflight caps them over all clients.
	SessionInflight int
	TotalInflight   int
	// SessionQueuedBytes caps the bytes laked holds for one client's
	// accepted predicts not yet completed (its private copy of the
	// inputs and the outputs' size); TotalQueuedBytes caps them over all
	// clients.
	SessionQueuedBytes uint64
	TotalQueuedBytes   uint64
	// SessionDeviceBytes caps the device memory one client holds over
	// all its contexts (the backend caps each context, and all contexts
	// together: backend.Limits).
	SessionDeviceBytes uint64
}

// DefaultLimits are the budgets laked uses for zero Limits fields.
var DefaultLimits = Limits{
	RegionBytes:      256 << 20,
	TotalRegionBytes: 2 << 30,
	Handshakes:       64,
	UserHandshakes:   32,
	UserClients:      64,

	SessionInflight:    1024,
	TotalInflight:      16384,
	SessionQueuedBytes: 64 << 20,
	TotalQueuedBytes:   512 << 20,
	SessionDeviceBytes: 2 << 30,
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
	if l.UserHandshakes == 0 {
		l.UserHandshakes = min(d.UserHandshakes, l.Handshakes)
	}
	if l.UserClients == 0 {
		l.UserClients = d.UserClients
	}
	if l.SessionInflight == 0 {
		l.SessionInflight = d.SessionInflight
	}
	if l.TotalInflight == 0 {
		l.TotalInflight = d.TotalInflight
	}
	if l.SessionQueuedBytes == 0 {
		l.SessionQueuedBytes = d.SessionQueuedBytes
	}
	if l.TotalQueuedBytes == 0 {
		l.TotalQueuedBytes = d.TotalQueuedBytes
	}
	if l.SessionDeviceBytes == 0 {
		l.SessionDeviceBytes = d.SessionDeviceBytes
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.RegionBytes > l.TotalRegionBytes:
		return fmt.Errorf("laked: limits: region bytes %d above total region bytes %d", l.RegionBytes, l.TotalRegionBytes)
	case l.Handshakes < 1:
		return fmt.Errorf("laked: limits: handshakes %d: want at least 1", l.Handshakes)
	case l.UserHandshakes < 1 || l.UserHandshakes > l.Handshakes:
		return fmt.Errorf("laked: limits: user handshakes %d: want 1..handshakes (%d)", l.UserHandshakes, l.Handshakes)
	case l.UserClients < 1:
		return fmt.Errorf("laked: limits: user clients %d: want at least 1", l.UserClients)
	case l.SessionInflight < 1 || l.TotalInflight < l.SessionInflight:
		return fmt.Errorf("laked: limits: in-flight %d per session, %d in total: want 1 <= per session <= total", l.SessionInflight, l.TotalInflight)
	case l.SessionQueuedBytes > l.TotalQueuedBytes:
		return fmt.Errorf("laked: limits: queued bytes %d per session above %d in total", l.SessionQueuedBytes, l.TotalQueuedBytes)
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

// admit takes one predict's place and cost (bytes) from the session's and
// the server's budgets, all or nothing.
func (s *session) admit(cost uint64) bool {
	srv := s.srv
	if !s.inflightBudget.take(1) {
		return false
	}
	if !srv.inflightBudget.take(1) {
		s.inflightBudget.give(1)
		return false
	}
	if !s.queuedBudget.take(cost) {
		srv.inflightBudget.give(1)
		s.inflightBudget.give(1)
		return false
	}
	if !srv.queuedBudget.take(cost) {
		s.queuedBudget.give(cost)
		srv.inflightBudget.give(1)
		s.inflightBudget.give(1)
		return false
	}
	return true
}

// unadmit gives back what admit took.
func (s *session) unadmit(cost uint64) {
	s.srv.queuedBudget.give(cost)
	s.queuedBudget.give(cost)
	s.srv.inflightBudget.give(1)
	s.inflightBudget.give(1)
}

// userCounts counts what each uid holds (handshakes in progress, or
// client places) against a per-uid cap.
type userCounts struct {
	mu sync.Mutex
	n  map[uint32]int
}

// take counts one more for uid unless it already holds max.
func (u *userCounts) take(uid uint32, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[uid] >= max {
		return false
	}
	if u.n == nil {
		u.n = map[uint32]int{}
	}
	u.n[uid]++
	return true
}

func (u *userCounts) give(uid uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[uid]--; u.n[uid] <= 0 {
		delete(u.n, uid)
	}
}

// deviceBytes sums the device memory the session's contexts hold.
func (s *session) deviceBytes() uint64 {
	var n uint64
	for _, c := range s.ctxs {
		n += c.Stats().BytesAllocated
	}
	return n
}

// Usage is what the budgets hold now.
type Usage struct {
	Sessions    int    // attached clients
	RegionBytes uint64 // client regions mapped
	Inflight    uint64 // accepted predicts not yet completed
	QueuedBytes uint64 // bytes held for them
}

// Usage reports what the budgets hold now.
func (s *Server) Usage() Usage {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	return Usage{Sessions: n, RegionBytes: s.regionBytes.used.Load(), Inflight: s.inflightBudget.used.Load(), QueuedBytes: s.queuedBudget.used.Load()}
}

// Limits returns the effective budgets (defaults filled in).
func (s *Server) Limits() Limits { return s.limits }
