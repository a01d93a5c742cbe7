//go:build cuda

package cuda

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"unsafe"

	"github.com/lakeos/lake/laked/backend"
	"github.com/mumax/3/cuda/cu"
)

// MaxImageBytes bounds a module image a trusted context may load.
const MaxImageBytes = 64 << 20

type alloc struct {
	base backend.DevPtr
	size uint64
}

type module struct {
	m       cu.Module
	builtin bool
	funcs   []backend.Handle
}

type function struct {
	f      cu.Function
	mod    backend.Handle
	kernel *Kernel // the built-in contract; nil for a trusted image's kernel
	name   string
}

// Context is one client's CUDA context. One mutex serialises the
// client's driver calls (each binds the context to the calling OS thread
// first); different clients' contexts run in parallel.
type Context struct {
	b       *Backend
	trusted bool

	mu        sync.Mutex
	ctx       cu.Context
	destroyed bool
	rebuilds  int
	allocs    []alloc // sorted by base
	bytes     uint64
	modules   map[backend.Handle]*module
	funcs     map[backend.Handle]*function
	streams   map[backend.Handle]cu.Stream
	next      backend.Handle
}

func (b *Backend) newContext(trusted bool) (*Context, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("cuda: backend closed: %w", backend.ErrContextDestroyed)
	}
	c := &Context{b: b, trusted: trusted}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := c.create(); err != nil {
		return nil, err
	}
	return c, nil
}

// create makes the CUDA context and empties the bookkeeping. Called with
// the OS thread locked.
func (c *Context) create() error {
	err := call("cuCtxCreate", func() { c.ctx = cu.CtxCreate(cu.CTX_SCHED_AUTO, c.b.dev) })
	c.b.release(c.bytes) // a rebuild drops every allocation
	c.allocs, c.bytes = nil, 0
	c.modules = map[backend.Handle]*module{}
	c.funcs = map[backend.Handle]*function{}
	c.streams = map[backend.Handle]cu.Stream{}
	return err
}

// Trusted reports whether the context may load arbitrary images.
func (c *Context) Trusted() bool { return c.trusted }

// Rebuilds counts how often a fault tore this context down.
func (c *Context) Rebuilds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rebuilds
}

