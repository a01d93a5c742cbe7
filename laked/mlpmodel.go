package laked

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"unsafe"

	"github.com/lakeos/lake/laked/backend/kernels"
)

// MLPModel serves a float32 MLP (the CPU backend's mlp_forward kernel
// format) through predict: an input record is InDim float32s, an output
// record OutDim float32s, little-endian. Launching mlp_forward and calling
// predict run the same code (kernels.MLP.Forward).
type MLPModel struct {
	name string
	m    *kernels.MLP
}

// NewMLPModel parses an MLP blob (see kernels.EncodeMLP) and serves it
// under name.
func NewMLPModel(name string, blob []byte) (*MLPModel, error) {
	m, err := kernels.ParseMLP(blob)
	if err != nil {
		return nil, fmt.Errorf("laked: model %q: %w", name, err)
	}
	return &MLPModel{name: name, m: m}, nil
}

// MLP is the served network (for a GPU path that computes the same).
func (m *MLPModel) MLP() *kernels.MLP { return m.m }

// Info implements Model.
func (m *MLPModel) Info() ModelInfo {
	return ModelInfo{Name: m.name, InputBytes: 4 * m.m.InDim(), OutputBytes: 4 * m.m.OutDim()}
}

// Predict implements Model.
func (m *MLPModel) Predict(in, out []byte, n int) error {
	return m.m.Forward(bytesAsFloat32(in), bytesAsFloat32(out), n)
}

// bytesAsFloat32 views little-endian float32 records in place (lake runs
// on little-endian hosts only; see shm's package doc). Buffers come from
// Go allocations and are 8-byte aligned.
func bytesAsFloat32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// DemoMLPBlob builds a deterministic random MLP (in -> hidden relu -> out)
// for demos and tests.
func DemoMLPBlob(seed int64, in, hidden, out int) []byte {
	rng := rand.New(rand.NewSource(seed))
	mk := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.5)
		}
		return v
	}
	blob, err := kernels.EncodeMLP(in, []kernels.Layer{
		{Out: hidden, Act: kernels.ActReLU, W: mk(hidden * in), B: mk(hidden)},
		{Out: out, Act: kernels.ActNone, W: mk(out * hidden), B: mk(out)},
	})
	if err != nil {
		panic(err) // shapes above are always valid
	}
	return blob
}

// Float32sToBytes encodes float32s little-endian (a helper for clients).
func Float32sToBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// BytesToFloat32s decodes little-endian float32s.
func BytesToFloat32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
