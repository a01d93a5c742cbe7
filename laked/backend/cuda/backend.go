//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/lakeos/lake/laked/backend"
	"github.com/mumax/3/cuda/cu"
)

// Default limits, used for zero fields of backend.Limits (the CPU
// backend's defaults).
const (
	DefaultMaxBytes       uint64 = 1 << 30
	DefaultMaxAllocations        = 65536
	DefaultMaxStreams            = 64
	DefaultMaxThreads     uint64 = 1 << 26
	DefaultTotalBytes     uint64 = 4 << 30 // all contexts together
)

// Backend is one GPU driven through the CUDA driver API.
type Backend struct {
	dev    cu.Device
	name   string
	limits backend.Limits
	bytes  atomic.Uint64 // device memory of all contexts (limits.TotalBytes)

	mu     sync.Mutex
	host   cu.Context // owns host registrations; never runs kernels
	closed bool
	regs   map[unsafe.Pointer]int     // registered host ranges: base -> length
	pinned atomic.Pointer[hostRanges] // regs as ranges, for batches to read without mu
}

// pinnedHost reports whether p lies in one host range registered with
// this backend (page-locked: an async copy from or to it is DMA that the
// driver queues and returns from at once).
func (b *Backend) pinnedHost(p []byte) bool {
	rs := b.pinned.Load()
	return rs != nil && rs.contains(p)
}

// ErrNoDriver is wrapped by New when no usable driver or GPU is present.
var ErrNoDriver = errors.New("cuda: no usable driver or GPU")

// FakeDriverEnv names the environment variable with which a test binary
// (and only a test binary: testing.Testing) runs against the fake CUDA
// driver (fake/fakecuda.c, make cuda-check) on a machine without a GPU:
// set to 1, Available does not look for /dev/nvidiactl and asks the
// libcuda.so.1 the process loaded. laked itself ignores it.
const FakeDriverEnv = "LAKE_CUDA_FAKE_DRIVER"

// fakeDriver reports whether this is a test run against the fake driver.
func fakeDriver() bool { return testing.Testing() && os.Getenv(FakeDriverEnv) == "1" }

// Available reports whether a GPU can be used here, and why not: the
// NVIDIA control device must exist and the driver must initialise.
func Available() error {
	if fakeDriver() {
		// The fake has no device node; the driver checks below still run.
	} else if _, err := os.Stat("/dev/nvidiactl"); err != nil {
		return fmt.Errorf("%w: /dev/nvidiactl: %v", ErrNoDriver, err)
	}
	if err := call("cuInit", func() { cu.Init(0) }); err != nil {
		return fmt.Errorf("%w: %v", ErrNoDriver, err)
	}
	if n := 0; call("cuDeviceGetCount", func() { n = cu.DeviceGetCount() }) != nil || n == 0 {
		return fmt.Errorf("%w: no CUDA device", ErrNoDriver)
	}
	return nil
}

// New opens GPU index with the given per-context limits (zero fields take
// the defaults).
func New(index int, limits backend.Limits) (*Backend, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	limits = limits.WithDefaults(backend.Limits{
		MaxBytes:       DefaultMaxBytes,
		MaxAllocations: DefaultMaxAllocations,
		MaxStreams:     DefaultMaxStreams,
		MaxThreads:     DefaultMaxThreads,
		TotalBytes:     DefaultTotalBytes,
		LaunchTimeout:  DefaultLaunchTimeout,
	})
	b := &Backend{limits: limits, regs: map[unsafe.Pointer]int{}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := call("cuDeviceGet", func() {
		b.dev = cu.DeviceGet(index)
		b.name = cu.DeviceGetName(b.dev)
		b.host = cu.CtxCreate(cu.CTX_SCHED_AUTO, b.dev)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: GPU %d: %v", ErrNoDriver, index, err)
	}
	return b, nil
}

// reserve takes n bytes of the backend-wide budget, refusing what would
// exceed limits.TotalBytes.
func (b *Backend) reserve(n uint64) bool {
	for {
		u := b.bytes.Load()
		if n > b.limits.TotalBytes-u || u > b.limits.TotalBytes {
			return false
		}
		if b.bytes.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// release gives n bytes back to the backend-wide budget.
func (b *Backend) release(n uint64) { b.bytes.Add(-n) }

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cuda" }

// DeviceName is the GPU's name as the driver reports it.
func (b *Backend) DeviceName() string { return b.name }

// NewContext implements backend.Backend: an untrusted context, which may
// load only the built-in module (see the package documentation).
func (b *Backend) NewContext() (backend.Context, error) { return b.newContext(false) }

// NewTrustedContext creates a context that may load any PTX, cubin or
// fatbin image and launch its kernels with unchecked parameters. laked
// gives one only to the clients the package documentation names.
func (b *Backend) NewTrustedContext() (backend.Context, error) { return b.newContext(true) }

// MemInfo reports the device's free and total memory in bytes.
func (b *Backend) MemInfo() (free, total uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, 0, fmt.Errorf("cuda: backend closed: %w", backend.ErrContextDestroyed)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = call("cuMemGetInfo", func() {
		cu.CtxSetCurrent(b.host)
		f, t := cu.MemGetInfo()
		free, total = uint64(f), uint64(t)
	})
	return free, total, err
}

// RegisterHost page-locks mem for DMA by every context
// (cuMemHostRegister, portable), so that copies from and to it need no
// staging. laked registers each client's shared-memory region; mem must
// not be Go heap memory (a mapping) and must stay mapped until the
// returned function unregisters it.
func (b *Backend) RegisterHost(mem []byte) (unregister func() error, err error) {
	if len(mem) == 0 {
		return nil, fmt.Errorf("cuda: register empty host range: %w", backend.ErrInvalidValue)
	}
	base := unsafe.Pointer(&mem[0])
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("cuda: backend closed: %w", backend.ErrContextDestroyed)
	}
	if _, ok := b.regs[base]; ok {
		return nil, Map("cuMemHostRegister", ErrorHostMemRegistered)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r := ctxSetCurrent(b.host); r != Success {
		return nil, Map("cuCtxSetCurrent", r)
	}
	if r := memHostRegister(base, len(mem)); r != Success {
		return nil, Map("cuMemHostRegister", r)
	}
	b.regs[base] = len(mem)
	rs := b.pinned.Load()
	if rs == nil {
		rs = &hostRanges{}
	}
	next := rs.with(mem)
	b.pinned.Store(&next)
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = b.unregister(base) })
		return err
	}, nil
}

func (b *Backend) unregister(base unsafe.Pointer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.regs[base]; !ok || b.closed {
		return nil
	}
	delete(b.regs, base)
	if rs := b.pinned.Load(); rs != nil {
		next := rs.without(base)
		b.pinned.Store(&next)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if r := ctxSetCurrent(b.host); r != Success {
		return Map("cuCtxSetCurrent", r)
	}
	return Map("cuMemHostUnregister", memHostUnregister(base))
}

// Close implements backend.Backend: it unregisters host ranges and
// destroys the host context. Contexts must be destroyed first.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.pinned.Store(nil) // before the ranges stop being page-locked, as in unregister
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var first error
	if r := ctxSetCurrent(b.host); r == Success {
		for base := range b.regs {
			if r := memHostUnregister(base); r != Success && first == nil {
				first = Map("cuMemHostUnregister", r)
			}
		}
	}
	clear(b.regs)
	if err := call("cuCtxDestroy", func() { cu.CtxDestroy(&b.host) }); err != nil && first == nil {
		first = err
	}
	return first
}
