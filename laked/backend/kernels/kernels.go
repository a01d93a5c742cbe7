package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

// Module and kernel names of the builtin module.
const (
	ModuleName       = "lake_builtin"
	KernelVectorAdd  = "vector_add"
	KernelMLPForward = "mlp_forward"
)

var (
	registerOnce sync.Once
	registerErr  error
)

// Register adds module ModuleName to the CPU backend's registry. It is
// idempotent and safe to call from several goroutines; every call returns
// the result of the first.
func Register() error {
	registerOnce.Do(func() {
		registerErr = cpu.RegisterModule(ModuleName, map[string]cpu.KernelFunc{
			KernelVectorAdd:  VectorAdd,
			KernelMLPForward: MLPForward,
		})
	})
	return registerErr
}

// VectorAdd is the vector_add kernel. Parameters: a, b, c (device
// pointers to float32, 4-byte aligned) and n; it sets c[i] = a[i] + b[i]
// for every i < n (grid-stride semantics: the launch shape does not limit
// coverage). c may alias a or b exactly.
func VectorAdd(k *cpu.KernelContext) error {
	if err := k.CheckParams(4); err != nil {
		return err
	}
	n := k.Params[3]
	a, err := k.Mem.Float32s(k.Ptr(0), n)
	if err != nil {
		return fmt.Errorf("a: %w", err)
	}
	b, err := k.Mem.Float32s(k.Ptr(1), n)
	if err != nil {
		return fmt.Errorf("b: %w", err)
	}
	c, err := k.Mem.Float32s(k.Ptr(2), n)
	if err != nil {
		return fmt.Errorf("c: %w", err)
	}
	// In chunks, so that an aborted or overlong launch stops promptly.
	for off := 0; off < len(c); off += checkEvery {
		if err := k.Err(); err != nil {
			return err
		}
		end := min(off+checkEvery, len(c))
		addFloat32(c[off:end], a[off:end], b[off:end])
	}
	return nil
}

// checkEvery is how many elements a kernel processes between two
// KernelContext.Err checks (a few microseconds of work).
const checkEvery = 1 << 14

// addFloat32 sets c[i] = a[i] + b[i] for i < len(c).
func addFloat32(c, a, b []float32) {
	a = a[:len(c)]
	b = b[:len(c)]
	for i := range c {
		c[i] = a[i] + b[i]
	}
}

// MLPForward is the mlp_forward kernel. Parameters: model (device pointer
// to an MLP blob, 4-byte aligned), in (n*InDim float32), out (n*OutDim
// float32), n. The blob's structure (header, layer table, length) is
// validated on every launch and its weights are used in place, without
// copying. Unlike ParseMLP, a launch does not scan the weights for NaN or
// infinity (that would cost as much as a one-item forward pass); such
// values simply propagate to the outputs.
func MLPForward(k *cpu.KernelContext) error {
	if err := k.CheckParams(4); err != nil {
		return err
	}
	m, err := mlpAt(k.Mem, k.Ptr(0))
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	n := k.Params[3]
	if n > math.MaxInt32 {
		return fmt.Errorf("item count %d too large: %w", n, backend.ErrInvalidValue)
	}
	in, err := k.Mem.Float32s(k.Ptr(1), n*uint64(m.InDim()))
	if err != nil {
		return fmt.Errorf("in: %w", err)
	}
	out, err := k.Mem.Float32s(k.Ptr(2), n*uint64(m.OutDim()))
	if err != nil {
		return fmt.Errorf("out: %w", err)
	}
	// In chunks of whole lane groups (so the results are those of one
	// Forward call), checking between them whether the launch must stop.
	const chunk = 64 * lanes
	ind, od := m.InDim(), m.OutDim()
	for off := 0; off < int(n); off += chunk {
		if err := k.Err(); err != nil {
			return err
		}
		cnt := min(chunk, int(n)-off)
		if err := m.Forward(in[off*ind:(off+cnt)*ind], out[off*od:(off+cnt)*od], cnt); err != nil {
			return err
		}
	}
	return nil
}

// mlpAt builds an MLP over the blob at device address p without copying
// its weights.
func mlpAt(mem cpu.Memory, p backend.DevPtr) (*MLP, error) {
	if p%4 != 0 {
		return nil, fmt.Errorf("blob at %#x is misaligned (needs 4 bytes): %w", uint64(p), backend.ErrInvalidValue)
	}
	hdr, err := mem.Bytes(p, headerLen)
	if err != nil {
		return nil, err
	}
	nl := binary.LittleEndian.Uint32(hdr[8:])
	if nl < 1 || nl > MaxLayers {
		return nil, fmt.Errorf("layer count %d not in 1..%d: %w", nl, MaxLayers, ErrInvalidModel)
	}
	tblLen := uint64(headerLen + 8*nl)
	tbl, err := mem.Bytes(p, tblLen)
	if err != nil {
		return nil, err
	}
	// Copy the table: device memory may change under us, and layout and
	// the float view below must agree on one version of it.
	tbl = append([]byte(nil), tbl...)
	in, specs, total, err := layout(tbl)
	if err != nil {
		return nil, err
	}
	all, err := mem.Float32s(p, uint64(total)/4)
	if err != nil {
		return nil, err
	}
	return build(in, specs, all[tblLen/4:], false)
}
