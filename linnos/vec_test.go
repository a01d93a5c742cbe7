package linnos

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lakeos/lake/vecmath"
)

// scaledIntModel returns a random model whose layer-i weights are drawn
// from [-wmax, wmax] and biases from [-bmax, bmax] (with some zeros).
func scaledIntModel(tb testing.TB, extra int, seed uint64, wmax, bmax int64) *IntModel {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 5))
	draw := func(m int64) int64 {
		switch r.IntN(12) {
		case 0:
			return 0
		case 1:
			return m
		case 2:
			return -m
		}
		return int64(r.Uint64()%(2*uint64(m)+1)) - m // wraps for huge m: any value then
	}
	w := make([][]int64, extra+2)
	b := make([][]int64, extra+2)
	for i := range w {
		in, out := LayerDims(extra, i)
		w[i] = make([]int64, in*out)
		for k := range w[i] {
			w[i][k] = draw(wmax)
		}
		b[i] = make([]int64, out)
		for k := range b[i] {
			b[i][k] = draw(bmax)
		}
	}
	m, err := NewIntModel(extra, w, b)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// hostileVectors returns feature vectors with values outside the digit
// range (negative, large, the int32 extremes) mixed with digits.
func hostileVectors(n int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 11))
	v := randomVectors(n, seed)
	for i := range v {
		switch r.IntN(20) {
		case 0:
			v[i] = -1
		case 1:
			v[i] = 10
		case 2:
			v[i] = []int32{math.MinInt32, math.MaxInt32, 1 << 20, -(1 << 20)}[r.IntN(4)]
		}
	}
	return v
}

// scalarLogits runs only the scalar engine, the reference.
func scalarLogits(m *IntModel, v []int32) []int64 {
	out := make([]int64, 2*(len(v)/NumInputs))
	h := make([]int64, 2*HiddenWidth)
	for n := range len(v) / NumInputs {
		out[2*n], out[2*n+1] = m.logits(v[n*NumInputs:(n+1)*NumInputs], h[:HiddenWidth], h[HiddenWidth:])
	}
	return out
}

// checkVecMatchesScalar wants Logits, PredictBatch and Predict at every
// vecmath level, with the hidden layers of 1, 2 and 4 vectors run together,
// to equal the scalar engine bit for bit.
func checkVecMatchesScalar(t testing.TB, m *IntModel, v []int32) {
	t.Helper()
	want := scalarLogits(m, v)
	n := len(v) / NumInputs
	defer vecmath.SetLevel(vecmath.Detected())
	defer func(hb int) { hiddenBatch = hb }(hiddenBatch)
	for _, lb := range levelBatches() {
		l := lb.level
		hiddenBatch = lb.batch
		if _, err := vecmath.SetLevel(l); err != nil {
			t.Fatal(err)
		}
		got := make([]int64, 2*n)
		if err := m.Logits(v, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("level %v batch %d: vector %d output %d: vector engine %d, scalar %d", l, hiddenBatch, i/2, i%2, got[i], want[i])
				}
			}
		}
		classes := make([]int32, n)
		decisions := make([]bool, n)
		if err := m.PredictBatch(v, classes); err != nil {
			t.Fatal(err)
		}
		if err := m.Predict(v, n, decisions); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			slow := want[2*i] < want[2*i+1]
			if decisions[i] != slow || (classes[i] == 1) != slow {
				t.Fatalf("level %v batch %d: vector %d: class %d, decision %v, scalar says slow=%v", l, hiddenBatch, i, classes[i], decisions[i], slow)
			}
		}
	}
}

type levelBatch struct {
	level vecmath.Level
	batch int
}

// levelBatches is every vecmath level with hiddenBatch 1, 2 and 4.
func levelBatches() []levelBatch {
	var lbs []levelBatch
	for _, l := range vecmath.Supported() {
		for _, b := range []int{1, 2, maxHiddenBatch} {
			lbs = append(lbs, levelBatch{l, b})
		}
	}
	return lbs
}

