package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/lakeos/lake/laked/backend"
)

// BenchmarkVectorAdd compares vector_add launched through the CPU
// backend with two baselines measured in the same run: "go-loop" (the
// same loop over Go float32 slices, the best the launch path can reach)
// and "naive-bytes" (decoding and encoding each float from byte-addressed
// memory, the obvious implementation over []byte device memory).
func BenchmarkVectorAdd(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 20} {
		a, bb := randomInputs(1, n), randomInputs(2, n)
		c := make([]float32, n)
		b.Run(fmt.Sprintf("n=%d/go-loop", n), func(b *testing.B) {
			b.SetBytes(int64(12 * n))
			for b.Loop() {
				naiveAdd(c, a, bb, n)
			}
		})
		ab, bbb, cb := f32bytes(a), f32bytes(bb), make([]byte, 4*n)
		b.Run(fmt.Sprintf("n=%d/naive-bytes", n), func(b *testing.B) {
			b.SetBytes(int64(12 * n))
			for b.Loop() {
				for i := 0; i < n; i++ {
					x := math.Float32frombits(binary.LittleEndian.Uint32(ab[4*i:]))
					y := math.Float32frombits(binary.LittleEndian.Uint32(bbb[4*i:]))
					binary.LittleEndian.PutUint32(cb[4*i:], math.Float32bits(x+y))
				}
			}
		})
		for _, stream := range []bool{false, true} {
			name := "launch-default-stream"
			if stream {
				name = "launch-stream+sync"
			}
			b.Run(fmt.Sprintf("n=%d/%s", n, name), func(b *testing.B) {
				ctx, va, _ := setup(b)
				pa, pb := upload(b, ctx, ab), upload(b, ctx, bbb)
				pc, err := ctx.MemAlloc(uint64(4 * n))
				if err != nil {
					b.Fatal(err)
				}
				var s backend.Handle
				if stream {
					if s, err = ctx.StreamCreate(); err != nil {
						b.Fatal(err)
					}
				}
				params := pack(uint64(pa), uint64(pb), uint64(pc), uint64(n))
				grid, block := backend.Dim3{X: uint32((n + 255) / 256), Y: 1, Z: 1}, backend.Dim3{X: 256, Y: 1, Z: 1}
				b.SetBytes(int64(12 * n))
				for b.Loop() {
					if err := ctx.LaunchKernel(va, grid, block, 0, s, params); err != nil {
						b.Fatal(err)
					}
					if stream {
						if err := ctx.StreamSynchronize(s); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// naiveAdd is the obvious loop, without bounds-check hints.
//
//go:noinline
func naiveAdd(c, a, b []float32, n int) {
	for i := 0; i < n; i++ {
		c[i] = a[i] + b[i]
	}
}

// naiveForward32 is the straightforward float32 implementation: one item
// at a time, fresh slices per layer, a single accumulator.
func naiveForward32(in int, layers []Layer, x, out []float32, n int) {
	o := 0
	for it := 0; it < n; it++ {
		cur := append([]float32(nil), x[it*in:(it+1)*in]...)
		for _, l := range layers {
			next := make([]float32, l.Out)
			for j := range next {
				s := l.B[j]
				for i, v := range cur {
					s += l.W[j*len(cur)+i] * v
				}
				switch l.Act {
				case ActReLU:
					if s < 0 {
						s = 0
					}
				case ActTanh:
					s = float32(math.Tanh(float64(s)))
				case ActSigmoid:
					s = float32(1 / (1 + math.Exp(-float64(s))))
				}
				next[j] = s
			}
			cur = next
		}
		o += copy(out[o:], cur)
	}
}

// BenchmarkMLPForward measures ns/item for the LinnOS-shaped model
// (31 -> 256 relu -> 2) through naiveForward32 (baseline), MLP.Forward
// (laked's predict path) and the mlp_forward kernel launch.
func BenchmarkMLPForward(b *testing.B) {
	const in = 31
	layers := randomModel(9, in, []int{256, 2}, []Activation{ActReLU, ActNone})
	blob, err := EncodeMLP(in, layers)
	if err != nil {
		b.Fatal(err)
	}
	m, err := ParseMLP(blob)
	if err != nil {
		b.Fatal(err)
	}
	perItem := func(b *testing.B, n int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
	}
	for _, n := range []int{1, 64, 1024} {
		x := randomInputs(5, n*in)
		out := make([]float32, 2*n)
		b.Run(fmt.Sprintf("batch=%d/naive", n), func(b *testing.B) {
			for b.Loop() {
				naiveForward32(in, layers, x, out, n)
			}
			perItem(b, n)
		})
		b.Run(fmt.Sprintf("batch=%d/Forward", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Forward(x, out, n); err != nil {
					b.Fatal(err)
				}
			}
			perItem(b, n)
		})
		b.Run(fmt.Sprintf("batch=%d/launch", n), func(b *testing.B) {
			ctx, _, mf := setup(b)
			pm, px := upload(b, ctx, blob), upload(b, ctx, f32bytes(x))
			po, err := ctx.MemAlloc(uint64(8 * n))
			if err != nil {
				b.Fatal(err)
			}
			params := pack(uint64(pm), uint64(px), uint64(po), uint64(n))
			for b.Loop() {
				if err := ctx.LaunchKernel(mf, one, one, 0, 0, params); err != nil {
					b.Fatal(err)
				}
			}
			perItem(b, n)
		})
	}
}
