package backend

import (
	"errors"
	"fmt"
	"time"
)

// DevPtr is a device address, as CUdeviceptr. Addresses support pointer
// arithmetic: any address inside a live allocation is valid, and an
// operation of n bytes at p must lie wholly inside one allocation.
type DevPtr uint64

// Handle identifies a module, function or stream inside one Context.
// Zero is never a valid module or function handle; stream handle zero is
// the default (null) stream.
type Handle uint64

// Dim3 is a grid or block shape, as in cuLaunchKernel.
type Dim3 struct{ X, Y, Z uint32 }

// Count returns X*Y*Z, saturating at the largest uint64 instead of
// wrapping, so a huge shape can never look small to a limit check.
func (d Dim3) Count() uint64 {
	xy := uint64(d.X) * uint64(d.Y) // < 2^64: both factors < 2^32
	z := uint64(d.Z)
	if z != 0 && xy > ^uint64(0)/z {
		return ^uint64(0)
	}
	return xy * z
}

// Sentinel errors. laked maps them to protocol status codes; backends wrap
// them with context using fmt.Errorf("...: %w", ErrX).
var (
	ErrInvalidValue     = errors.New("invalid value")
	ErrInvalidHandle    = errors.New("invalid handle")
	ErrOutOfMemory      = errors.New("out of device memory")
	ErrNotFound         = errors.New("not found")
	ErrLaunchFailed     = errors.New("launch failed")
	ErrContextDestroyed = errors.New("context destroyed")
	ErrNotSupported     = errors.New("not supported")
)

// Backend is a device: the CPU, or a GPU through the CUDA driver API.
type Backend interface {
	// Name is a short lowercase name: "cpu", "cuda".
	Name() string
	// NewContext creates an isolated context (cuCtxCreate).
	NewContext() (Context, error)
	// Close releases the device. Contexts must be destroyed first.
	Close() error
}

// TrustedBackend is implemented by backends that give some clients more
// rights than others (the CUDA backend: loading arbitrary GPU modules).
// laked creates contexts with NewTrustedContext for trusted clients (the
// kernel's /dev/lake region and unix-socket peers with uid 0) and with
// NewContext for every other client.
type TrustedBackend interface {
	Backend
	NewTrustedContext() (Context, error)
}

// HostRegisterer is implemented by backends that can page-lock host
// memory for DMA (the CUDA backend: cuMemHostRegister). laked registers
// each client's region with the backend that serves its contexts while
// the client is attached; a failed registration only costs speed.
type HostRegisterer interface {
	// RegisterHost registers mem, which must stay mapped until the
	// returned function unregisters it.
	RegisterHost(mem []byte) (unregister func() error, err error)
}

// Context is one client's device context. Host memory passed in (src/dst
// slices) may be shared memory that the client can write concurrently:
// a backend copies from it or into it and never keeps a reference past
// the operation, except for async operations, which may touch it until
// the stream is synchronized (exactly CUDA's contract for pinned memory).
type Context interface {
	// MemAlloc allocates size bytes of zeroed device memory (cuMemAlloc).
	MemAlloc(size uint64) (DevPtr, error)
	// MemFree frees an allocation by its base address (cuMemFree).
	MemFree(p DevPtr) error
	// MemcpyHtoD copies len(src) bytes to device address dst, after all
	// work queued on the default stream (cuMemcpyHtoD).
	MemcpyHtoD(dst DevPtr, src []byte) error
	// MemcpyDtoH copies len(dst) bytes from device address src
	// (cuMemcpyDtoH).
	MemcpyDtoH(dst []byte, src DevPtr) error
	// MemcpyHtoDAsync queues a copy on stream s (cuMemcpyHtoDAsync).
	MemcpyHtoDAsync(dst DevPtr, src []byte, s Handle) error
	// MemcpyDtoHAsync queues a copy on stream s (cuMemcpyDtoHAsync).
	MemcpyDtoHAsync(dst []byte, src DevPtr, s Handle) error
	// ModuleLoad loads a module image (cuModuleLoadData). For the CPU
	// backend the image names a registered Go module.
	ModuleLoad(image []byte) (Handle, error)
	// ModuleUnload unloads a module and its functions.
	ModuleUnload(m Handle) error
	// ModuleGetFunction looks a kernel up by name (cuModuleGetFunction).
	ModuleGetFunction(m Handle, name string) (Handle, error)
	// LaunchKernel queues kernel f on stream s (cuLaunchKernel). params
	// is the packed parameter buffer: a sequence of 8-byte little-endian
	// words, each a device pointer or a scalar, as the kernel documents.
	// Errors in argument validation are returned; errors raised while the
	// kernel runs are returned here for the default stream and by the
	// next StreamSynchronize/Synchronize for other streams.
	LaunchKernel(f Handle, grid, block Dim3, sharedMem uint32, s Handle, params []byte) error
	// StreamCreate creates a stream (cuStreamCreate).
	StreamCreate() (Handle, error)
	// StreamDestroy waits for the stream's work and destroys it.
	StreamDestroy(s Handle) error
	// StreamSynchronize waits for all work queued on s and returns the
	// first error raised by it since the last synchronization.
	StreamSynchronize(s Handle) error
	// Synchronize waits for all streams (cuCtxSynchronize).
	Synchronize() error
	// Destroy waits for queued work, frees everything and makes every
	// later call fail with ErrContextDestroyed (cuCtxDestroy).
	Destroy() error
	// Stats reports what the context holds (for metrics and leak tests).
	Stats() ContextStats
}

