//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

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
	mu     sync.Mutex
	ctx    backend.Context
	fn     backend.Handle
	params backend.DevPtr
	in     backend.DevPtr
	out    backend.DevPtr
	capN   int
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

func newLinnOS(b *Backend, kernel string, params []byte) (l *LinnOS, err error) {
	c, err := b.NewContext()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Destroy()
		}
	}()
	mod, err := c.ModuleLoad([]byte(BuiltinModule))
	if err != nil {
		return nil, err
	}
	fn, err := c.ModuleGetFunction(mod, kernel)
	if err != nil {
		return nil, err
	}
	p, err := c.MemAlloc(uint64(len(params)))
	if err != nil {
		return nil, err
	}
	if err := c.MemcpyHtoD(p, params); err != nil {
		return nil, err
	}
	return &LinnOS{ctx: c, fn: fn, params: p}, nil
}

// maxGrid bounds the blocks of one launch; blocks stride over the items.
const maxGrid = 65535

// Predict computes n items: in holds n×31 little-endian int32 digits,
// out receives n int32 classes.
func (l *LinnOS) Predict(in, out []byte, n int) error {
	if n <= 0 || len(in) != n*4*linnos.NumInputs || len(out) != n*4 {
		return fmt.Errorf("cuda linnos: %d items with %d/%d bytes: %w", n, len(in), len(out), backend.ErrInvalidValue)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		return fmt.Errorf("cuda linnos: closed: %w", backend.ErrContextDestroyed)
	}
	if err := l.reserve(n); err != nil {
		return err
	}
	if err := l.ctx.MemcpyHtoD(l.in, in); err != nil {
		return l.lost(err)
	}
	grid := uint32(min(n, maxGrid))
	params := Pack(uint64(l.params), uint64(l.in), uint64(l.out), uint64(n))
	if err := l.ctx.LaunchKernel(l.fn, backend.Dim3{X: grid, Y: 1, Z: 1}, LinnOSBlock, 0, 0, params); err != nil {
		return l.lost(err)
	}
	return l.lost(l.ctx.MemcpyDtoH(out, l.out))
}

// lost notices a fault: the context was rebuilt empty, so the model must
// be prepared again; until then Predict fails and laked runs the CPU.
func (l *LinnOS) lost(err error) error {
	if err != nil && AsResult(err).Sticky() {
		l.ctx.Destroy()
		l.ctx = nil
	}
	return err
}

func (l *LinnOS) reserve(n int) error {
	if n <= l.capN {
		return nil
	}
	c := max(n, 2*l.capN, 64)
	if l.capN > 0 {
		l.ctx.MemFree(l.in)
		l.ctx.MemFree(l.out)
		l.capN = 0
	}
	in, err := l.ctx.MemAlloc(uint64(c) * 4 * linnos.NumInputs)
	if err != nil {
		return err
	}
	out, err := l.ctx.MemAlloc(uint64(c) * 4)
	if err != nil {
		l.ctx.MemFree(in)
		return err
	}
	l.in, l.out, l.capN = in, out, c
	return nil
}

// Close frees the model's context.
func (l *LinnOS) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		return nil
	}
	err := l.ctx.Destroy()
	l.ctx = nil
	return err
}
