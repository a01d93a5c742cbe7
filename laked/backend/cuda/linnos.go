//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/linnos"
)

// LinnOS runs a LinnOS model's batches on the GPU with the built-in
// lake_linnos kernels: the layers are uploaded once, inputs (n×31 int32
// digits) are copied in, one launch computes every item (a block of 256
// threads per item), and the classes (n int32) are copied out. The
// integer kernels are bit-exact with linnos.IntModel. Safe for concurrent
// use (batches are serialised).
type LinnOS struct {
	owned
	in   backend.DevPtr
	out  backend.DevPtr
	capN int
}

// NewLinnOSInt prepares m (integer, bit-exact) on b.
func NewLinnOSInt(b *Backend, m *linnos.IntModel) (*LinnOS, error) {
	p := LinnOSParamsInt(m)
	raw := make([]byte, 8*len(p))
	for i, v := range p {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return newLinnOS(b, fmt.Sprintf("lake_linnos_int%d", m.Extra()), raw)
}

// NewLinnOSFloat prepares m (float32) on b.
func NewLinnOSFloat(b *Backend, m *linnos.FloatModel) (*LinnOS, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	p := LinnOSParamsFloat(m)
	raw := make([]byte, 4*len(p))
	for i, v := range p {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return newLinnOS(b, fmt.Sprintf("lake_linnos_float%d", m.Extra), raw)
}

func newLinnOS(b *Backend, kernel string, params []byte) (*LinnOS, error) {
	r, err := newResident(b, false, []string{kernel}, params)
	if err != nil {
		return nil, err
	}
	return &LinnOS{owned: owned{r: r}}, nil
}

// maxGrid bounds the blocks of one launch; blocks stride over the items.
const maxGrid = 65535

// Predict computes n items: in holds n×31 little-endian int32 digits,
// out receives n int32 classes.
func (l *LinnOS) Predict(in, out []byte, n int) error {
	return l.PredictRuns([][]byte{in}, [][]byte{out}, n)
}

// PredictRuns computes n items whose inputs lie in the runs ins, back to
// back, and whose classes go to the runs outs (laked.GPURunsFunc): one
// asynchronous copy per run, from and to host memory directly (DMA when
// it is registered: a client's arena).
func (l *LinnOS) PredictRuns(ins, outs [][]byte, n int) error {
	if n <= 0 || runsLen(ins) != uint64(n)*4*linnos.NumInputs || runsLen(outs) != uint64(n)*4 {
		return fmt.Errorf("cuda linnos: %d items with %d/%d bytes: %w", n, runsLen(ins), runsLen(outs), backend.ErrInvalidValue)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.r == nil {
		return fmt.Errorf("cuda linnos: closed: %w", backend.ErrContextDestroyed)
	}
	fresh, err := l.r.ensure()
	if fresh {
		l.capN = 0 // the old buffers went with the old context
	}
	if err != nil {
		return err
	}
	if err := l.reserve(n); err != nil {
		return err
	}
	grid := uint32(min(n, maxGrid))
	params := Pack(uint64(l.r.bufs[0]), uint64(l.in), uint64(l.out), uint64(n))
	return launchRuns(l.r.ctx, l.r.stream, l.r.fns[0], backend.Dim3{X: grid, Y: 1, Z: 1}, LinnOSBlock, params,
		l.in, uint64(n)*4*linnos.NumInputs, ins, l.out, uint64(n)*4, outs)
}

func (l *LinnOS) reserve(n int) error {
	if n <= l.capN {
		return nil
	}
	c := max(n, 2*l.capN, 64)
	ctx := l.r.ctx
	if l.capN > 0 {
		ctx.MemFree(l.in)
		ctx.MemFree(l.out)
		l.capN = 0
	}
	in, err := ctx.MemAlloc(uint64(c) * 4 * linnos.NumInputs)
	if err != nil {
		return err
	}
	out, err := ctx.MemAlloc(uint64(c) * 4)
	if err != nil {
		ctx.MemFree(in)
		return err
	}
	l.in, l.out, l.capN = in, out, c
	return nil
}
