package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// benchShapes are the models lake serves: the Aurora policy, the
// flow-size predictor and a LinnOS-sized classifier.
var benchShapes = []struct {
	name  string
	sizes []int
	acts  []model.Activation
}{
	{"aurora-30-32-16-1-tanh", []int{30, 32, 16, 1}, []model.Activation{model.Tanh, model.Tanh, model.Identity}},
	{"flowsize-5-5-5-1-relu", []int{5, 5, 5, 1}, []model.Activation{model.ReLU, model.ReLU, model.Identity}},
	{"linnos-31-256-2-relu", []int{31, 256, 2}, []model.Activation{model.ReLU, model.Identity}},
}

// BenchmarkInference compares one query on the float model (MLP.Forward,
// the userspace baseline) with the int8 snapshot (Snapshot.Run, float in
// and out) and the integer-only entry point (RunQuantized) in the same run.
func BenchmarkInference(b *testing.B) {
	for _, sh := range benchShapes {
		m, err := model.NewMLP(sh.sizes, sh.acts, 1)
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		xs := make([][]float32, 256)
		for i := range xs {
			xs[i] = make([]float32, sh.sizes[0])
			for j := range xs[i] {
				xs[i][j] = float32(r.NormFloat64())
			}
		}
		s, err := Quantize(m, xs, Options{PerChannel: true})
		if err != nil {
			b.Fatal(err)
		}
		out := make([]float32, m.OutputDim())
		b.Run(sh.name+"/float", func(b *testing.B) {
			var sc model.Scratch
			for i := 0; b.Loop(); i++ {
				_ = m.Forward(xs[i&255], out, &sc)
			}
		})
		b.Run(sh.name+"/int8", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				_ = s.Run(xs[i&255], out)
			}
		})
		qin := make([]int32, sh.sizes[0])
		qout := make([]int32, m.OutputDim())
		for j, v := range xs[0] {
			qin[j] = snapshot.QuantizeValue(v, s.Input, s.DType)
		}
		b.Run(sh.name+"/int8-quantized-io", func(b *testing.B) {
			for b.Loop() {
				_ = s.RunQuantized(qin, qout)
			}
		})
	}
}
