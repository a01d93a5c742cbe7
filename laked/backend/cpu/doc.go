// Package cpu is laked's CPU backend: it satisfies backend.Backend by
// running CUDA-driver-shaped operations on the host.
//
// It owns four things:
//
//   - Device memory. Allocations are Go memory, addressed through a
//     per-context device address space: every context gets its own 1 TiB
//     window starting at 0x7000_0000_0000 plus a per-context offset, so a
//     pointer from one context is never valid in another. Allocations are
//     256-byte aligned, separated by an unmapped guard gap, and placed by
//     a cursor that only moves forward (wrapping around the window only
//     when it is exhausted), so a freed address is not handed out again
//     soon and a stale pointer is caught as unknown. Any address inside a
//     live allocation is valid (pointer arithmetic); every access must lie
//     wholly inside one allocation. Lookups are a binary search over a
//     sorted slice under a read lock. Streams run concurrently, so two
//     streams that touch one buffer without ordering race as they would
//     on a GPU: the values are undefined (kernels must not trust device
//     memory to stay put: mlp_forward copies the blob's table before
//     using it), and a -race build of laked reports it as a data race.
//
//   - Modules. A process-wide registry maps module names to named Go
//     kernels (RegisterModule, RegisterKernel). ModuleLoad treats the
//     image as a module name; the kernels of the builtin module live in
//     package kernels and are registered by kernels.Register.
//
//   - Streams. Each stream is an ordered queue drained by a worker
//     goroutine that exists only while the stream has work. Async copies
//     and launches queue on their stream; the first error a stream raises
//     is kept (sticky) and returned by the next StreamSynchronize or
//     Synchronize, and work queued on that stream after the failure is
//     skipped, not run, until that synchronization. The default stream
//     (handle 0) has the legacy CUDA semantics: an operation on it first
//     waits for all work already queued on every other stream of the
//     context, then runs synchronously in the calling goroutine, so its
//     errors are returned directly.
//
//   - Busy time. The backend counts the nanoseconds it spent executing
//     copies and kernels (Backend.BusyNanos) so that the policy's load
//     source can compute CPU-backend utilisation.
//
// Device memory is viewed as float32/int32 in host byte order; on a
// big-endian host, typed views fail with backend.ErrNotSupported because
// clients write little-endian data.
package cpu
