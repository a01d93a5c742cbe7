package cpu

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/lakeos/lake/laked/backend"
)

type opKind uint8

const (
	opHtoD opKind = iota + 1
	opDtoH
	opLaunch
)

// op is one unit of stream work.
type op struct {
	kind   opKind
	dev    backend.DevPtr
	host   []byte
	fn     *function
	grid   backend.Dim3
	block  backend.Dim3
	shared uint32
	params []uint64
	cost   uint64 // bytes charged to the queued-work budgets (queued ops only)
}

// exec runs o in the calling goroutine and accounts its busy time.
func (c *Context) exec(o *op) error {
	start := time.Now()
	defer c.b.addBusy(start)
	switch o.kind {
	case opHtoD:
		dst, err := c.resolve(o.dev, uint64(len(o.host)))
		if err != nil {
			return fmt.Errorf("cpu: memcpy HtoD: %w", err)
		}
		copy(dst, o.host)
	case opDtoH:
		src, err := c.resolve(o.dev, uint64(len(o.host)))
		if err != nil {
			return fmt.Errorf("cpu: memcpy DtoH: %w", err)
		}
		copy(o.host, src)
	case opLaunch:
		return c.runKernel(o)
	}
	return nil
}

// stream is an ordered work queue. A worker goroutine exists only while
// the queue is non-empty; it runs ops in order, keeps the first error
// (sticky) and skips later ops until the error is collected.
type stream struct {
	h backend.Handle
	c *Context

	mu      sync.Mutex
	cond    sync.Cond // broadcast when done advances or the stream closes
	q       []*op
	head    int    // q[head:] is pending
	enq     uint64 // ops enqueued so far
	done    uint64 // ops finished (run or skipped) so far
	running bool   // a worker goroutine is draining q
	closed  bool
	err     error
}

func newStream(c *Context, h backend.Handle) *stream {
	s := &stream{h: h, c: c}
	s.cond.L = &s.mu
	return s
}

// enqueue appends o, waiting while the queue is full. It fails once the
// stream is closed.
func (s *stream) enqueue(o *op) error {
	// Queued work holds host memory: charge it to the context's and the
	// backend's budgets, given back when the op has run (or been skipped).
	o.cost = opBytes + 8*uint64(len(o.params))
	c := s.c
	if !takeCapped(&c.queued, o.cost, c.b.limits.QueuedBytes) {
		return fmt.Errorf("%d bytes of stream work queued on the context, the limit is %d: %w", c.queued.Load(), c.b.limits.QueuedBytes, backend.ErrOutOfMemory)
	}
	if !takeCapped(&c.b.queued, o.cost, c.b.limits.TotalQueuedBytes) {
		c.queued.Add(-o.cost)
		return fmt.Errorf("the backend's %d bytes of queued stream work are taken: %w", c.b.limits.TotalQueuedBytes, backend.ErrOutOfMemory)
	}
	if err := s.enqueueCharged(o); err != nil {
		s.c.unqueue(o)
		return err
	}
	return nil
}

// unqueue gives back what enqueue charged for o.
func (c *Context) unqueue(o *op) {
	c.queued.Add(-o.cost)
	c.b.queued.Add(-o.cost)
}

func (s *stream) enqueueCharged(o *op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && s.enq-s.done >= MaxQueueDepth {
		s.cond.Wait()
	}
	if s.closed {
		return fmt.Errorf("stream %#x destroyed: %w", uint64(s.h), backend.ErrInvalidHandle)
	}
	if s.head > 0 && s.head >= len(s.q)/2 {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q = s.q[:n]
		s.head = 0
	}
	s.q = append(s.q, o)
	s.enq++
	if !s.running {
		s.running = true
		go s.drain()
	}
	return nil
}

// drain is the worker: it runs queued ops until the queue is empty.
func (s *stream) drain() {
	s.mu.Lock()
	for s.head < len(s.q) {
		o := s.q[s.head]
		s.q[s.head] = nil
		s.head++
		skip := s.err != nil
		s.mu.Unlock()
		var err error
		if !skip {
			err = s.c.exec(o)
		}
		s.c.unqueue(o)
		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = fmt.Errorf("stream %#x: %w", uint64(s.h), err)
		}
		s.done++
		s.cond.Broadcast()
	}
	s.q = s.q[:0]
	s.head = 0
	s.running = false
	s.mu.Unlock()
}