// TestVecEngineMatchesScalar covers every path of the vector engine: the
// int16 first layer (trained-like weights), the int32×int32→int64 first
// layer (weights beyond int16, or inputs beyond a digit), hidden layers on
// int64 activations when one exceeds int32, and models whose weights do not
// fit int32 (no vector engine at all), for the base model and +1/+2.
func TestVecEngineMatchesScalar(t *testing.T) {
	cases := []struct {
		name       string
		wmax, bmax int64
		vec, int16 bool // expected engine
	}{
		{"trained-like", 2000, 2_000_000, true, true},
		{"int16-extremes", math.MaxInt16, 1 << 20, true, true},
		{"wide-weights", 1 << 20, 1 << 40, true, false},
		{"int32-extremes", math.MaxInt32, math.MaxInt64, true, false},
		{"beyond-int32", 1 << 40, 1 << 50, false, false},
	}
	var narrow, wide int
	defer func() {
		// Both outcomes of the per-layer int32 check must have been seen.
		if narrow == 0 || wide == 0 {
			t.Errorf("vector engine ran %d vectors on int32 activations and %d with int64 ones; want both > 0", narrow, wide)
		}
		if batchLeaves.Load() == 0 {
			t.Error("no vector left a group of hidden-layer vectors for the int64 path")
		}
	}()
	for _, c := range cases {
		for extra := 0; extra <= MaxExtra; extra++ {
			t.Run(fmt.Sprintf("%s/extra%d", c.name, extra), func(t *testing.T) {
				m := scaledIntModel(t, extra, uint64(extra)+uint64(len(c.name)), c.wmax, c.bmax)
				if (m.vec != nil) != c.vec || (m.vec != nil && (m.vec.w0p != nil) != c.int16) {
					t.Fatalf("engine: vector %v int16 %v, want %v %v", m.vec != nil, m.vec != nil && m.vec.w0p != nil, c.vec, c.int16)
				}
				n := 300
				if extra > 0 {
					n = 60 // the scalar 256×256 layers are slow
				}
				if raceEnabled {
					n /= 6
				}
				for _, v := range [][]int32{randomVectors(n, uint64(extra)), hostileVectors(n, uint64(extra)+3)} {
					checkVecMatchesScalar(t, m, v)
					if m.vec == nil {
						continue
					}
					var s vecScratch
					for i := range n {
						if _, _, w := m.vec.logits(v[i*NumInputs:(i+1)*NumInputs], &s); w {
							wide++
						} else {
							narrow++
						}
					}
				}
			})
		}
	}
	// The int16 proof must be exact at its edge: a row at the bound takes
	// the int16 path, one past it does not.
	m := scaledIntModel(t, 0, 1, 100, 1000)
	w, b := m.Layer(0)
	w1, b1 := m.Layer(1)
	for k := 0; k < NumInputs; k++ {
		w[k] = math.MaxInt16
	}
	b[0] = math.MaxInt32 - maxDigit*NumInputs*math.MaxInt16
	for _, off := range []int64{0, 1} {
		b[0] += off
		e, err := NewIntModel(0, [][]int64{w, w1}, [][]int64{b, b1})
		if err != nil {
			t.Fatal(err)
		}
		if (e.vec.w0p != nil) != (off == 0) {
			t.Fatalf("bias %d: int16 path %v", b[0], e.vec.w0p != nil)
		}
		checkVecMatchesScalar(t, e, hostileVectors(200, 9))
	}
}

// FuzzIntModelVec builds a model and vectors from the fuzz input (seed,
// weight and bias magnitudes, and raw feature values) and wants the vector
// engine to equal the scalar one at every level.
func FuzzIntModelVec(f *testing.F) {
	f.Add([]byte{1, 10, 20, 0, 3, 0, 0, 0})
	f.Add([]byte{2, 15, 31, 1, 9, 9, 9, 9, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{3, 31, 62, 2, 0x00, 0x00, 0x00, 0x80})
	f.Add([]byte{4, 40, 60, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		wbits, bbits := int(data[1])%48, int(data[2])%63
		extra := int(data[3]) % (MaxExtra + 1)
		m := scaledIntModel(t, extra, uint64(data[0]), int64(1)<<wbits, int64(1)<<bbits)
		v := randomVectors(8, uint64(data[0]))
		for i, rest := 0, data[4:]; len(rest) >= 4 && i < len(v); i, rest = i+1, rest[4:] {
			v[i] = int32(binary.LittleEndian.Uint32(rest))
		}
		checkVecMatchesScalar(t, m, v)
	})
}

// specialFloatModel returns randomFloatModel's model with some weights and
// biases replaced by special values (±0, ±Inf, NaN, huge, tiny).
func specialFloatModel(t *testing.T, extra int, seed uint64, special bool) *FloatModel {
	m := randomFloatModel(t, extra, seed)
	if !special {
		return m
	}
	r := rand.New(rand.NewPCG(seed, 13))
	sp := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 3e38, 1e-40}
	for _, p := range append(m.W, m.B...) {
		for k := range p {
			if r.IntN(500) == 0 {
				p[k] = sp[r.IntN(len(sp))]
			}
		}
	}
	return m
}

