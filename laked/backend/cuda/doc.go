// Package cuda is laked's GPU backend: backend.Backend on the CUDA driver
// API through github.com/mumax/3/cuda/cu. The backend itself builds only
// with the "cuda" build tag (cgo, the CUDA 12 cuda.h and a libcuda.so to
// link against; make cuda-env provides both without a GPU); what needs
// no driver (error mapping, parameter checking, the built-in kernels'
// signatures and PTX) builds and is tested everywhere.
//
// It owns:
//
//   - Error mapping. github.com/mumax/3/cuda/cu panics on every CUDA
//     error. Every call into it is wrapped (call) so that the panic
//     becomes an *Error carrying the CUresult and unwrapping to a backend
//     sentinel (Map documents which). No CUDA error takes laked down.
//
//   - Contexts, one CUDA context per client context, with the backend's
//     per-context limits (bytes, allocations, streams, threads per
//     launch) and its limit on all contexts' bytes (TotalBytes) enforced
//     before the driver is asked. Every operation binds the context to a
//     locked OS thread first.
//
//   - A bound on GPU work: a launch on the default stream and every
//     synchronisation poll the context's streams (cuStreamQuery, never a
//     blocking driver wait) for at most Limits.LaunchTimeout (laked's
//     limits.launch_timeout, default DefaultLaunchTimeout, 10 s); so does
//     a copy before the driver would wait inside it (a synchronous copy,
//     or an asynchronous one with pageable host memory). Work
//     unfinished then is treated as a fault of that context:
//     CUDA_ERROR_LAUNCH_TIMEOUT, mapped to ErrLaunchFailed, and the
//     context is rebuilt as below, while laked goes on serving (its model
//     batches fall back to the CPU). Whether cuCtxDestroy returns
//     promptly with a kernel still running is the driver's affair;
//     TestGPULaunchTimeout measures it on a GPU machine.
//
//   - Faults. A kernel fault (a sticky
//     error: illegal address, launch failure, ...; Result.Sticky) leaves a
//     CUDA context unusable: the backend destroys it and creates a fresh,
//     empty one for that client only. The call that saw the fault returns
//     it (ErrLaunchFailed); every handle the client held becomes unknown
//     (ErrInvalidHandle); other clients' contexts never notice. (NVIDIA's
//     documentation of these errors says the process must be restarted;
//     on current GPUs the driver recovers a faulted context's channels
//     alone, which TestGPUFaultIsolated checks on a GPU machine. Until it
//     has passed there, treat per-client recovery as unverified.)
//
//   - Device memory bookkeeping: allocations are zeroed, every copy and
//     every pointer a built-in kernel is given must lie wholly inside one
//     live allocation of the calling context.
//
//   - Host registration: Backend.RegisterHost page-locks a client's
//     shared-memory region (cuMemHostRegister, portable to every
//     context), so that copies between it and the GPU are DMA.
//
//   - Modules, and who may load what. This is the rule:
//
//     Every context may load the built-in module, by the name "lake"
//     (BuiltinModule): the kernels of ptx/lake.cu, compiled to the
//     committed ptx/lake.ptx. Each built-in kernel declares a Signature;
//     every launch of it is checked against that signature, so a client
//     can make it touch only its own allocations. Kernels marked Trusted
//     are refused to untrusted contexts: lake_fault (writes anywhere, for
//     the isolation test), lake_spin (outlasts the launch timeout, for
//     its test), and lake_mlp and lake_snapshot_run, whose
//     extents come from tables in device memory that a launch cannot
//     check (laked's own model contexts are trusted).
//
//     Only a trusted context (Backend.NewTrustedContext) may load any
//     other image (PTX, cubin, fatbin, at most MaxImageBytes) and launch
//     its kernels, whose parameters cannot be checked. laked creates
//     trusted contexts only for the kernel's /dev/lake region and for
//     unix-socket peers with uid 0: both can already read and write
//     laked's memory, so a GPU module gives them nothing new. Every other
//     client gets NewContext, and ModuleLoad of anything but "lake"
//     fails with ErrNotSupported.
//
// The built-in GPU models: LinnOS (integer, bit-exact with
// linnos.IntModel; float, in linnos.FloatModel's order), its +1 and +2
// variants (LinnOS), generic MLPs in package kernels' format with linear,
// ReLU, tanh and sigmoid layers (MLP; tanh and sigmoid are package
// kernels' deterministic double-precision ones, repeated operation for
// operation in lake.cu, so the GPU gives the CPU's bits), and LiteFlow
// snapshots on the one C engine the kernel module shares,
// lakelib/include/lake_snapshot.h, compiled for the device (Snapshot).
// Each keeps its parameters resident in a context of its own and uploads
// them again after a fault rebuilt it. A batch runs on the model's own
// stream: one cuMemcpyHtoDAsync per input run, the launch, one
// cuMemcpyDtoHAsync per output run, then a bounded wait (launchRuns).
// LinnOS and MLP take their batches as runs of host memory (PredictRuns,
// laked's GPURunsFunc): laked hands them stretches of clients' registered
// arenas, so those copies are DMA with no staging copy anywhere.
//
// The kernels' CUDA C also compiles for the host (ptx/host_shim.h: a
// block's threads are host threads, __syncthreads a barrier), so that
// TestKernelsOnHost checks their arithmetic, indexing and barriers
// against the Go CPU models, bit for bit, on machines without a GPU.
//
// The fake driver. CI has no GPU: the cuda variant links against a stub
// libcuda.so.1 whose every call fails (stub/), so New, contexts, launches,
// fault rebuilds, the models and laked's GPU path would never run there.
// fake/fakecuda.c is a second libcuda.so.1, for tests only (fake/gen.sh
// builds it into the ignored .whl/fake; never installed), that implements
// the driver calls this package makes with host memory: contexts (each
// with a worker thread that runs its queued launches and page-locked async
// copies, so cuStreamQuery says NOT_READY until they have run), device
// memory from malloc with a size limit (at device addresses outside the
// host's address space), host registration, streams, PTX modules by their
// .entry names, and cuLaunchKernel running lake.cu's host build (the
// kernels of TestKernelsOnHost; a block's threads as fibers for the LinnOS
// barriers). A kernel given a pointer outside its context's allocations
// faults that context sticky (CUDA_ERROR_ILLEGAL_ADDRESS) as a GPU does;
// FakeDriverControl (the fake's lake_fakecuda_control, found with dlsym;
// or LAKE_FAKECUDA_FAULT, _HANG, _REFUSE_REGISTER and _MEM at the first
// cuInit) injects a kernel fault, a kernel that never finishes, a refused
// cuMemHostRegister and a device size. make cuda-check runs the GPU tests
// here and laked's (cmd/laked) against it with LAKE_CUDA_FAKE_DRIVER=1,
// which makes Available skip the /dev/nvidiactl check in a test binary
// only (testing.Testing); laked and deploy/gpu-check.sh ignore it. The
// TestFakeDriver* tests and cmd/laked's TestGPUFaultsThroughLaked need the
// fake's injection and skip elsewhere (TestGPUContextsThroughLaked, which
// runs clients' device operations through laked, runs on both);
// TestGPUCrossover measures a GPU and skips on the fake.
//
// What the fake proves: that this package drives the driver API
// correctly (context binding, error mapping, which errors rebuild a
// context and which do not, budgets given back, the bounded waits,
// re-uploads after a rebuild, pinned versus pageable copies) and that
// the models and laked's GPU path give the CPU's bits through it. What
// it cannot: that the PTX runs (no PTX is executed: the same CUDA C
// compiled for the host is), DMA (copies are memcpy), real fault
// containment or driver recovery on a GPU (its isolation is its own
// bookkeeping), GPU memory ordering and scheduling, or speed. Those
// stay with make gpu-check on a GPU machine.
//
// What it trusts: the CUDA driver, and the committed PTX. Everything a
// client passes (sizes, device addresses, handles, images, parameter
// buffers, launch shapes) is checked first.
package cuda
