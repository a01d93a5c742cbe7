package cuda

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

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
