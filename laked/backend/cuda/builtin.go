package cuda

import (
	_ "embed"
	"fmt"
	"math"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
)

//go:generate ./ptx/gen.sh

// BuiltinModule is the name under which every context may load lake's
// own kernels (ptx/lake.cu): ModuleLoad with exactly these bytes loads
// the committed PTX, as the CPU backend loads its registered modules by
// name.
const BuiltinModule = "lake"

// BuiltinPTX is the PTX of ptx/lake.cu.
//
//go:embed ptx/lake.ptx
var BuiltinPTX []byte

// Kernel is a built-in kernel's launch contract.
type Kernel struct {
	Sig Signature
	// Block, when non-zero, is the only block shape the kernel accepts.
	Block backend.Dim3
	// Trusted kernels may be launched only from trusted contexts.
	Trusted bool
}

// maxItems bounds the count parameter of the built-in kernels: counts
// beyond it could not have their extents allocated anyway (the bound
// keeps every extent product far from overflow).
const maxItems = math.MaxUint32

// LinnOS parameter counts (in elements) of the packed layer buffer that
// the LinnOS kernels take: every layer's weights then its bias.
func linnosParams(extra int) uint64 {
	var n uint64
	for i := 0; i < extra+2; i++ {
		in, out := linnos.LayerDims(extra, i)
		n += uint64(in*out + out)
	}
	return n
}

// LinnOSBlock is the block shape of the LinnOS kernels: one thread per
// hidden unit.
var LinnOSBlock = backend.Dim3{X: linnos.HiddenWidth, Y: 1, Z: 1}

func linnosKernel(extra int, elem uint64) Kernel {
	return Kernel{
		Sig: Signature{
			{Name: "params", Kind: Pointer, Fixed: elem * linnosParams(extra), CountIdx: -1},
			{Name: "in", Kind: Pointer, PerCount: 4 * linnos.NumInputs, CountIdx: 3},
			{Name: "out", Kind: Pointer, PerCount: 4, CountIdx: 3},
			{Name: "n", Kind: Scalar, Max: maxItems},
		},
		Block: LinnOSBlock,
	}
}

// Builtins are the kernels of BuiltinModule and their contracts. The
// parameter lists must match ptx/lake.cu.
var Builtins = map[string]Kernel{
	"lake_vector_add": {Sig: Signature{
		{Name: "a", Kind: Pointer, PerCount: 4, CountIdx: 3},
		{Name: "b", Kind: Pointer, PerCount: 4, CountIdx: 3},
		{Name: "c", Kind: Pointer, PerCount: 4, CountIdx: 3},
		{Name: "n", Kind: Scalar, Max: maxItems},
	}},
	// lake_spin outlasts a launch timeout: for its test, trusted only.
	"lake_spin": {Sig: Signature{
		{Name: "done", Kind: Pointer, Fixed: 8, CountIdx: -1},
		{Name: "cycles", Kind: Scalar, Max: 1 << 36},
	}, Block: backend.Dim3{X: 1, Y: 1, Z: 1}, Trusted: true},
	// lake_fault writes anywhere: for the isolation test, trusted only.
	"lake_fault": {Sig: Signature{
		{Name: "p", Kind: Scalar, Max: math.MaxUint64},
		{Name: "v", Kind: Scalar, Max: math.MaxUint64},
	}, Trusted: true},
	// lake_mlp reads a layer table in device memory: trusted only.
	"lake_mlp": {Sig: Signature{
		{Name: "table", Kind: Scalar, Max: math.MaxUint64},
		{Name: "nlayers", Kind: Scalar, Max: kernels.MaxLayers},
		{Name: "params", Kind: Scalar, Max: math.MaxUint64},
		{Name: "in", Kind: Scalar, Max: math.MaxUint64},
		{Name: "out", Kind: Scalar, Max: math.MaxUint64},
		{Name: "scratch", Kind: Scalar, Max: math.MaxUint64},
		{Name: "n", Kind: Scalar, Max: maxItems},
		{Name: "maxw", Kind: Scalar, Max: kernels.MaxWidth},
	}, Trusted: true},
	// LiteFlow snapshots (lakelib/include/lake_snapshot.h on the GPU).
	"lake_snapshot_build": {Sig: Signature{
		{Name: "img", Kind: Pointer, PerCount: 1, CountIdx: 1},
		{Name: "len", Kind: Scalar, Max: SnapshotMaxImage},
		{Name: "mem", Kind: Pointer, PerCount: 1, CountIdx: 3},
		{Name: "memlen", Kind: Scalar, Max: math.MaxUint32},
		{Name: "ret", Kind: Pointer, Fixed: 16, CountIdx: -1},
	}, Block: backend.Dim3{X: 1, Y: 1, Z: 1}},
	// lake_snapshot_run follows pointers stored in the built model: trusted only.
	"lake_snapshot_run": {Sig: Signature{
		{Name: "snap", Kind: Scalar, Max: math.MaxUint64},
		{Name: "in", Kind: Scalar, Max: math.MaxUint64},
		{Name: "out", Kind: Scalar, Max: math.MaxUint64},
		{Name: "scratch", Kind: Scalar, Max: math.MaxUint64},
		{Name: "n", Kind: Scalar, Max: maxItems},
	}, Trusted: true},
	"lake_linnos_int0":   linnosKernel(0, 8),
	"lake_linnos_int1":   linnosKernel(1, 8),
	"lake_linnos_int2":   linnosKernel(2, 8),
	"lake_linnos_float0": linnosKernel(0, 4),
	"lake_linnos_float1": linnosKernel(1, 4),
	"lake_linnos_float2": linnosKernel(2, 4),
}