// drained waits until every op enqueued before the call has finished.
func (s *stream) drained() {
	s.mu.Lock()
	for target := s.enq; s.done < target; {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

// sync waits like drained and then collects (and clears) the sticky error.
func (s *stream) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for target := s.enq; s.done < target; {
		s.cond.Wait()
	}
	err := s.err
	s.err = nil
	return err
}

// close makes later enqueues fail and wakes enqueuers waiting for room.
func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// lookupStream returns the stream for a non-zero handle.
func (c *Context) lookupStream(h backend.Handle) (*stream, error) {
	c.mu.RLock()
	s, ok := c.streams[h]
	c.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown stream %#x: %w", uint64(h), backend.ErrInvalidHandle)
	}
	return s, nil
}

// waitStreams waits for all work queued on every stream before the call
// (the implicit wait of the legacy default stream). Errors stay on their
// streams.
func (c *Context) waitStreams() {
	for _, s := range c.streamList() {
		s.drained()
	}
}

// streamList returns the context's streams as they are now.
func (c *Context) streamList() []*stream {
	c.mu.RLock()
	defer c.mu.RUnlock()
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	return streams
}

// submit runs o on the default stream (waiting for all other streams,
// then running inline and returning its error) or queues it on stream h.
func (c *Context) submit(h backend.Handle, o *op) error {
	if h == 0 {
		c.waitStreams()
		return c.exec(o)
	}
	s, err := c.lookupStream(h)
	if err != nil {
		return err
	}
	return s.enqueue(o)
}

// memcpy validates a copy now and submits it on stream h.
func (c *Context) memcpy(what string, kind opKind, dev backend.DevPtr, host []byte, h backend.Handle) error {
	if err := c.enter(what); err != nil {
		return err
	}
	defer c.leave()
	if len(host) == 0 {
		if h != 0 {
			if _, err := c.lookupStream(h); err != nil {
				return fmt.Errorf("cpu: %s: %w", what, err)
			}
		}
		return nil
	}
	if _, err := c.resolve(dev, uint64(len(host))); err != nil {
		return fmt.Errorf("cpu: %s: %w", what, err)
	}
	if err := c.submit(h, &op{kind: kind, dev: dev, host: host}); err != nil {
		if h == 0 {
			return err // exec errors already carry context
		}
		return fmt.Errorf("cpu: %s: %w", what, err)
	}
	return nil
}

// MemcpyHtoD copies src to device address dst on the default stream: it
// waits for all queued stream work, then copies.
func (c *Context) MemcpyHtoD(dst backend.DevPtr, src []byte) error {
	return c.memcpy("memcpy HtoD", opHtoD, dst, src, 0)
}

// MemcpyDtoH copies len(dst) bytes from device address src on the
// default stream.
func (c *Context) MemcpyDtoH(dst []byte, src backend.DevPtr) error {
	return c.memcpy("memcpy DtoH", opDtoH, src, dst, 0)
}

// MemcpyHtoDAsync queues a copy of src to dst on stream s; src must stay
// valid until s is synchronized. Bad pointers and bounds are reported
// now; a pointer freed before the copy runs is reported at the next
// synchronization. On stream 0 the copy is synchronous.
func (c *Context) MemcpyHtoDAsync(dst backend.DevPtr, src []byte, s backend.Handle) error {
	return c.memcpy("memcpy HtoD async", opHtoD, dst, src, s)
}

// MemcpyDtoHAsync queues a copy from src into dst on stream s; dst is
// written when the copy runs, before s is synchronized.
func (c *Context) MemcpyDtoHAsync(dst []byte, src backend.DevPtr, s backend.Handle) error {
	return c.memcpy("memcpy DtoH async", opDtoH, src, dst, s)
}