// TestFloatLanesMatchScalar wants the float model's batched (lane) path at
// every level to give the scalar engine's logits bit for bit (any NaN
// equal to any NaN), for batch sizes around the lane count.
func TestFloatLanesMatchScalar(t *testing.T) {
	defer vecmath.SetLevel(vecmath.Detected())
	for extra := 0; extra <= MaxExtra; extra++ {
		for _, special := range []bool{false, true} {
			m := specialFloatModel(t, extra, uint64(extra)+7, special)
			for _, n := range []int{1, 3, 4, 15, 16, 17, 40} {
				v := hostileVectors(n, uint64(n))
				want := make([][2]float32, n)
				h := make([]float32, 2*HiddenWidth)
				for i := range n {
					want[i] = m.logits(v[i*NumInputs:(i+1)*NumInputs], h[:HiddenWidth], h[HiddenWidth:])
				}
				for _, l := range vecmath.Supported() {
					if _, err := vecmath.SetLevel(l); err != nil {
						t.Fatal(err)
					}
					m.batchLogits(v, n, func(i int, o [2]float32) {
						if !vecmath.SameF32(o[:], want[i][:]) {
							t.Fatalf("extra %d special %v n %d level %v vector %d: %v, scalar %v", extra, special, n, l, i, o, want[i])
						}
					})
					classes := make([]int32, n)
					if err := m.PredictBatch(v, classes); err != nil {
						t.Fatal(err)
					}
					for i := range n {
						if (classes[i] == 1) != (want[i][1] > want[i][0]) {
							t.Fatalf("extra %d n %d level %v vector %d: class %d for logits %v", extra, n, l, i, classes[i], want[i])
						}
					}
				}
			}
		}
	}
}

// checkFloatOne wants logitsOne (one vector on the column kernels) at
// every level to equal the scalar logits bit for bit (any NaN equal to
// any NaN).
func checkFloatOne(t *testing.T, m *FloatModel, v []int32) {
	t.Helper()
	defer vecmath.SetLevel(vecmath.Detected())
	h := make([]float32, 2*HiddenWidth)
	for n := range len(v) / NumInputs {
		x := v[n*NumInputs : (n+1)*NumInputs]
		want := m.logits(x, h[:HiddenWidth], h[HiddenWidth:])
		for _, l := range vecmath.Supported() {
			if _, err := vecmath.SetLevel(l); err != nil {
				t.Fatal(err)
			}
			got := m.logitsOne(x, h[:HiddenWidth], h[HiddenWidth:])
			if !vecmath.SameF32(got[:], want[:]) {
				t.Fatalf("extra %d level %v vector %d: %v, scalar %v", m.Extra, l, n, got, want)
			}
			if lg, err := m.Logits(x); err != nil || !vecmath.SameF32(lg[:], want[:]) {
				t.Fatalf("extra %d level %v vector %d: Logits %v (%v), scalar %v", m.Extra, l, n, lg, err, want)
			}
		}
	}
}

// TestFloatOneMatchesScalar covers the float model's single-vector path
// with random and special weights and hostile vectors.
func TestFloatOneMatchesScalar(t *testing.T) {
	for extra := 0; extra <= MaxExtra; extra++ {
		for _, special := range []bool{false, true} {
			m := specialFloatModel(t, extra, uint64(extra)+21, special)
			checkFloatOne(t, m, hostileVectors(12, uint64(extra)+3))
			checkFloatOne(t, m, randomVectors(12, uint64(extra)+4))
		}
	}
}

// TestFloatWeightsChanged wants the single-vector path to follow weights
// changed in place (after WeightsChanged) and weight slices replaced.
func TestFloatWeightsChanged(t *testing.T) {
	m := randomFloatModel(t, 1, 5)
	v := randomVectors(4, 6)
	checkFloatOne(t, m, v) // makes the transposed copy
	for i := range m.W[0] {
		m.W[0][i] *= -2
	}
	for i := range m.W[1] {
		m.W[1][i] += 0.25
	}
	m.WeightsChanged()
	checkFloatOne(t, m, v)
	w := slices.Clone(m.W[1])
	for i := range w {
		w[i] = -w[i]
	}
	m.W[1] = w // a new slice: no call needed
	checkFloatOne(t, m, v)
}

// FuzzFloatOne builds a float model (special values included) and
// vectors from the input and runs the single-vector path against logits.
func FuzzFloatOne(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0x80})
	f.Add([]byte{2, 7, 1, 0xff, 0xff, 0xff, 0x7f, 9, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		m := specialFloatModel(t, int(data[0])%(MaxExtra+1), uint64(data[1]), data[2]&1 == 1)
		v := hostileVectors(2, uint64(data[1]))
		for i, rest := 0, data[3:]; len(rest) >= 4 && i < len(v); i, rest = i+1, rest[4:] {
			v[i] = int32(binary.LittleEndian.Uint32(rest))
		}
		checkFloatOne(t, m, v)
	})
}