// LinnOSParamsInt packs an integer LinnOS model's layers the way the
// lake_linnos_int kernels read them: per layer the row-major weights,
// then the bias, as int64.
func LinnOSParamsInt(m *linnos.IntModel) []int64 {
	var p []int64
	for i := 0; i < m.Extra()+2; i++ {
		w, b := m.Layer(i)
		p = append(p, w...)
		p = append(p, b...)
	}
	return p
}

// LinnOSParamsFloat packs a float LinnOS model's layers for the
// lake_linnos_float kernels.
func LinnOSParamsFloat(m *linnos.FloatModel) []float32 {
	var p []float32
	for i := range m.W {
		p = append(p, m.W[i]...)
		p = append(p, m.B[i]...)
	}
	return p
}

// Snapshot limits of lake_snapshot.h (LAKE_SNAP_MAX_SIZE, _MAX_WIDTH).
const (
	SnapshotMaxImage = 64 << 20
	SnapshotMaxWidth = 1024
)

// SnapshotMemBytes bounds the build memory lake_snap_build needs for an
// image of n bytes: the model struct plus, per weight byte, at most the
// folded sums, multipliers, shifts and tables it derives (generous; a
// too-small buffer is reported as -ENOSPC, never overrun).
func SnapshotMemBytes(n int) uint64 { return 16*uint64(n) + 64<<10 }

// MLPTable packs an MLP for lake_mlp: the layer table (in, out,
// activation per layer), the parameters (per layer the weights then the
// biases) and the widest layer. Every activation of the blob format has
// a GPU kernel (none, ReLU, and tanh and sigmoid computed as kernels'
// deterministic ones); an unknown one is refused.
func MLPTable(m *kernels.MLP) (table []uint32, params []float32, maxw int, err error) {
	maxw = m.InDim()
	for i := 0; i < m.NumLayers(); i++ {
		in, out, act, w, b := m.Layer(i)
		if act > kernels.ActSigmoid {
			return nil, nil, 0, fmt.Errorf("cuda: mlp layer %d: activation %v has no GPU kernel: %w", i, act, backend.ErrNotSupported)
		}
		table = append(table, uint32(in), uint32(out), uint32(act))
		params = append(params, w...)
		params = append(params, b...)
		maxw = max(maxw, out)
	}
	return table, params, maxw, nil
}