// LaunchKernel runs kernel f on stream s. Every grid and block dimension
// must be >= 1, the thread count within the limit, sharedMem at most
// MaxSharedMem and params a whole number of 8-byte words, at most
// MaxParamBytes. params is copied before LaunchKernel returns.
func (c *Context) LaunchKernel(f backend.Handle, grid, block backend.Dim3, sharedMem uint32, s backend.Handle, params []byte) error {
	if err := c.enter("launch"); err != nil {
		return err
	}
	defer c.leave()
	c.mu.RLock()
	fn, ok := c.funcs[f]
	c.mu.RUnlock()
	if !ok {
		return fmt.Errorf("cpu: launch: unknown function %#x: %w", uint64(f), backend.ErrInvalidHandle)
	}
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 || block.X == 0 || block.Y == 0 || block.Z == 0 {
		return fmt.Errorf("cpu: launch %s.%s: grid %v block %v has a zero dimension: %w", fn.module, fn.name, grid, block, backend.ErrInvalidValue)
	}
	g, b := grid.Count(), block.Count()
	if b > c.maxThreads || g > c.maxThreads/b {
		return fmt.Errorf("cpu: launch %s.%s: grid %v block %v exceeds %d threads: %w", fn.module, fn.name, grid, block, c.maxThreads, backend.ErrInvalidValue)
	}
	if sharedMem > MaxSharedMem {
		return fmt.Errorf("cpu: launch %s.%s: %d bytes of shared memory exceeds %d: %w", fn.module, fn.name, sharedMem, MaxSharedMem, backend.ErrInvalidValue)
	}
	if len(params)%8 != 0 || len(params) > MaxParamBytes {
		return fmt.Errorf("cpu: launch %s.%s: parameter buffer of %d bytes is not a multiple of 8 up to %d: %w", fn.module, fn.name, len(params), MaxParamBytes, backend.ErrInvalidValue)
	}
	words := make([]uint64, len(params)/8)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(params[8*i:])
	}
	o := &op{kind: opLaunch, fn: fn, grid: grid, block: block, shared: sharedMem, params: words}
	if err := c.submit(s, o); err != nil {
		if s == 0 {
			return err
		}
		return fmt.Errorf("cpu: launch %s.%s: %w", fn.module, fn.name, err)
	}
	return nil
}

// StreamCreate creates a stream; more than the context's stream limit is
// backend.ErrOutOfMemory.
func (c *Context) StreamCreate() (backend.Handle, error) {
	if err := c.enter("stream create"); err != nil {
		return 0, err
	}
	defer c.leave()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) >= c.maxStreams {
		return 0, fmt.Errorf("cpu: stream create: %d streams is the context limit: %w", c.maxStreams, backend.ErrOutOfMemory)
	}
	h, err := c.newHandle(kindStream)
	if err != nil {
		return 0, fmt.Errorf("cpu: stream create: %w", err)
	}
	c.streams[h] = newStream(c, h)
	return h, nil
}

// StreamDestroy waits for the work queued on s and destroys it. An error
// still pending on the stream is discarded, as cuStreamDestroy does;
// synchronize first to see it. The default stream cannot be destroyed.
func (c *Context) StreamDestroy(h backend.Handle) error {
	if err := c.enter("stream destroy"); err != nil {
		return err
	}
	defer c.leave()
	c.mu.Lock()
	s, ok := c.streams[h]
	delete(c.streams, h)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("cpu: stream destroy: unknown stream %#x: %w", uint64(h), backend.ErrInvalidHandle)
	}
	s.close()
	s.drained()
	return nil
}

// StreamSynchronize waits for the work queued on stream h and returns
// (and clears) the first error it raised since the last synchronization.
// Stream 0, the legacy default stream, synchronizes the whole context
// like Synchronize.
func (c *Context) StreamSynchronize(h backend.Handle) error {
	if h == 0 {
		return c.Synchronize()
	}
	if err := c.enter("stream synchronize"); err != nil {
		return err
	}
	defer c.leave()
	s, err := c.lookupStream(h)
	if err != nil {
		return fmt.Errorf("cpu: stream synchronize: %w", err)
	}
	if err := s.sync(); err != nil {
		return fmt.Errorf("cpu: stream synchronize: %w", err)
	}
	return nil
}

// Synchronize waits for the work queued on every stream and returns the
// pending error of the lowest-numbered failing stream; the pending errors
// of all streams are cleared.
func (c *Context) Synchronize() error {
	if err := c.enter("synchronize"); err != nil {
		return err
	}
	defer c.leave()
	var first error
	for _, s := range c.sortedStreams() {
		if err := s.sync(); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("cpu: synchronize: %w", first)
	}
	return nil
}
