package vecmath

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkKernels times each kernel at every level on LinnOS- and
// Aurora-sized shapes.
func BenchmarkKernels(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n, k = 256, 16
	acc, w, x := make([]int32, n), make([]int32, n*k), make([]int32, k)
	acc64, w64 := make([]int64, n), make([]int64, n*k)
	y, wf, xf := make([]float32, n), make([]float32, n*k), make([]float32, k)
	mult, left, right := make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range w {
		w[i], w64[i], wf[i] = int32(r.Uint32()), int64(int32(r.Uint32())), r.Float32()
	}
	for i := range x {
		x[i], xf[i] = int32(r.IntN(10)), r.Float32()
	}
	for i := range mult {
		mult[i], right[i] = 1<<30+int32(r.IntN(1<<30)), int32(r.IntN(12))
	}
	defer SetLevel(Detected())
	for _, l := range Supported() {
		SetLevel(l)
		b.Run(fmt.Sprintf("DotPairs16/%v", l), func(b *testing.B) {
			for b.Loop() {
				DotPairs16(acc, w, x)
			}
		})
		b.Run(fmt.Sprintf("MulAccI64/%v", l), func(b *testing.B) {
			for b.Loop() {
				MulAccI64(acc64, w64[:n*k], x)
			}
		})
		b.Run(fmt.Sprintf("DotI64x2/%v", l), func(b *testing.B) {
			for b.Loop() {
				DotI64x2(acc, w64[:n], w64[n:2*n])
			}
		})
		b.Run(fmt.Sprintf("Requant32/%v", l), func(b *testing.B) {
			for b.Loop() {
				Requant(acc[:32], acc[:32], mult[:32], left[:32], right[:32], 3, -128, 127)
			}
		})
		b.Run(fmt.Sprintf("MulAddColsF32/%v", l), func(b *testing.B) {
			for b.Loop() {
				MulAddColsF32(y, wf, xf, false)
			}
		})
	}
}
