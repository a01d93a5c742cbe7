// Package lakelib is lake's Go client: CUDA-driver-shaped calls
// (Init, CtxCreate, MemAlloc, MemcpyHtoD, ModuleLoadData,
// ModuleGetFunction, LaunchKernel, StreamCreate, ...) and Predict, carried
// to laked through a shared-memory region (package shm).
//
// A Client is safe for concurrent use by many goroutines: they share one
// submission ring (lock-free, many producers) and one completion ring
// (whoever is waiting reaps, and hands each completion to its caller by
// tag). Every call takes a context.Context; when it expires the call
// returns an error, and the call's slot and buffers are released only
// when laked eventually completes it, so a late completion can never land
// in memory that was reused. If laked goes away (its socket closes), every
// pending and later call fails with ErrDaemonGone instead of hanging.
//
// The C equivalent for userspace is lakelib/c; the kernel one is
// kernel/lakelib.
package lakelib