// do runs f with the context current on a locked OS thread, under the
// context's lock. A sticky error (a kernel fault: the CUDA context is
// unusable afterwards) tears the CUDA context down and builds a fresh,
// empty one for this client: every handle it held becomes unknown, other
// clients' contexts are untouched, and the error is returned.
func (c *Context) do(op string, f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.destroyed {
		return fmt.Errorf("cuda: %s: %w", op, backend.ErrContextDestroyed)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r := ctxSetCurrent(c.ctx); r != Success {
		return c.fault(Map("cuCtxSetCurrent", r))
	}
	return c.fault(f())
}

// fault rebuilds the context after a sticky driver error (Faulted), and
// only then: a call refused before the driver saw it (an address outside
// the context's allocations, an unknown handle, a limit) returns its
// error with the context and its handles intact. Called under c.mu on a
// locked thread.
func (c *Context) fault(err error) error {
	if !Faulted(err) {
		return err
	}
	_ = call("cuCtxDestroy", func() { cu.CtxDestroy(&c.ctx) })
	c.rebuilds++
	if cerr := c.create(); cerr != nil {
		c.destroyed = true
		return fmt.Errorf("%w (and rebuilding the context failed: %v)", err, cerr)
	}
	return err
}

// find returns the index of the allocation containing p, or -1.
func (c *Context) find(p backend.DevPtr) int {
	i := sort.Search(len(c.allocs), func(i int) bool { return c.allocs[i].base > p }) - 1
	if i >= 0 && uint64(p-c.allocs[i].base) < c.allocs[i].size {
		return i
	}
	return -1
}

// inside reports whether n bytes at p lie in one live allocation.
func (c *Context) inside(p backend.DevPtr, n uint64) error {
	i := c.find(p)
	if i < 0 {
		return fmt.Errorf("cuda: device address %#x is not allocated in this context: %w", uint64(p), backend.ErrInvalidValue)
	}
	a := c.allocs[i]
	if n > a.size-uint64(p-a.base) {
		return fmt.Errorf("cuda: %d bytes at %#x overrun the %d-byte allocation at %#x: %w", n, uint64(p), a.size, uint64(a.base), backend.ErrInvalidValue)
	}
	return nil
}

func (c *Context) handle() backend.Handle {
	c.next++
	return c.next
}

// MemAlloc implements backend.Context. Allocations count against the
// context's MaxBytes and MaxAllocations and the backend's TotalBytes.
func (c *Context) MemAlloc(size uint64) (backend.DevPtr, error) {
	var p backend.DevPtr
	err := c.do("cuMemAlloc", func() error {
		l := &c.b.limits
		if size == 0 || size > l.MaxBytes-c.bytes || c.bytes > l.MaxBytes {
			return fmt.Errorf("cuda: allocating %d bytes with %d of %d held: %w", size, c.bytes, l.MaxBytes, backend.ErrOutOfMemory)
		}
		if len(c.allocs) >= l.MaxAllocations {
			return fmt.Errorf("cuda: %d allocations held: %w", len(c.allocs), backend.ErrOutOfMemory)
		}
		if !c.b.reserve(size) {
			return fmt.Errorf("cuda: allocating %d bytes would exceed the %d bytes of all contexts: %w", size, l.TotalBytes, backend.ErrOutOfMemory)
		}
		var d cu.DevicePtr
		if err := call("cuMemAlloc", func() { d = cu.MemAlloc(int64(size)) }); err != nil {
			c.b.release(size)
			return err
		}
		if err := call("cuMemsetD8", func() { cu.MemsetD8(d, 0, int64(size)) }); err != nil {
			_ = call("cuMemFree", func() { cu.MemFree(d) })
			c.b.release(size)
			return err
		}
		p = backend.DevPtr(d)
		i := sort.Search(len(c.allocs), func(i int) bool { return c.allocs[i].base > p })
		c.allocs = append(c.allocs, alloc{})
		copy(c.allocs[i+1:], c.allocs[i:])
		c.allocs[i] = alloc{base: p, size: size}
		c.bytes += size
		return nil
	})
	return p, err
}

// MemFree implements backend.Context.
func (c *Context) MemFree(p backend.DevPtr) error {
	return c.do("cuMemFree", func() error {
		i := c.find(p)
		if i < 0 || c.allocs[i].base != p {
			return fmt.Errorf("cuda: free of %#x, not an allocation's base: %w", uint64(p), backend.ErrInvalidValue)
		}
		// Work queued on any stream may still use it (cuMemFree does not
		// wait for other streams' work on the memory).
		if err := c.syncAll("cuMemFree"); err != nil {
			return err
		}
		if err := call("cuMemFree", func() { cu.MemFree(cu.DevicePtr(p)) }); err != nil {
			return err
		}
		c.bytes -= c.allocs[i].size
		c.b.release(c.allocs[i].size)
		c.allocs = append(c.allocs[:i], c.allocs[i+1:]...)
		return nil
	})
}

func (c *Context) stream(s backend.Handle) (cu.Stream, error) {
	if s == 0 {
		return 0, nil
	}
	st, ok := c.streams[s]
	if !ok {
		return 0, fmt.Errorf("cuda: unknown stream %d: %w", s, backend.ErrInvalidHandle)
	}
	return st, nil
}

// waitBeforeCopy bounds what the driver would otherwise wait for inside
// a copy between host memory h and the device: a synchronous copy
// (cuMemcpyHtoD/DtoH on the legacy default stream) first waits for all
// of the context's earlier work, and an asynchronous one with pageable
// memory (not in a registered range) for the earlier work of its stream
// (to pageable memory cuMemcpyDtoHAsync returns only once the copy is
// done). Inside the driver that wait has no bound, so a wedged kernel
// would hold the call, the context's lock and a laked thread past the
// launch timeout. Waiting here first (waitDone: bounded, and a fault of
// the context when it runs out) leaves the copy nothing to wait for. An
// asynchronous copy with registered memory is queued at once, as DMA
// behind the stream's work. Called under c.mu with the context current.
func (c *Context) waitBeforeCopy(op string, h []byte, s backend.Handle, st cu.Stream, async bool) error {
	if !async || s == 0 {
		return c.syncAll(op)
	}
	if c.b.pinnedHost(h) {
		return nil
	}
	return c.syncStream(op, st)
}

func (c *Context) copyHtoD(dst backend.DevPtr, src []byte, s backend.Handle, async bool) error {
	return c.do("cuMemcpyHtoD", func() error {
		if len(src) == 0 {
			return nil
		}
		if err := c.inside(dst, uint64(len(src))); err != nil {
			return err
		}
		st, err := c.stream(s)
		if err != nil {
			return err
		}
		if err := c.waitBeforeCopy("cuMemcpyHtoD", src, s, st, async); err != nil {
			return err
		}
		if !async || s == 0 {
			return call("cuMemcpyHtoD", func() { cu.MemcpyHtoD(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(len(src))) })
		}
		return call("cuMemcpyHtoDAsync", func() {
			cu.MemcpyHtoDAsync(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(len(src)), st)
		})
	})
}

func (c *Context) copyDtoH(dst []byte, src backend.DevPtr, s backend.Handle, async bool) error {
	return c.do("cuMemcpyDtoH", func() error {
		if len(dst) == 0 {
			return nil
		}
		if err := c.inside(src, uint64(len(dst))); err != nil {
			return err
		}
		st, err := c.stream(s)
		if err != nil {
			return err
		}
		if err := c.waitBeforeCopy("cuMemcpyDtoH", dst, s, st, async); err != nil {
			return err
		}
		if !async || s == 0 {
			return call("cuMemcpyDtoH", func() { cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(len(dst))) })
		}
		return call("cuMemcpyDtoHAsync", func() {
			cu.MemcpyDtoHAsync(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(len(dst)), st)
		})
	})
}

