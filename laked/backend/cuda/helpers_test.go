package cuda

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
)

func linnosModels(t testing.TB, extra int) (*linnos.FloatModel, *linnos.IntModel) {
	f, err := linnos.NewFloatModel(extra)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(extra), 9))
	for i := range f.W {
		s := float32(1 / math.Sqrt(float64(len(f.B[i]))))
		for k := range f.W[i] {
			f.W[i][k] = float32(r.NormFloat64()) * s
		}
		for k := range f.B[i] {
			f.B[i][k] = float32(r.NormFloat64()) * 0.3
		}
	}
	q, err := linnos.Quantize(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, q
}

func linnosInputs(n int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 3))
	v := make([]int32, n*linnos.NumInputs)
	for i := range v {
		if r.IntN(3) > 0 {
			v[i] = int32(r.IntN(10))
		}
	}
	return v
}

func i32bytes(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// normals returns n float32s drawn from r's normal distribution.
func normals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// reluMLP is an MLP of the layer widths sh (ReLU layers, the last one
// linear) with weights and biases drawn from r, encoded and parsed back.
func reluMLP(t testing.TB, r *rand.Rand, sh []int) *kernels.MLP {
	t.Helper()
	return actMLP(t, r, sh, kernels.ActReLU)
}

// actMLP is an MLP of the layer widths sh whose hidden layers take the
// activations acts in turn (the last layer is linear).
func actMLP(t testing.TB, r *rand.Rand, sh []int, acts ...kernels.Activation) *kernels.MLP {
	t.Helper()
	var layers []kernels.Layer
	for i := 1; i < len(sh); i++ {
		act := acts[(i-1)%len(acts)]
		if i == len(sh)-1 {
			act = kernels.ActNone
		}
		layers = append(layers, kernels.Layer{Out: sh[i], Act: act, W: normals(r, sh[i]*sh[i-1]), B: normals(r, sh[i])})
	}
	blob, err := kernels.EncodeMLP(sh[0], layers)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kernels.ParseMLP(blob)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
