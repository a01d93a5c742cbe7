package cpu

import (
	"fmt"

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
