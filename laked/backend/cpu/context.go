package cpu

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/lakeos/lake/laked/backend"
)

// Handle kinds, encoded into bits 36..39 of a handle so that a handle of
// one kind is never mistaken for another.
const (
	kindModule   = 1
	kindFunction = 2
	kindStream   = 3
	kindShift    = 36
	seqMask      = 1<<kindShift - 1
)

// Context is one client's CPU device context; it satisfies
// backend.Context and is safe for concurrent use.
type Context struct {
	b          *Backend
	tag        uint64
	base, end  uint64 // device address window [base, end)
	mem        Memory // accessor handed to kernels
	active     sync.WaitGroup
	maxBytes   uint64
	maxAllocs  int
	maxStreams int
	maxThreads uint64

	mu        sync.RWMutex
	destroyed bool
	allocs    []*allocation // sorted by base, non-overlapping
	bytes     uint64
	cursor    uint64
	seq       uint64
	modules   map[backend.Handle]*module
	funcs     map[backend.Handle]*function
	streams   map[backend.Handle]*stream

	abort     chan struct{} // closed by Abort
	abortOnce sync.Once
	queued    atomic.Uint64 // bytes of stream work queued (limits.QueuedBytes)
}

var (
	_ backend.Context = (*Context)(nil)
	_ backend.Aborter = (*Context)(nil)
)

func newContext(b *Backend, tag uint64) *Context {
	base := addrBase + tag<<ctxShift
	c := &Context{
		b:          b,
		tag:        tag,
		base:       base,
		end:        base + 1<<ctxShift,
		cursor:     base,
		maxBytes:   b.limits.MaxBytes,
		maxAllocs:  b.limits.MaxAllocations,
		maxStreams: b.limits.MaxStreams,
		maxThreads: b.limits.MaxThreads,
		modules:    make(map[backend.Handle]*module),
		funcs:      make(map[backend.Handle]*function),
		streams:    make(map[backend.Handle]*stream),
		abort:      make(chan struct{}),
	}
	c.mem = Memory{c: c}
	return c
}

// enter admits one operation, failing once the context is destroyed.
// Every successful enter must be paired with leave; Destroy waits for all
// admitted operations.
func (c *Context) enter(op string) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.destroyed {
		return fmt.Errorf("cpu: %s: %w", op, backend.ErrContextDestroyed)
	}
	c.active.Add(1)
	return nil
}

func (c *Context) leave() { c.active.Done() }

// newHandle returns a fresh handle of kind; c.mu must be held for writing.
func (c *Context) newHandle(kind uint64) (backend.Handle, error) {
	if c.seq >= seqMask {
		return 0, fmt.Errorf("cpu: handle space exhausted: %w", backend.ErrOutOfMemory)
	}
	c.seq++
	return backend.Handle(c.tag<<ctxShift | kind<<kindShift | c.seq), nil
}

// Stats reports what the context holds. A destroyed context holds nothing.
func (c *Context) Stats() backend.ContextStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return backend.ContextStats{
		Allocations:    len(c.allocs),
		BytesAllocated: c.bytes,
		Modules:        len(c.modules),
		Streams:        len(c.streams),
	}
}

// Abort stops the context's kernels: a running one at its next
// KernelContext.Err check, queued and later ones before they start (they
// fail with backend.ErrLaunchFailed). laked calls it when the context's
// client is gone, so that its work stops at once instead of running to
// completion for nobody.
func (c *Context) Abort() { c.abortOnce.Do(func() { close(c.abort) }) }

// Destroy refuses new operations, waits for every admitted operation and
// all queued stream work to finish, frees everything, and makes every
// later call fail with backend.ErrContextDestroyed. Errors still pending
// on streams are discarded.
func (c *Context) Destroy() error {
	c.mu.Lock()
	if c.destroyed {
		c.mu.Unlock()
		return fmt.Errorf("cpu: destroy: %w", backend.ErrContextDestroyed)
	}
	c.destroyed = true
	c.mu.Unlock()

	// No new operation can be admitted now; wait for those in flight
	// (they may be enqueueing or waiting on streams), then drain streams.
	c.active.Wait()
	streams := c.streamList()
	for _, s := range streams {
		s.close()
	}
	for _, s := range streams {
		s.drained()
	}

	c.mu.Lock()
	c.allocs = nil
	c.b.giveBytes(c.bytes)
	c.bytes = 0
	c.modules = map[backend.Handle]*module{}
	c.funcs = map[backend.Handle]*function{}
	c.streams = map[backend.Handle]*stream{}
	c.mu.Unlock()
	c.b.contextDone()
	return nil
}

// sortedStreams returns the live streams ordered by handle.
func (c *Context) sortedStreams() []*stream {
	c.mu.RLock()
	out := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		out = append(out, s)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].h < out[j].h })
	return out
}
