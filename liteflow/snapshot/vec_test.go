package snapshot

import (
	"errors"
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

// checkBatch runs items inputs (quantized, possibly outside the type's
// range) through RunQuantizedBatch and their real values through RunBatch
// at every vecmath level, and wants each item to equal the scalar engine
// (RunQuantizedReference) and Run on that item alone, bit for bit.
func checkBatch(t testing.TB, s *Snapshot, in []int32, x []float32) {
	t.Helper()
	ni, no := s.InputDim(), s.OutputDim()
	items := len(in) / ni
	want := make([]int32, items*no)
	for i := range items {
		if err := s.RunQuantizedReference(in[i*ni:(i+1)*ni], want[i*no:(i+1)*no]); err != nil {
			t.Fatal(err)
		}
	}
	defer vecmath.SetLevel(vecmath.Detected())
	for _, l := range vecmath.Supported() {
		if _, err := vecmath.SetLevel(l); err != nil {
			t.Fatal(err)
		}
		got := make([]int32, items*no)
		if err := s.RunQuantizedBatch(in, got); err != nil {
			t.Fatal(err)
		}
		for i := range items {
			if g, w := got[i*no:(i+1)*no], want[i*no:(i+1)*no]; !slices.Equal(g, w) {
				t.Fatalf("level %v: RunQuantizedBatch item %d of %d: %v, scalar engine %v", l, i, items, g, w)
			}
		}
		fgot, fwant := make([]float32, items*no), make([]float32, items*no)
		if err := s.RunBatch(x, fgot); err != nil {
			t.Fatal(err)
		}
		for i := range items {
			if err := s.Run(x[i*ni:(i+1)*ni], fwant[i*no:(i+1)*no]); err != nil {
				t.Fatal(err)
			}
		}
		if !vecmath.SameF32(fgot, fwant) {
			t.Fatalf("level %v: RunBatch of %d items differs from Run", l, items)
		}
	}
}

// randomBatch returns items quantized inputs (mostly in range, some far
// outside) and items real inputs (ties, extremes, NaN, infinities).
func randomBatch(r *rand.Rand, s *Snapshot, items int) ([]int32, []float32) {
	lo, hi := s.DType.Range()
	in := make([]int32, items*s.InputDim())
	for i := range in {
		switch r.IntN(10) {
		case 0:
			in[i] = []int32{math.MinInt32, math.MaxInt32, lo - 1, hi + 1, -40000, 40000}[r.IntN(6)]
		default:
			in[i] = lo + r.Int32N(hi-lo+1)
		}
	}
	x := make([]float32, len(in))
	for i := range x {
		switch r.IntN(6) {
		case 0:
			x[i] = (float32(r.IntN(64)-32) + 0.5) * s.Input.Scale
		case 1:
			x[i] = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, 3e38}[r.IntN(5)]
		default:
			x[i] = float32(r.NormFloat64()) * 100 * s.Input.Scale
		}
	}
	return in, x
}

// TestBatchMatchesScalar covers the batch entry points on random
// snapshots with batch sizes around the lane counts and above the chunk.
func TestBatchMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	for it := range 120 {
		s := randomSnapshot(t, r)
		items := []int{0, 1, 2, 7, 8, 15, 16, 17, 31, 64, 100, batchChunk + 3}[r.IntN(12)]
		in, x := randomBatch(r, s, items)
		t.Run(fmt.Sprint(it), func(t *testing.T) { checkBatch(t, s, in, x) })
	}
}

func TestBatchErrors(t *testing.T) {
	s := randomSnapshot(t, rand.New(rand.NewPCG(3, 4)))
	ni, no := s.InputDim(), s.OutputDim()
	for _, c := range []struct{ in, out int }{{ni + 1, no}, {2 * ni, no}, {ni, 2 * no}, {0, no}} {
		if err := s.RunQuantizedBatch(make([]int32, c.in), make([]int32, c.out)); !errors.Is(err, ErrShape) {
			t.Errorf("RunQuantizedBatch %d/%d: %v, want ErrShape", c.in, c.out, err)
		}
		if err := s.RunBatch(make([]float32, c.in), make([]float32, c.out)); !errors.Is(err, ErrShape) {
			t.Errorf("RunBatch %d/%d: %v, want ErrShape", c.in, c.out, err)
		}
	}
	var raw Snapshot
	if err := raw.RunQuantizedBatch(nil, nil); !errors.Is(err, ErrNotValidated) {
		t.Errorf("unvalidated: %v", err)
	}
}

// FuzzBatch builds a random snapshot and batch from the seed bytes.
func FuzzBatch(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint16(17))
	f.Add(uint64(5), uint64(0), uint16(1))
	f.Add(uint64(8), uint64(3), uint16(300))
	f.Fuzz(func(t *testing.T, seed, bseed uint64, items uint16) {
		s := randomSnapshot(t, rand.New(rand.NewPCG(seed, 1)))
		in, x := randomBatch(rand.New(rand.NewPCG(bseed, 2)), s, int(items%600))
		checkBatch(t, s, in, x)
	})
}