// Aborter is implemented by contexts that can stop their work early.
// laked aborts a context when its client is gone.
type Aborter interface {
	// Abort stops the context's work: a running kernel stops at its
	// next check, queued and later launches fail with ErrLaunchFailed
	// without running. It is safe to call concurrently with any other
	// method, and more than once; Destroy must still be called.
	Abort()
}

// ContextStats counts what a Context holds.
type ContextStats struct {
	Allocations    int
	BytesAllocated uint64
	Modules        int
	Streams        int
}

// Limits bound what one context may ask for. Zero fields take defaults.
type Limits struct {
	// MaxBytes caps the device memory one context may hold.
	MaxBytes uint64
	// MaxAllocations caps the number of live allocations.
	MaxAllocations int
	// MaxStreams caps the number of streams.
	MaxStreams int
	// MaxThreads caps grid.Count()*block.Count() of one launch.
	MaxThreads uint64
	// TotalBytes caps the device memory of all contexts together.
	TotalBytes uint64
	// QueuedBytes caps the host memory of work queued on one context's
	// streams (copied launch parameters and bookkeeping);
	// TotalQueuedBytes caps it over all contexts. An enqueue past either
	// fails with ErrOutOfMemory instead of growing laked's memory.
	QueuedBytes      uint64
	TotalQueuedBytes uint64
	// LaunchTimeout bounds one kernel launch's run time (CPU backend:
	// the kernel is stopped at its next check and the launch fails).
	LaunchTimeout time.Duration
}

// WithDefaults returns l with its unset fields (zero, or negative for
// the signed ones) taken from d. A zero field of d sets nothing, so a
// backend leaves the limits it does not enforce as they came.
func (l Limits) WithDefaults(d Limits) Limits {
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxAllocations <= 0 && d.MaxAllocations != 0 {
		l.MaxAllocations = d.MaxAllocations
	}
	if l.MaxStreams <= 0 && d.MaxStreams != 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.MaxThreads == 0 {
		l.MaxThreads = d.MaxThreads
	}
	if l.TotalBytes == 0 {
		l.TotalBytes = d.TotalBytes
	}
	if l.QueuedBytes == 0 {
		l.QueuedBytes = d.QueuedBytes
	}
	if l.TotalQueuedBytes == 0 {
		l.TotalQueuedBytes = d.TotalQueuedBytes
	}
	if l.LaunchTimeout <= 0 && d.LaunchTimeout != 0 {
		l.LaunchTimeout = d.LaunchTimeout
	}
	return l
}

// String formats a Dim3 as "(x,y,z)".
func (d Dim3) String() string { return fmt.Sprintf("(%d,%d,%d)", d.X, d.Y, d.Z) }
