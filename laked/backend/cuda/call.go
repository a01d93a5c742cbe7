//go:build cuda

package cuda

import (
	"fmt"

	"github.com/lakeos/lake/laked/backend"
	"github.com/mumax/3/cuda/cu"
)

// call runs f, a sequence of github.com/mumax/3/cuda/cu calls, and turns
// the panic with which that package reports every CUDA error into the
// mapped error (Map). A panic that is not a CUresult (a bug in the
// binding) becomes ErrLaunchFailed too: it must not take laked down.
func call(op string, f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if r, ok := p.(cu.Result); ok {
				err = Map(op, Result(r))
				return
			}
			// Not a driver status: the binding itself failed, and the
			// context's state is unknown, so it counts as a fault
			// (Faulted) and do rebuilds the context.
			err = fmt.Errorf("cuda: %s: unexpected panic %v: %w", op, p,
				&Error{Op: op, Code: ErrorUnknown, Reason: backend.ErrLaunchFailed})
		}
	}()
	f()
	return nil
}
