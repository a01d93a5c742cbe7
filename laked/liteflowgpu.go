package laked

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/lakeos/lake/liteflow/snapshot"
)

// SnapshotRunner runs quantized batches of one LiteFlow snapshot (n ×
// InputDim int32 in, n × OutputDim int32 out, little-endian), as
// snapshot.RunQuantized does: the CUDA backend's cuda.Snapshot.
type SnapshotRunner func(in, out []byte, n int) error

// maxGPUSnapshots bounds the snapshot versions a LiteFlow GPU path keeps
// prepared (flows pinned to old versions are few and short-lived).
const maxGPUSnapshots = 4

// GPUPath returns the model's GPU path for WithGPU: each record is routed
// exactly as Predict routes it (router.Pin: a flow keeps the snapshot it
// started with), records are grouped by snapshot version, quantized, run
// by the runner prepare made for that version from its image (the
// snapshot codec), and dequantized. prepare is called once per version
// (the last maxGPUSnapshots are kept).
func (m *LiteFlowModel) GPUPath(prepare func(img []byte) (SnapshotRunner, error)) GPUFunc {
	g := &liteflowGPU{m: m, prepare: prepare, runners: map[uint64]SnapshotRunner{}}
	return g.run
}

type liteflowGPU struct {
	m       *LiteFlowModel
	prepare func(img []byte) (SnapshotRunner, error)

	mu      sync.Mutex // one batch at a time; guards runners
	runners map[uint64]SnapshotRunner
	order   []uint64 // versions, oldest first
}

type pinned struct {
	s       *snapshot.Snapshot
	release func()
	items   []int
}

func (g *liteflowGPU) runner(v uint64, s *snapshot.Snapshot) (SnapshotRunner, error) {
	if r, ok := g.runners[v]; ok {
		return r, nil
	}
	img, err := snapshot.Encode(s)
	if err != nil {
		return nil, err
	}
	r, err := g.prepare(img)
	if err != nil {
		return nil, err
	}
	if len(g.order) >= maxGPUSnapshots {
		delete(g.runners, g.order[0])
		g.order = g.order[1:]
	}
	g.runners[v] = r
	g.order = append(g.order, v)
	return r, nil
}

func (g *liteflowGPU) run(in, out []byte, n int) error {
	m := g.m
	ib, ob := 8+4*m.in, 4*m.out
	if n <= 0 || len(in) != n*ib || len(out) != n*ob {
		return fmt.Errorf("laked: liteflow gpu: %d items with %d/%d bytes", n, len(in), len(out))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	groups := map[uint64]*pinned{}
	defer func() {
		for _, p := range groups {
			p.release()
		}
	}()
	var versions []uint64
	for i := 0; i < n; i++ {
		flow := binary.LittleEndian.Uint64(in[i*ib:])
		s, v, release, err := m.r.Pin(flow)
		if err != nil {
			return fmt.Errorf("laked: liteflow gpu: item %d: %w", i, err)
		}
		p, ok := groups[v]
		if ok {
			release() // the group already holds this version
		} else {
			p = &pinned{s: s, release: release}
			groups[v] = p
			versions = append(versions, v)
		}
		p.items = append(p.items, i)
	}
	for _, v := range versions {
		p := groups[v]
		r, err := g.runner(v, p.s)
		if err != nil {
			return fmt.Errorf("laked: liteflow gpu: snapshot v%d: %w", v, err)
		}
		k := len(p.items)
		qin, qout := make([]byte, 4*k*m.in), make([]byte, 4*k*m.out)
		for j, i := range p.items {
			rec := in[i*ib+8 : (i+1)*ib]
			for d := 0; d < m.in; d++ {
				x := math.Float32frombits(binary.LittleEndian.Uint32(rec[4*d:]))
				binary.LittleEndian.PutUint32(qin[4*(j*m.in+d):], uint32(snapshot.QuantizeValue(x, p.s.Input, p.s.DType)))
			}
		}
		if err := r(qin, qout, k); err != nil {
			return err
		}
		oq := p.s.Output()
		for j, i := range p.items {
			o := out[i*ob : (i+1)*ob]
			for d := 0; d < m.out; d++ {
				q := int32(binary.LittleEndian.Uint32(qout[4*(j*m.out+d):]))
				binary.LittleEndian.PutUint32(o[4*d:], math.Float32bits(snapshot.Dequantize(q, oq)))
			}
		}
	}
	return nil
}
