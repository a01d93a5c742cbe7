//go:build cuda

package cuda

import (
	"fmt"
	"sync"

	"github.com/lakeos/lake/laked/backend"
)

// resident is a model's state on the GPU: a context of its own with the
// built-in module loaded, one kernel, and constant buffers (the model's
// parameters) uploaded once. A kernel fault rebuilds the context empty
// (Context.fault); resident notices by the rebuild count and uploads
// everything again before the next batch, so a fault costs that batch
// (which laked then runs on the CPU), not the model's GPU path.
type resident struct {
	ctx     *Context
	kernels []string
	consts  [][]byte
	fns     []backend.Handle // the kernels' functions, in order; nil until uploaded
	bufs    []backend.DevPtr // device copies of consts, in order
	stream  backend.Handle   // the batches' stream (copies and launches)
	gen     int              // ctx.Rebuilds() when uploaded
}

func newResident(b *Backend, trusted bool, kernels []string, consts ...[]byte) (*resident, error) {
	c, err := b.newContext(trusted)
	if err != nil {
		return nil, err
	}
	r := &resident{ctx: c, kernels: kernels, consts: consts}
	if _, err := r.ensure(); err != nil {
		c.Destroy()
		return nil, err
	}
	return r, nil
}

// ensure uploads the module and constants unless they are current. fresh
// reports that they were (re)uploaded: every other buffer of the context
// is gone.
func (r *resident) ensure() (fresh bool, err error) {
	if r.fns != nil && r.ctx.Rebuilds() == r.gen {
		return false, nil
	}
	if r.ctx.Rebuilds() == r.gen {
		// A failed upload in this same context: free what it left (the
		// module stays loaded; a rebuild clears it).
		for _, p := range r.bufs {
			r.ctx.MemFree(p)
		}
		if r.stream != 0 {
			r.ctx.StreamDestroy(r.stream)
		}
	}
	r.fns, r.bufs, r.stream, r.gen = nil, nil, 0, r.ctx.Rebuilds()
	mod, err := r.ctx.ModuleLoad([]byte(BuiltinModule))
	if err != nil {
		return true, err
	}
	var fns []backend.Handle
	for _, k := range r.kernels {
		fn, err := r.ctx.ModuleGetFunction(mod, k)
		if err != nil {
			return true, err
		}
		fns = append(fns, fn)
	}
	for _, c := range r.consts {
		p, err := r.ctx.MemAlloc(uint64(len(c)))
		if err != nil {
			return true, err
		}
		if err := r.ctx.MemcpyHtoD(p, c); err != nil {
			return true, err
		}
		r.bufs = append(r.bufs, p)
	}
	st, err := r.ctx.StreamCreate()
	if err != nil {
		return true, err
	}
	r.stream = st
	r.fns = fns
	return true, nil
}

// batchBufs are a per-item model's device buffers for one batch: inputs,
// outputs and scratch, sized for capN items. MLP and Snapshot share them.
type batchBufs struct {
	in, out, sc backend.DevPtr
	capN        int
}

// reserve grows the buffers in ctx to hold n items (at least doubling,
// at least 64) of inW and outW float32s and scW 8-byte scratch words.
// On failure nothing is held and capN is 0.
func (b *batchBufs) reserve(ctx *Context, n, inW, outW int, scW uint64) error {
	if n <= b.capN {
		return nil
	}
	c := max(n, 2*b.capN, 64)
	if b.capN > 0 {
		ctx.MemFree(b.in)
		ctx.MemFree(b.out)
		ctx.MemFree(b.sc)
		b.capN = 0
	}
	var err error
	if b.in, err = ctx.MemAlloc(uint64(c) * 4 * uint64(inW)); err != nil {
		return err
	}
	if b.out, err = ctx.MemAlloc(uint64(c) * 4 * uint64(outW)); err != nil {
		ctx.MemFree(b.in)
		return err
	}
	if b.sc, err = ctx.MemAlloc(uint64(c) * 8 * scW); err != nil {
		ctx.MemFree(b.in)
		ctx.MemFree(b.out)
		return err
	}
	b.capN = c
	return nil
}

// run runs one batch of n items with buffers b (launch: one thread per
// item, block threads a block, at most maxGrid blocks) on stream st,
// from the input runs to the output runs (launchRuns).
func (b *batchBufs) run(c *Context, st, fn backend.Handle, block, n, inW, outW int, ins, outs [][]byte, params []byte) error {
	grid := uint32(min((n+block-1)/block, maxGrid))
	return launchRuns(c, st, fn, backend.Dim3{X: grid, Y: 1, Z: 1}, backend.Dim3{X: uint32(block), Y: 1, Z: 1}, params,
		b.in, uint64(n)*4*uint64(inW), ins, b.out, uint64(n)*4*uint64(outW), outs)
}

// runsLen sums the runs' lengths.
func runsLen(runs [][]byte) uint64 {
	var n uint64
	for _, r := range runs {
		n += uint64(len(r))
	}
	return n
}

// launchRuns moves one batch through the GPU on stream st: the input
// runs are copied back to back into device memory at in (one
// cuMemcpyHtoDAsync per run: from a registered arena, DMA), fn is
// launched, and the output at out is copied back into the output runs
// (one cuMemcpyDtoHAsync per run), then the stream is waited for (at most
// the launch timeout). The runs must hold exactly inBytes and outBytes
// (checked before anything is queued); every copy is also checked
// against the context's allocations. Whatever fails, the stream is
// waited for before launchRuns returns, so no copy touches a run after.
// A run outside every registered host range (laked's own buffer: a
// staged request) is pageable: its copy waits for the kernel before it
// within the launch timeout first (Context.copyDtoH), then copies.
func launchRuns(c *Context, st, fn backend.Handle, grid, block backend.Dim3, params []byte,
	in backend.DevPtr, inBytes uint64, ins [][]byte, out backend.DevPtr, outBytes uint64, outs [][]byte) error {
	if runsLen(ins) != inBytes || runsLen(outs) != outBytes {
		return fmt.Errorf("cuda: runs of %d/%d bytes for a batch of %d/%d: %w", runsLen(ins), runsLen(outs), inBytes, outBytes, backend.ErrInvalidValue)
	}
	err := func() error {
		off := uint64(0)
		for _, r := range ins {
			if err := c.MemcpyHtoDAsync(in+backend.DevPtr(off), r, st); err != nil {
				return err
			}
			off += uint64(len(r))
		}
		if err := c.LaunchKernel(fn, grid, block, 0, st, params); err != nil {
			return err
		}
		off = 0
		for _, r := range outs {
			if err := c.MemcpyDtoHAsync(r, out+backend.DevPtr(off), st); err != nil {
				return err
			}
			off += uint64(len(r))
		}
		return nil
	}()
	serr := c.StreamSynchronize(st)
	if err != nil {
		return err
	}
	return serr
}

// owned is a model's resident context, owned by the model (laked's own,
// trusted) and guarded by mu: LinnOS, MLP and Snapshot embed it. r is nil
// once closed.
type owned struct {
	mu sync.Mutex
	r  *resident
}

// Close frees the model's context. Closing again does nothing.
func (o *owned) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.r == nil {
		return nil
	}
	err := o.r.ctx.Destroy()
	o.r = nil
	return err
}
