package router

import (
	"sync"
	"time"
)

type entry struct {
	id         uint64
	prog       *program
	last       time.Duration
	prev, next *entry // LRU list; head is most recent
}

type shard struct {
	mu         sync.Mutex
	m          map[uint64]*entry
	head, tail *entry
	free       *entry // recycled entries, linked by next
	cap        int

	newFlows, evictions, expirations, ended uint64
	_                                       [32]byte
}

type flowCache struct {
	shards []shard
	mask   uint64
	ttl    time.Duration
}

func (c *flowCache) init(cfg Config) {
	c.shards = make([]shard, cfg.Shards)
	c.mask = uint64(cfg.Shards - 1)
	c.ttl = cfg.FlowTTL
	per := (cfg.FlowCapacity + cfg.Shards - 1) / cfg.Shards
	for i := range c.shards {
		s := &c.shards[i]
		s.cap = per
		s.m = make(map[uint64]*entry, per)
		// Preallocate the entries so that starting a flow does not allocate.
		block := make([]entry, per)
		for j := range block {
			block[j].next = s.free
			s.free = &block[j]
		}
	}
}

func (c *flowCache) shard(id uint64) *shard {
	// Fibonacci hashing spreads sequential flow ids over shards.
	return &c.shards[(id*0x9E3779B97F4A7C15)>>32&c.mask]
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

// remove unlinks e and returns its program, whose pin reference the caller
// must release after unlocking.
func (s *shard) remove(e *entry) *program {
	s.unlink(e)
	delete(s.m, e.id)
	p := e.prog
	*e = entry{next: s.free}
	s.free = e
	return p
}

// acquire returns the program pinned by flow id with a query reference
// added, or nil if the flow is unknown or expired.
func (c *flowCache) acquire(r *Router, id uint64, now time.Duration) *program {
	s := c.shard(id)
	s.mu.Lock()
	e := s.m[id]
	if e == nil {
		s.mu.Unlock()
		return nil
	}
	if now-e.last > c.ttl {
		p := s.remove(e)
		s.expirations++
		s.mu.Unlock()
		r.release(p)
		return nil
	}
	e.last = now
	if s.head != e {
		s.unlink(e)
		s.pushFront(e)
	}
	p := e.prog
	p.refs.Add(1)
	s.mu.Unlock()
	return p
}

// pin records that flow id started on p (the caller keeps p alive by its
// slot reference) and returns p, false. If the flow is already pinned (a
// concurrent first query won), it returns that program and true: a query
// reference was added that the caller must release.
func (c *flowCache) pin(r *Router, id uint64, p *program, now time.Duration) (*program, bool) {
	s := c.shard(id)
	var dropped *program
	s.mu.Lock()
	if e := s.m[id]; e != nil {
		if now-e.last <= c.ttl {
			e.last = now
			q := e.prog
			q.refs.Add(1)
			s.mu.Unlock()
			return q, true
		}
		dropped = s.remove(e)
		s.expirations++
	} else if len(s.m) >= s.cap && s.tail != nil {
		if now-s.tail.last > c.ttl {
			s.expirations++
		} else {
			s.evictions++
		}
		dropped = s.remove(s.tail)
	}
	e := s.free
	s.free = e.next
	*e = entry{id: id, prog: p, last: now}
	p.refs.Add(1) // the flow's pin
	s.m[id] = e
	s.pushFront(e)
	s.newFlows++
	s.mu.Unlock()
	if dropped != nil {
		r.release(dropped)
	}
	return p, false
}

func (c *flowCache) end(r *Router, id uint64) bool {
	s := c.shard(id)
	s.mu.Lock()
	e := s.m[id]
	if e == nil {
		s.mu.Unlock()
		return false
	}
	p := s.remove(e)
	s.ended++
	s.mu.Unlock()
	r.release(p)
	return true
}

func (c *flowCache) sweep(r *Router, now time.Duration) int {
	n := 0
	var drop []*program
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		// The list is in recency order: expired flows are at the tail.
		for s.tail != nil && now-s.tail.last > c.ttl {
			drop = append(drop, s.remove(s.tail))
			s.expirations++
			n++
		}
		s.mu.Unlock()
		for _, p := range drop {
			r.release(p)
		}
		drop = drop[:0]
	}
	return n
}

func (c *flowCache) stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Flows += len(s.m)
		st.NewFlows += s.newFlows
		st.Evictions += s.evictions
		st.Expirations += s.expirations
		st.Ended += s.ended
		s.mu.Unlock()
	}
	return st
}
