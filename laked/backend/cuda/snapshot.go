//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// Snapshot runs a LiteFlow snapshot's batches on the GPU with the shared
// C engine (lakelib/include/lake_snapshot.h): the image is uploaded and
// built on the device once (lake_snapshot_build, which validates it
// again), then every batch is one lake_snapshot_run launch, one thread
// per item, bit for bit snapshot.RunQuantized. The built model holds
// device pointers, so its context is trusted (laked's own). Safe for
// concurrent use (batches are serialised).
type Snapshot struct {
	owned         // r: kernels: build, run; consts: the image
	imgLen        int
	inDim, outDim int
	built         backend.DevPtr // the built model (0: not built in this context)
	mem, ret      backend.DevPtr
	batchBufs
}

// NewSnapshot prepares the snapshot image img (the snapshot codec) on b.
func NewSnapshot(b *Backend, img []byte) (*Snapshot, error) {
	s, err := snapshot.Decode(img)
	if err != nil {
		return nil, fmt.Errorf("cuda snapshot: %w: %w", err, backend.ErrInvalidValue)
	}
	if len(img) > SnapshotMaxImage {
		return nil, fmt.Errorf("cuda snapshot: image of %d bytes: %w", len(img), backend.ErrInvalidValue)
	}
	r, err := newResident(b, true, []string{"lake_snapshot_build", "lake_snapshot_run"}, img)
	if err != nil {
		return nil, err
	}
	g := &Snapshot{owned: owned{r: r}, imgLen: len(img), inDim: s.InputDim(), outDim: s.OutputDim()}
	if err := g.build(); err != nil {
		r.ctx.Destroy()
		return nil, err
	}
	return g, nil
}

// build runs lake_snapshot_build in the (current) context.
func (g *Snapshot) build() error {
	c := g.r.ctx
	memlen := SnapshotMemBytes(g.imgLen)
	var err error
	if g.mem, err = c.MemAlloc(memlen); err != nil {
		return err
	}
	if g.ret, err = c.MemAlloc(16); err != nil {
		return err
	}
	one := backend.Dim3{X: 1, Y: 1, Z: 1}
	p := Pack(uint64(g.r.bufs[0]), uint64(g.imgLen), uint64(g.mem), memlen, uint64(g.ret))
	if err := c.LaunchKernel(g.r.fns[0], one, one, 0, 0, p); err != nil {
		return err
	}
	var ret [16]byte
	if err := c.MemcpyDtoH(ret[:], g.ret); err != nil {
		return err
	}
	rc, off := int64(binary.LittleEndian.Uint64(ret[:])), int64(binary.LittleEndian.Uint64(ret[8:]))
	if rc != 0 || off < 0 || uint64(off) >= memlen {
		return fmt.Errorf("cuda snapshot: lake_snap_build on the GPU returned %d: %w", rc, backend.ErrInvalidValue)
	}
	g.built = g.mem + backend.DevPtr(off)
	return nil
}

// snapBlock is lake_snapshot_run's block size (threads, one item each).
const snapBlock = 128

// RunQuantized runs n items: in holds n×InputDim quantized int32s, out
// receives n×OutputDim (little-endian), as snapshot.RunQuantized.
func (g *Snapshot) RunQuantized(in, out []byte, n int) error {
	if n <= 0 || len(in) != 4*n*g.inDim || len(out) != 4*n*g.outDim {
		return fmt.Errorf("cuda snapshot: %d items with %d/%d bytes: %w", n, len(in), len(out), backend.ErrInvalidValue)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		return fmt.Errorf("cuda snapshot: closed: %w", backend.ErrContextDestroyed)
	}
	fresh, err := g.r.ensure()
	if fresh {
		g.capN, g.built = 0, 0
	}
	if err != nil {
		return err
	}
	if g.built == 0 {
		if err := g.build(); err != nil {
			return err
		}
	}
	if err := g.reserve(n); err != nil {
		return err
	}
	p := Pack(uint64(g.built), uint64(g.in), uint64(g.out), uint64(g.sc), uint64(n))
	return g.run(g.r.ctx, g.r.stream, g.r.fns[1], snapBlock, n, g.inDim, g.outDim, [][]byte{in}, [][]byte{out}, p)
}

func (g *Snapshot) reserve(n int) error {
	return g.batchBufs.reserve(g.r.ctx, n, g.inDim, g.outDim, SnapshotMaxWidth)
}
