package snapshot

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/vecmath"
)

// randomSnapshot returns a valid snapshot with random shapes (widths that
// are and are not multiples of the vector widths), activations, per-tensor
// and per-channel multipliers over the whole valid range (including 0 and
// the extreme shifts), extreme int8 weights, biases up to the validation
// bound, and random tables.
func randomSnapshot(t testing.TB, r *rand.Rand) *Snapshot {
	t.Helper()
	s := &Snapshot{DType: DType(r.IntN(2))}
	lo, hi := s.DType.Range()
	q := func() QParams { return QParams{Scale: 0.01 + r.Float32(), Zero: lo + r.Int32N(hi-lo+1)} }
	s.Input = q()
	widths := []int{1, 2, 5, 15, 16, 17, 30, 31, 32, 33, 64, 100}
	in := widths[r.IntN(len(widths))]
	for range 1 + r.IntN(4) {
		out := widths[r.IntN(len(widths))]
		l := Layer{In: in, Out: out, Act: model.Activation(r.IntN(4)), PerChannel: r.IntN(2) == 0}
		l.OutQ = q()
		l.Pre = l.OutQ
		lut := l.Act == model.Tanh || l.Act == model.Sigmoid
		if lut {
			l.Pre = QParams{Scale: 0.01 + r.Float32(), Zero: TableLo + r.Int32N(TableHi-TableLo+1)}
			l.LUT = make([]int32, TableSize)
			for i := range l.LUT {
				l.LUT[i] = lo + r.Int32N(hi-lo+1)
			}
		}
		nch := 1
		if l.PerChannel {
			nch = out
		}
		for range nch {
			l.WScale = append(l.WScale, 0.001+r.Float32())
			m := int32(0)
			if r.IntN(8) != 0 {
				m = 1<<30 + r.Int32N(1<<30)
			}
			sh := int32(r.IntN(62) - 31)
			switch r.IntN(6) {
			case 0:
				sh = -31
			case 1:
				sh = 30
			case 2:
				sh = int32(r.IntN(8)) // left shifts that saturate
			}
			l.Mult, l.Shift = append(l.Mult, m), append(l.Shift, sh)
		}
		bound := int64(math.MaxInt32) - int64(in)*maxAbsProduct
		l.Bias = make([]int32, out)
		for o := range l.Bias {
			switch r.IntN(5) {
			case 0:
				l.Bias[o] = int32(bound)
			case 1:
				l.Bias[o] = int32(-bound)
			default:
				l.Bias[o] = int32(r.Int64N(2*bound+1) - bound)
			}
		}
		l.W = make([]int8, in*out)
		for i := range l.W {
			switch r.IntN(6) {
			case 0:
				l.W[i] = -128
			case 1:
				l.W[i] = 127
			default:
				l.W[i] = int8(r.IntN(256) - 128)
			}
		}
		s.Layers = append(s.Layers, l)
		in = out
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkEngines runs the quantized input through the vector engine at every
// vecmath level and wants the scalar engine's outputs bit for bit.
func checkEngines(t testing.TB, s *Snapshot, in []int32) {
	t.Helper()
	want := make([]int32, s.OutputDim())
	if err := s.RunQuantizedReference(in, want); err != nil {
		t.Fatal(err)
	}
	defer vecmath.SetLevel(vecmath.Detected())
	for _, l := range vecmath.Supported() {
		if _, err := vecmath.SetLevel(l); err != nil {
			t.Fatal(err)
		}
		got := make([]int32, s.OutputDim())
		if err := s.RunQuantized(in, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("level %v: vector engine %v, scalar engine %v", l, got, want)
		}
	}
}

// TestVecEngineMatchesScalar compares the two engines on random snapshots
// with inputs at the type's extremes, at the zero point and random.
func TestVecEngineMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for it := range 200 {
		s := randomSnapshot(t, r)
		lo, hi := s.DType.Range()
		for k := range 4 {
			in := make([]int32, s.InputDim())
			for i := range in {
				switch {
				case k == 0:
					in[i] = lo
				case k == 1:
					in[i] = hi
				case k == 2:
					in[i] = s.Input.Zero
				default:
					in[i] = lo + r.Int32N(hi-lo+1)
				}
			}
			t.Run(fmt.Sprint(it, k), func(t *testing.T) { checkEngines(t, s, in) })
		}
	}
}

// TestRunMatchesReference wants Run (vector input quantization and engine)
// to equal QuantizeValue, the scalar engine and Dequantize, bit for bit, on
// float inputs around rounding ties, at extremes, infinite and NaN.
func TestRunMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	defer vecmath.SetLevel(vecmath.Detected())
	for it := range 100 {
		s := randomSnapshot(t, r)
		x := make([]float32, s.InputDim())
		for i := range x {
			switch r.IntN(6) {
			case 0:
				x[i] = (float32(r.IntN(64)-32) + 0.5) * s.Input.Scale
			case 1:
				x[i] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)), 3e38}[r.IntN(6)]
			default:
				x[i] = float32(r.NormFloat64()) * 100 * s.Input.Scale
			}
		}
		q := make([]int32, len(x))
		for i, v := range x {
			q[i] = QuantizeValue(v, s.Input, s.DType)
		}
		qo := make([]int32, s.OutputDim())
		if err := s.RunQuantizedReference(q, qo); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(qo))
		for i, v := range qo {
			want[i] = Dequantize(v, s.Output())
		}
		for _, l := range vecmath.Supported() {
			if _, err := vecmath.SetLevel(l); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(want))
			if err := s.Run(x, got); err != nil {
				t.Fatal(err)
			}
			if !vecmath.SameF32(got, want) {
				t.Fatalf("snapshot %d level %v: Run %v, reference %v", it, l, got, want)
			}
		}
	}
}

// FuzzVecEngine builds a random snapshot from the first bytes of the input
// and runs the rest as its quantized input through both engines.
func FuzzVecEngine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0xff, 0x80, 0x7f})
	f.Add([]byte{9, 9, 9, 9, 9, 9, 9, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		var seed uint64
		for _, c := range data[:8] {
			seed = seed<<8 | uint64(c)
		}
		s := randomSnapshot(t, rand.New(rand.NewPCG(seed, 1)))
		lo, hi := s.DType.Range()
		in := make([]int32, s.InputDim())
		for i := range in {
			if 8+i < len(data) {
				in[i] = lo + int32(data[8+i])%(hi-lo+1)
			}
		}
		checkEngines(t, s, in)
	})
}
