package laked

import (
	"errors"
	"fmt"
	"math/bits"
)

// GPURunsFunc runs a batch of n records of a model on a GPU, copying
// them straight between host memory and the device: ins holds the input
// records in batch order as contiguous runs, one host-to-device copy
// each, and outs the output records likewise, one device-to-host copy
// each; together they hold exactly n records each. A run lies in a
// client's arena, registered with the GPU backend (cuMemHostRegister), so
// that its copy is DMA, or in a laked buffer (a staged request). The
// function must not keep the runs after it returns.
type GPURunsFunc func(ins, outs [][]byte, n int) error

// GPURunsModel is a GPUModel whose GPU path copies runs of host memory
// (GPURunsFunc). laked leaves such a model's inputs in the arena of a
// client whose region the GPU backend registered, and a batch placed on
// the GPU copies them from there by DMA and writes the outputs back the
// same way: no staging copy in laked. Inputs of other clients are staged
// as for every model, and counted (Stats.GPUStagedItems).
type GPURunsModel interface {
	GPUModel
	PredictGPURuns(ins, outs [][]byte, n int) error
}

// gpuRunsModel serves a Model with a GPURunsFunc as its GPU path.
type gpuRunsModel struct {
	Model
	runs GPURunsFunc
}

// WithGPURuns serves m with runs as its GPU path (see GPURunsModel);
// runs must compute what m computes. A nil runs returns m unchanged.
func WithGPURuns(m Model, runs GPURunsFunc) Model {
	if runs == nil || m == nil {
		return m
	}
	return &gpuRunsModel{Model: m, runs: runs}
}

// PredictGPU implements GPUModel: contiguous buffers are one run each.
func (g *gpuRunsModel) PredictGPU(in, out []byte, n int) error {
	if err := checkGPUShape(g.Info(), uint64(len(in)), uint64(len(out)), n); err != nil {
		return err
	}
	return g.runs([][]byte{in}, [][]byte{out}, n)
}

// PredictGPURuns implements GPURunsModel after checking that the runs
// hold exactly n records.
func (g *gpuRunsModel) PredictGPURuns(ins, outs [][]byte, n int) error {
	if err := checkGPUShape(g.Info(), runsLen(ins), runsLen(outs), n); err != nil {
		return err
	}
	return g.runs(ins, outs, n)
}

func runsLen(runs [][]byte) uint64 {
	var n uint64
	for _, r := range runs {
		n += uint64(len(r))
	}
	return n
}

// hostMem is host memory a copy run lies in: a client's arena
// (*shm.Region) or a laked buffer (*stagedMem). ArenaRange bounds-checks
// every range against the memory.
type hostMem interface {
	ArenaRange(off, n uint64) ([]byte, error)
}

// stagedMem is a laked buffer as hostMem.
type stagedMem struct{ b []byte }

func (m *stagedMem) ArenaRange(off, n uint64) ([]byte, error) {
	size := uint64(len(m.b))
	if off > size || n > size-off {
		return nil, fmt.Errorf("staged range [%d, +%d) outside %d bytes", off, n, size)
	}
	return m.b[off : off+n : off+n], nil
}

// recSpan is where one request's records lie: items records, rec bytes
// each, from byte off of mem.
type recSpan struct {
	mem   hostMem
	off   uint64
	items int
}

// copyRun is one copy: n bytes from byte off of mem.
type copyRun struct {
	mem    hostMem
	off, n uint64
}

var errSpan = errors.New("laked: record span overflows")

// planRuns appends to dst the copies that move records [lo, hi) of a
// batch whose requests lie at spans (in batch order; rec bytes a record):
// one run per maximal stretch of records that are adjacent in the same
// memory, so requests a client placed back to back in its arena cost one
// copy. It plans nothing and fails when a span's byte range overflows or
// [lo, hi) is not inside the batch; bounds against the memory itself are
// checked when a run is resolved (resolveRuns).
func planRuns(dst []copyRun, spans []recSpan, rec uint64, lo, hi int) ([]copyRun, error) {
	start := len(dst)
	if lo < 0 || hi < lo {
		return dst, fmt.Errorf("laked: record range [%d, %d): %w", lo, hi, errSpan)
	}
	first := 0 // batch index of the span's first record
	for _, s := range spans {
		if s.items < 0 {
			return dst[:start], fmt.Errorf("laked: span of %d records: %w", s.items, errSpan)
		}
		spanStart := first
		first += s.items
		a, b := max(lo, spanStart), min(hi, first)
		if a >= b {
			continue
		}
		hiOff, off := bits.Mul64(uint64(a-spanStart), rec)
		if hiOff != 0 {
			return dst[:start], errSpan
		}
		off, carry := bits.Add64(s.off, off, 0)
		hiN, n := bits.Mul64(uint64(b-a), rec)
		if carry != 0 || hiN != 0 {
			return dst[:start], errSpan
		}
		if _, carry := bits.Add64(off, n, 0); carry != 0 {
			return dst[:start], errSpan
		}
		if k := len(dst); k > start && dst[k-1].mem == s.mem && dst[k-1].off+dst[k-1].n == off {
			dst[k-1].n += n
			continue
		}
		dst = append(dst, copyRun{mem: s.mem, off: off, n: n})
	}
	if first < hi {
		return dst[:start], fmt.Errorf("laked: records [%d, %d) of a batch of %d: %w", lo, hi, first, errSpan)
	}
	return dst, nil
}

// resolveRuns appends to dst the host memory of every run, each checked
// against its memory's bounds (a client's arena: shm.Region.ArenaRange).
func resolveRuns(dst [][]byte, runs []copyRun) ([][]byte, error) {
	start := len(dst)
	for _, r := range runs {
		b, err := r.mem.ArenaRange(r.off, r.n)
		if err != nil {
			clear(dst[start:])
			return dst[:start], err
		}
		dst = append(dst, b)
	}
	return dst, nil
}