// MemcpyHtoD implements backend.Context.
func (c *Context) MemcpyHtoD(dst backend.DevPtr, src []byte) error {
	return c.copyHtoD(dst, src, 0, false)
}

// MemcpyDtoH implements backend.Context.
func (c *Context) MemcpyDtoH(dst []byte, src backend.DevPtr) error {
	return c.copyDtoH(dst, src, 0, false)
}

// MemcpyHtoDAsync implements backend.Context.
func (c *Context) MemcpyHtoDAsync(dst backend.DevPtr, src []byte, s backend.Handle) error {
	return c.copyHtoD(dst, src, s, true)
}

// MemcpyDtoHAsync implements backend.Context.
func (c *Context) MemcpyDtoHAsync(dst []byte, src backend.DevPtr, s backend.Handle) error {
	return c.copyDtoH(dst, src, s, true)
}

// ModuleLoad implements backend.Context. The image "lake"
// (BuiltinModule) loads the built-in kernels in every context; any other
// image is a PTX, cubin or fatbin image that only a trusted context may
// load.
func (c *Context) ModuleLoad(image []byte) (backend.Handle, error) {
	builtin := string(image) == BuiltinModule
	if !builtin && !c.trusted {
		return 0, fmt.Errorf("cuda: this client may load only the built-in module %q: %w", BuiltinModule, backend.ErrNotSupported)
	}
	if len(image) == 0 || len(image) > MaxImageBytes {
		return 0, fmt.Errorf("cuda: module image of %d bytes: %w", len(image), backend.ErrInvalidValue)
	}
	if builtin {
		image = BuiltinPTX
	}
	var h backend.Handle
	err := c.do("cuModuleLoadData", func() error {
		m, r := moduleLoad(image)
		if r != Success {
			return Map("cuModuleLoadData", r)
		}
		h = c.handle()
		c.modules[h] = &module{m: m, builtin: builtin}
		return nil
	})
	return h, err
}

