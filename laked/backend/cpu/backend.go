package cpu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/laked/backend"
)

// Default limits, used for zero (or negative) fields of backend.Limits.
const (
	DefaultMaxBytes       uint64 = 1 << 30 // 1 GiB per context
	DefaultMaxAllocations        = 65536
	DefaultMaxStreams            = 64
	DefaultMaxThreads     uint64 = 1 << 26
	DefaultTotalBytes     uint64 = 4 << 30 // all contexts together
	DefaultQueuedBytes    uint64 = 8 << 20 // stream work queued on one context
	DefaultTotalQueued    uint64 = 64 << 20
	// opBytes is what one queued op costs besides its parameters.
	opBytes              = 160
	DefaultLaunchTimeout = 10 * time.Second
)

// Fixed bounds that are not configurable.
const (
	// MaxModules caps the modules one context may have loaded at once.
	MaxModules = 1024
	// MaxParamBytes caps the packed parameter buffer of one launch
	// (CUDA's classic 4 KiB limit).
	MaxParamBytes = 4096
	// MaxSharedMem caps the dynamic shared memory a launch may request
	// (CUDA's default 48 KiB). The CPU backend has no shared memory; the
	// value is only validated and passed to the kernel.
	MaxSharedMem = 48 << 10
	// MaxQueueDepth is how many operations one stream may hold queued;
	// an enqueue on a full stream waits for room, as a full CUDA push
	// buffer does.
	MaxQueueDepth = 4096
)

// Address-space layout of a context: base + tag<<ctxShift, a window of
// 1<<ctxShift bytes.
const (
	addrBase   uint64 = 0x7000_0000_0000
	ctxShift          = 40
	ctxTags           = 1<<20 - 1 // distinct context tags before reuse
	allocAlign        = 256
	guardGap          = 256 // unmapped bytes after every allocation
)

// Backend is the CPU device. It is safe for concurrent use.
type Backend struct {
	limits backend.Limits
	busy   atomic.Uint64
	bytes  atomic.Uint64 // device memory of all contexts (limits.TotalBytes)
	queued atomic.Uint64 // stream work queued on all contexts (limits.TotalQueuedBytes)
	ctxSeq atomic.Uint64

	mu     sync.Mutex
	live   int
	closed bool
}

var _ backend.Backend = (*Backend)(nil)

// New returns a CPU backend whose contexts obey limits; zero or negative
// fields take the Default* values.
func New(limits backend.Limits) *Backend {
	limits = limits.WithDefaults(backend.Limits{
		MaxBytes:         DefaultMaxBytes,
		MaxAllocations:   DefaultMaxAllocations,
		MaxStreams:       DefaultMaxStreams,
		MaxThreads:       DefaultMaxThreads,
		TotalBytes:       DefaultTotalBytes,
		QueuedBytes:      DefaultQueuedBytes,
		TotalQueuedBytes: DefaultTotalQueued,
		LaunchTimeout:    DefaultLaunchTimeout,
	})
	return &Backend{limits: limits}
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Limits returns the effective limits (defaults filled in).
func (b *Backend) Limits() backend.Limits { return b.limits }

// BusyNanos returns the total nanoseconds this backend has spent
// executing copies and kernels, summed over all contexts and streams.
// Work running on several goroutines at once is counted once per
// goroutine, so utilisation over an interval is
// delta(BusyNanos) / (delta(wall time) * cores used).
func (b *Backend) BusyNanos() uint64 { return b.busy.Load() }

// LiveContexts returns how many contexts are created and not destroyed.
func (b *Backend) LiveContexts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live
}

// NewContext creates an isolated context with its own address space and
// handle namespace.
func (b *Backend) NewContext() (backend.Context, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("cpu: new context: backend closed: %w", backend.ErrContextDestroyed)
	}
	b.live++
	id := b.ctxSeq.Add(1)
	tag := (id-1)%ctxTags + 1
	return newContext(b, tag), nil
}

// Close releases the backend. It fails with backend.ErrInvalidValue while
// contexts are still live; after it succeeds NewContext fails.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live > 0 {
		return fmt.Errorf("cpu: close: %d contexts still live: %w", b.live, backend.ErrInvalidValue)
	}
	b.closed = true
	return nil
}

// takeCapped adds n to *used unless that would exceed max.
func takeCapped(used *atomic.Uint64, n, max uint64) bool {
	for {
		u := used.Load()
		if n > max-u {
			return false
		}
		if used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// takeBytes charges n bytes of device memory to the backend's total,
// refusing what would exceed limits.TotalBytes.
func (b *Backend) takeBytes(n uint64) bool { return takeCapped(&b.bytes, n, b.limits.TotalBytes) }

func (b *Backend) giveBytes(n uint64) { b.bytes.Add(-n) }

// QueuedBytes returns the host memory of the stream work queued on all
// contexts.
func (b *Backend) QueuedBytes() uint64 { return b.queued.Load() }

// DeviceBytes returns the device memory all contexts hold.
func (b *Backend) DeviceBytes() uint64 { return b.bytes.Load() }

func (b *Backend) contextDone() {
	b.mu.Lock()
	b.live--
	b.mu.Unlock()
}

func (b *Backend) addBusy(start time.Time) {
	if d := time.Since(start); d > 0 {
		b.busy.Add(uint64(d))
	}
}
