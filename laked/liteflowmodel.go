package laked

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/lakeos/lake/liteflow/router"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// LiteFlowModel serves a LiteFlow router (an active/standby pair of
// integer snapshots with a flow cache) through predict. An input record
// is the flow id (u64) followed by InputDim float32s; an output record is
// OutputDim float32s; all little-endian. Every query of a flow is answered
// by the snapshot the flow started with, even while the adapter installs
// new snapshots (router.Install never blocks a query).
type LiteFlowModel struct {
	name    string
	r       *router.Router
	in, out int

	imgMu      sync.Mutex
	imgVersion uint64 // router version img encodes (0: none yet)
	img        []byte
}

// NewLiteFlowModel serves r under name; inDim and outDim must be the
// router's shape.
func NewLiteFlowModel(name string, r *router.Router, inDim, outDim int) (*LiteFlowModel, error) {
	if inDim < 1 || outDim < 1 || 8+4*inDim > MaxRecordBytes || 4*outDim > MaxRecordBytes {
		return nil, fmt.Errorf("laked: liteflow model %q: shape %d -> %d", name, inDim, outDim)
	}
	return &LiteFlowModel{name: name, r: r, in: inDim, out: outDim}, nil
}

// Router is the served router (the adapter installs snapshots into it).
func (m *LiteFlowModel) Router() *router.Router { return m.r }

// Image implements ImageExporter: the router's active snapshot in the
// snapshot codec (ErrNoImage while none is installed). An adapter that
// installs into a served router should call Server.TouchModel after
// Install, so that clients polling the version fetch the new image.
func (m *LiteFlowModel) Image() (string, []byte, error) {
	m.imgMu.Lock()
	defer m.imgMu.Unlock()
	if v := m.r.Active(); v != 0 && v == m.imgVersion {
		return ImageLiteFlow, m.img, nil
	}
	s, v := m.r.ActiveSnapshot()
	if s == nil {
		return "", nil, fmt.Errorf("%w: liteflow model %q has no snapshot installed", ErrNoImage, m.name)
	}
	if v != m.imgVersion {
		data, err := snapshot.Encode(s)
		if err != nil {
			return "", nil, fmt.Errorf("laked: liteflow model %q: %w", m.name, err)
		}
		m.img, m.imgVersion = data, v
	}
	return ImageLiteFlow, m.img, nil
}

// Info implements Model.
func (m *LiteFlowModel) Info() ModelInfo {
	return ModelInfo{Name: m.name, InputBytes: 8 + 4*m.in, OutputBytes: 4 * m.out}
}

// Predict implements Model: each record is answered by the snapshot its
// flow is pinned to. The batch goes to router.QueryBatch, which runs the
// records answered by one snapshot together (snapshot.RunBatch: several
// records per pass over the weights); each record's answer is what a
// query of it alone would give.
func (m *LiteFlowModel) Predict(in, out []byte, n int) error {
	ib, ob := 8+4*m.in, 4*m.out
	if n < 0 || len(in) != n*ib || len(out) != n*ob {
		return fmt.Errorf("laked: liteflow model: %d items with %d/%d bytes", n, len(in), len(out))
	}
	b := liteflowBufPool.Get().(*liteflowBufs)
	defer liteflowBufPool.Put(b)
	b.ids = slices.Grow(b.ids[:0], n)[:n]
	b.vers = slices.Grow(b.vers[:0], n)[:n]
	b.xs = slices.Grow(b.xs[:0], n*m.in)[:n*m.in]
	b.ys = slices.Grow(b.ys[:0], n*m.out)[:n*m.out]
	for i := 0; i < n; i++ {
		rec := in[i*ib : (i+1)*ib]
		b.ids[i] = binary.LittleEndian.Uint64(rec)
		x := b.xs[i*m.in : (i+1)*m.in]
		for j := range x {
			x[j] = math.Float32frombits(binary.LittleEndian.Uint32(rec[8+4*j:]))
		}
	}
	if err := m.r.QueryBatch(b.ids, b.xs, b.ys, b.vers); err != nil {
		return fmt.Errorf("laked: liteflow model: %w", err)
	}
	for i, v := range b.ys {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return nil
}

// liteflowBufs are one Predict call's flow ids, inputs, outputs and
// versions.
type liteflowBufs struct {
	ids, vers []uint64
	xs, ys    []float32
}

var liteflowBufPool = sync.Pool{New: func() any { return new(liteflowBufs) }}
