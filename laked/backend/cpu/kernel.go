package cpu

import (
	"errors"
	"fmt"
	"time"

	"github.com/lakeos/lake/laked/backend"
)

// KernelContext is what a KernelFunc receives for one launch.
type KernelContext struct {
	// Module and Kernel name the kernel being run.
	Module, Kernel string
	// Grid and Block are the launch shape; every dimension is >= 1 and
	// Grid.Count()*Block.Count() is within the context's thread limit.
	Grid, Block backend.Dim3
	// SharedMem is the dynamic shared memory the launch asked for.
	SharedMem uint32
	// Params are the launch parameters, one per 8-byte little-endian
	// word of the packed parameter buffer.
	Params []uint64
	// Mem is the bounds-checked accessor to the context's device memory.
	Mem Memory

	stop     <-chan struct{} // closed when the context is aborted
	deadline time.Time       // the launch's time budget ends
}

// Errors a kernel's Err returns: the launch must stop.
var (
	ErrLaunchAborted  = errors.New("launch stopped: its context was aborted (client gone)")
	ErrLaunchTimedOut = errors.New("launch stopped: over its time budget")
)

// Err reports whether the launch must stop: its context was aborted (the
// client is gone) or it ran past the backend's LaunchTimeout. A kernel
// that loops calls it every so often (every few microseconds of work is
// plenty: it costs a clock read) and returns the error when it is
// non-nil; the launch then fails with backend.ErrLaunchFailed.
func (k *KernelContext) Err() error {
	select {
	case <-k.stop:
		return ErrLaunchAborted
	default:
	}
	if !k.deadline.IsZero() && time.Now().After(k.deadline) {
		return ErrLaunchTimedOut
	}
	return nil
}

// Threads returns Grid.Count()*Block.Count(), the number of threads the
// launch stands for (already checked against the thread limit).
func (k *KernelContext) Threads() uint64 { return k.Grid.Count() * k.Block.Count() }

// CheckParams returns a backend.ErrInvalidValue error unless the launch
// passed exactly n parameter words.
func (k *KernelContext) CheckParams(n int) error {
	if len(k.Params) != n {
		return fmt.Errorf("%s.%s takes %d parameter words, got %d: %w", k.Module, k.Kernel, n, len(k.Params), backend.ErrInvalidValue)
	}
	return nil
}

// Ptr returns parameter i as a device pointer; i must be < len(Params)
// (check with CheckParams first).
func (k *KernelContext) Ptr(i int) backend.DevPtr { return backend.DevPtr(k.Params[i]) }

// runKernel runs a launch, turning a returned error or a panic into a
// backend.ErrLaunchFailed error. Only the error text of the kernel's
// error is kept, so that errors.Is sees exactly one sentinel.
func (c *Context) runKernel(o *op) (err error) {
	k := &KernelContext{
		Module:    o.fn.module,
		Kernel:    o.fn.name,
		Grid:      o.grid,
		Block:     o.block,
		SharedMem: o.shared,
		Params:    o.params,
		Mem:       c.mem,
		stop:      c.abort,
		deadline:  time.Now().Add(c.b.limits.LaunchTimeout),
	}
	if e := k.Err(); e != nil { // aborted while queued: do not start
		return fmt.Errorf("cpu: kernel %s.%s: %v: %w", o.fn.module, o.fn.name, e, backend.ErrLaunchFailed)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cpu: kernel %s.%s panicked: %v: %w", o.fn.module, o.fn.name, r, backend.ErrLaunchFailed)
		}
	}()
	if e := o.fn.fn(k); e != nil {
		return fmt.Errorf("cpu: kernel %s.%s: %v: %w", o.fn.module, o.fn.name, e, backend.ErrLaunchFailed)
	}
	return nil
}
