//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/kernels"
)

// MLP runs a kernels.MLP's batches on the GPU with lake_mlp (one thread
// per item), bit-exact with kernels.MLP.Forward for every activation
// (linear, ReLU, and tanh and sigmoid as package kernels computes them;
// MLPTable refuses an unknown one). The model's table and parameters
// are uploaded once into a trusted context of laked's own (lake_mlp
// reads its layer table from device memory, which launches cannot
// check). Safe for concurrent use (batches are serialised).
type MLP struct {
	owned     // r: consts: the layer table, the parameters
	nl, maxw  uint64
	inW, outW int
	batchBufs
}

// NewMLP prepares m on b.
func NewMLP(b *Backend, m *kernels.MLP) (*MLP, error) {
	table, params, maxw, err := MLPTable(m)
	if err != nil {
		return nil, err
	}
	tb := make([]byte, 0, 4*len(table))
	for _, v := range table {
		tb = binary.LittleEndian.AppendUint32(tb, v)
	}
	pb := make([]byte, 0, 4*len(params))
	for _, v := range params {
		pb = binary.LittleEndian.AppendUint32(pb, math.Float32bits(v))
	}
	r, err := newResident(b, true, []string{"lake_mlp"}, tb, pb)
	if err != nil {
		return nil, err
	}
	return &MLP{owned: owned{r: r}, nl: uint64(m.NumLayers()), maxw: uint64(maxw), inW: m.InDim(), outW: m.OutDim()}, nil
}

// mlpBlock is lake_mlp's block size (threads, one item each).
const mlpBlock = 128

// Predict computes n items: in holds n×InDim float32s, out receives
// n×OutDim (little-endian).
func (g *MLP) Predict(in, out []byte, n int) error {
	return g.PredictRuns([][]byte{in}, [][]byte{out}, n)
}

// PredictRuns computes n items whose inputs lie in the runs ins, back to
// back, and whose outputs go to the runs outs (laked.GPURunsFunc): one
// asynchronous copy per run, from and to host memory directly (DMA when
// it is registered: a client's arena).
func (g *MLP) PredictRuns(ins, outs [][]byte, n int) error {
	if n <= 0 || runsLen(ins) != 4*uint64(n)*uint64(g.inW) || runsLen(outs) != 4*uint64(n)*uint64(g.outW) {
		return fmt.Errorf("cuda mlp: %d items with %d/%d bytes: %w", n, runsLen(ins), runsLen(outs), backend.ErrInvalidValue)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		return fmt.Errorf("cuda mlp: closed: %w", backend.ErrContextDestroyed)
	}
	fresh, err := g.r.ensure()
	if fresh {
		g.capN = 0 // the old buffers went with the old context
	}
	if err != nil {
		return err
	}
	if err := g.reserve(n); err != nil {
		return err
	}
	params := Pack(uint64(g.r.bufs[0]), g.nl, uint64(g.r.bufs[1]), uint64(g.in), uint64(g.out), uint64(g.sc), uint64(n), g.maxw)
	return g.run(g.r.ctx, g.r.stream, g.r.fns[0], mlpBlock, n, g.inW, g.outW, ins, outs, params)
}

func (g *MLP) reserve(n int) error {
	return g.batchBufs.reserve(g.r.ctx, n, g.inW, g.outW, g.maxw)
}