// ModuleUnload implements backend.Context.
func (c *Context) ModuleUnload(h backend.Handle) error {
	return c.do("cuModuleUnload", func() error {
		m, ok := c.modules[h]
		if !ok {
			return fmt.Errorf("cuda: unknown module %d: %w", h, backend.ErrInvalidHandle)
		}
		if err := c.syncAll("cuModuleUnload"); err != nil {
			return err
		}
		if r := moduleUnload(m.m); r != Success {
			return Map("cuModuleUnload", r)
		}
		for _, f := range m.funcs {
			delete(c.funcs, f)
		}
		delete(c.modules, h)
		return nil
	})
}

// MaxNameBytes bounds a kernel name.
const MaxNameBytes = 1024

// ModuleGetFunction implements backend.Context.
func (c *Context) ModuleGetFunction(mh backend.Handle, name string) (backend.Handle, error) {
	if name == "" || len(name) > MaxNameBytes {
		return 0, fmt.Errorf("cuda: kernel name of %d bytes: %w", len(name), backend.ErrInvalidValue)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return 0, fmt.Errorf("cuda: kernel name with a NUL byte: %w", backend.ErrInvalidValue)
		}
	}
	var h backend.Handle
	err := c.do("cuModuleGetFunction", func() error {
		m, ok := c.modules[mh]
		if !ok {
			return fmt.Errorf("cuda: unknown module %d: %w", mh, backend.ErrInvalidHandle)
		}
		var k *Kernel
		if m.builtin {
			kk, ok := Builtins[name]
			if !ok {
				return fmt.Errorf("cuda: built-in module has no kernel %q: %w", name, backend.ErrNotFound)
			}
			k = &kk
		}
		f, r := moduleGetFunction(m.m, name)
		if r != Success {
			return Map("cuModuleGetFunction", r)
		}
		h = c.handle()
		c.funcs[h] = &function{f: f, mod: mh, kernel: k, name: name}
		m.funcs = append(m.funcs, h)
		return nil
	})
	return h, err
}

// LaunchKernel implements backend.Context. A built-in kernel's launch is
// checked against its Signature (every pointer inside this context's
// allocations for what the kernel touches); a trusted image's kernel
// gets the words as they are. On the default stream the launch completes
// before LaunchKernel returns, with the kernel's own errors.
func (c *Context) LaunchKernel(fh backend.Handle, grid, block backend.Dim3, sharedMem uint32, s backend.Handle, params []byte) error {
	words, err := Words(params)
	if err != nil {
		return err
	}
	if grid.Count() == 0 || block.Count() == 0 {
		return fmt.Errorf("cuda: empty launch grid %v block %v: %w", grid, block, backend.ErrInvalidValue)
	}
	threads := grid.Count()
	if b := block.Count(); threads > c.b.limits.MaxThreads/b {
		return fmt.Errorf("cuda: launch of %v x %v threads exceeds %d: %w", grid, block, c.b.limits.MaxThreads, backend.ErrInvalidValue)
	}
	return c.do("cuLaunchKernel", func() error {
		f, ok := c.funcs[fh]
		if !ok {
			return fmt.Errorf("cuda: unknown function %d: %w", fh, backend.ErrInvalidHandle)
		}
		if k := f.kernel; k != nil {
			if k.Trusted && !c.trusted {
				return fmt.Errorf("cuda: kernel %s needs a trusted context: %w", f.name, backend.ErrNotSupported)
			}
			if k.Block != (backend.Dim3{}) && block != k.Block {
				return fmt.Errorf("cuda: kernel %s runs with block %v only, got %v: %w", f.name, k.Block, block, backend.ErrInvalidValue)
			}
			if err := k.Sig.Check(words, c.inside); err != nil {
				return err
			}
		}
		st, err := c.stream(s)
		if err != nil {
			return err
		}
		args := make([]unsafe.Pointer, len(words))
		for i := range words {
			args[i] = unsafe.Pointer(&words[i])
		}
		if err := call("cuLaunchKernel", func() {
			cu.LaunchKernel(f.f, int(grid.X), int(grid.Y), int(grid.Z), int(block.X), int(block.Y), int(block.Z), int(sharedMem), st, args)
		}); err != nil {
			return err
		}
		if s == 0 {
			return c.syncAll("cuLaunchKernel")
		}
		return nil
	})
}

