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
// All methods of a Context must be safe for concurrent use: laked may call
// them from its per-client reader and from its batcher at the same time.
// Every method validates its arguments (handles, sizes, bounds of device
// memory) and returns an error wrapping one of the sentinel errors below;
// nothing here may panic on bad input.
package backend
