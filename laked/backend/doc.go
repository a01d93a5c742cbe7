// Package backend defines the device interface that laked executes
// CUDA-driver-shaped operations on. The CPU backend (package cpu) and the
// CUDA backend (package cuda, build tag "cuda") both satisfy it.
//
// A Backend hands out Contexts. laked creates one Context per client
// context (cuCtxCreate), so every handle a Context returns (device
// pointers, modules, functions, streams) is private to the client that
// created it: a handle from another Context is simply unknown to this one
// and is rejected with ErrInvalidHandle.
//
// A backend that can page-lock host memory (HostRegisterer: the CUDA
// backend) has every client's region registered with it while the client
// is attached; laked's GPU model path then copies records straight
// between a client's arena and the device (laked.GPURunsModel). A launch
// or synchronisation waits for a context's work at most
// Limits.LaunchTimeout: the CPU backend stops the kernel, the CUDA
// backend treats the context as faulted and rebuilds it for its client
// alone.
//
// All methods of a Context must be safe for concurrent use: laked may call
// them from its per-client reader and from its batcher at the same time.
// Every method validates its arguments (handles, sizes, bounds of device
// memory) and returns an error wrapping one of the sentinel errors below;
// nothing here may panic on bad input.
package backend