// StreamCreate implements backend.Context.
func (c *Context) StreamCreate() (backend.Handle, error) {
	var h backend.Handle
	err := c.do("cuStreamCreate", func() error {
		if len(c.streams) >= c.b.limits.MaxStreams {
			return fmt.Errorf("cuda: %d streams held: %w", len(c.streams), backend.ErrOutOfMemory)
		}
		var st cu.Stream
		if err := call("cuStreamCreate", func() { st = cu.StreamCreate() }); err != nil {
			return err
		}
		h = c.handle()
		c.streams[h] = st
		return nil
	})
	return h, err
}

// StreamDestroy implements backend.Context.
func (c *Context) StreamDestroy(s backend.Handle) error {
	return c.do("cuStreamDestroy", func() error {
		st, ok := c.streams[s]
		if !ok || s == 0 {
			return fmt.Errorf("cuda: unknown stream %d: %w", s, backend.ErrInvalidHandle)
		}
		serr := c.syncStream("cuStreamDestroy", st)
		if Faulted(serr) {
			return serr
		}
		delete(c.streams, s)
		if err := call("cuStreamDestroy", func() { cu.StreamDestroy(&st) }); err != nil {
			return err
		}
		return serr
	})
}

// StreamSynchronize implements backend.Context.
func (c *Context) StreamSynchronize(s backend.Handle) error {
	return c.do("cuStreamSynchronize", func() error {
		st, err := c.stream(s)
		if err != nil {
			return err
		}
		if s == 0 {
			return c.syncAll("cuStreamSynchronize")
		}
		return c.syncStream("cuStreamSynchronize", st)
	})
}

// Synchronize implements backend.Context.
func (c *Context) Synchronize() error {
	return c.do("cuCtxSynchronize", func() error { return c.syncAll("cuCtxSynchronize") })
}

// syncAll waits for all of the context's work (the null stream and every
// stream it created), at most the backend's launch timeout (waitDone):
// work still running then is a fault of this context, which do rebuilds.
// Called under c.mu on a locked thread with the context current.
func (c *Context) syncAll(op string) error {
	timeout := c.b.limits.LaunchTimeout
	r := waitDone(func() Result {
		if r := streamQuery(0); r != Success {
			return r
		}
		for _, st := range c.streams {
			if r := streamQuery(st); r != Success {
				return r
			}
		}
		return Success
	}, timeout, realClock)
	return timeoutError(op, r, timeout)
}

// syncStream is syncAll for one stream.
func (c *Context) syncStream(op string, st cu.Stream) error {
	timeout := c.b.limits.LaunchTimeout
	return timeoutError(op, waitDone(func() Result { return streamQuery(st) }, timeout, realClock), timeout)
}

// Destroy implements backend.Context.
func (c *Context) Destroy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.destroyed {
		return fmt.Errorf("cuda: context already destroyed: %w", backend.ErrContextDestroyed)
	}
	c.destroyed = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := call("cuCtxDestroy", func() { cu.CtxDestroy(&c.ctx) })
	c.b.release(c.bytes)
	c.allocs, c.bytes = nil, 0
	clear(c.modules)
	clear(c.funcs)
	clear(c.streams)
	return err
}

// Stats implements backend.Context.
func (c *Context) Stats() backend.ContextStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return backend.ContextStats{Allocations: len(c.allocs), BytesAllocated: c.bytes, Modules: len(c.modules), Streams: len(c.streams)}
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.Context = (*Context)(nil)
var _ backend.TrustedBackend = (*Backend)(nil)
var _ backend.HostRegisterer = (*Backend)(nil)
