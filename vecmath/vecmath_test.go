package vecmath

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// forEachLevel runs f with every level this machine supports forced in
// turn, restoring the detected level afterwards.
func forEachLevel(t testing.TB, f func(l Level)) {
	t.Helper()
	defer SetLevel(Detected())
	for _, l := range Supported() {
		if _, err := SetLevel(l); err != nil {
			t.Fatal(err)
		}
		f(l)
	}
}

func TestLevels(t *testing.T) {
	ls := Supported()
	if len(ls) == 0 || ls[0] != Scalar || ls[len(ls)-1] != Detected() {
		t.Fatalf("Supported() = %v with Detected() = %v", ls, Detected())
	}
	if _, err := SetLevel(Detected() + 1); err == nil {
		t.Fatal("SetLevel above the detected level succeeded")
	}
	if _, err := SetLevel(-1); err == nil {
		t.Fatal("SetLevel(-1) succeeded")
	}
	if Current() != Detected() {
		t.Fatalf("a refused SetLevel changed the level to %v", Current())
	}
	t.Logf("levels here: %v", ls)
}

// i32 returns an adversarial int32: extremes, int16 extremes, zero or random.
func i32(r *rand.Rand) int32 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return []int32{math.MinInt32, math.MaxInt32, -1, 1}[r.IntN(4)]
	case 2:
		return PackPairs16([]int16{math.MinInt16, math.MaxInt16, 0, -1}[r.IntN(4)], []int16{math.MinInt16, math.MaxInt16, 0, -1}[r.IntN(4)])
	case 3:
		return int32(r.IntN(19)) - 9
	}
	return int32(r.Uint32())
}

func i64(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return []int64{math.MinInt64, math.MaxInt64, math.MinInt32, math.MaxInt32, -1}[r.IntN(5)]
	case 2:
		return int64(int32(r.Uint32())) // a proper sign-extended int32
	}
	return int64(r.Uint64())
}

func f32(r *rand.Rand) float32 {
	switch r.IntN(10) {
	case 0:
		return 0
	case 1:
		return float32(math.Copysign(0, -1))
	case 2:
		return []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32, -math.MaxFloat32}[r.IntN(6)]
	}
	return float32(r.NormFloat64() * 100)
}

// shape returns a number of outputs and inputs, often not multiples of any
// vector width, sometimes zero.
func shape(r *rand.Rand) (n, k int) {
	ns := []int{0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 64, 127, 128, 129, 256, 300}
	return ns[r.IntN(len(ns))], r.IntN(40)
}

func checkDotPairs16(t testing.TB, acc0, w, x []int32) {
	for _, relu := range []bool{false, true} {
		want := slices.Clone(acc0)
		dotPairs16Scalar(want, w, x, 0, relu)
		forEachLevel(t, func(l Level) {
			got := slices.Clone(acc0)
			if relu {
				DotPairs16ReLU(got, w, x)
			} else {
				DotPairs16(got, w, x)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("DotPairs16 (relu %v) at %v (n=%d, k=%d): %v, scalar %v", relu, l, len(acc0), len(x), got, want)
			}
		})
	}
}

func checkMulAccI64(t testing.TB, acc0, w []int64, x []int32) {
	want := slices.Clone(acc0)
	mulAccI64Scalar(want, w, x, 0)
	forEachLevel(t, func(l Level) {
		got := slices.Clone(acc0)
		MulAccI64(got, w, x)
		if !slices.Equal(got, want) {
			t.Fatalf("MulAccI64 at %v (n=%d, k=%d): %v, scalar %v", l, len(acc0), len(x), got, want)
		}
	})
}

func checkWide(t testing.TB, acc0, w, x []int64) {
	n := len(acc0)
	want := slices.Clone(acc0)
	for k, xv := range x {
		for o := range want {
			want[o] += xv * w[k*n+o]
		}
	}
	var wantDot int64
	for k := range x {
		if k < len(w) {
			wantDot += x[k] * w[k]
		}
	}
	forEachLevel(t, func(l Level) {
		got := slices.Clone(acc0)
		MulAccWide(got, w, x)
		if !slices.Equal(got, want) {
			t.Fatalf("MulAccWide at %v (n=%d, k=%d): %v, want %v", l, n, len(x), got, want)
		}
		if len(w) >= len(x) {
			if d := DotWide(x, w[:len(x)]); d != wantDot {
				t.Fatalf("DotWide at %v (k=%d): %d, want %d", l, len(x), d, wantDot)
			}
		}
	})
}

func checkPacked(t testing.TB, acc0 []int64, w, x []int32) {
	n := len(acc0)
	want := slices.Clone(acc0)
	for k, xv := range x {
		for o := range want {
			want[o] += int64(xv) * int64(w[k*n+o])
		}
	}
	wp := PackColsI32(w, n)
	forEachLevel(t, func(l Level) {
		got := slices.Clone(acc0)
		MulAccPacked(got, wp, x)
		if !slices.Equal(got, want) {
			t.Fatalf("MulAccPacked at %v (n=%d, k=%d): %v, want %v", l, n, len(x), got, want)
		}
	})
}

func checkDotI64(t testing.TB, x []int32, w []int64) {
	want := dotI64Scalar(x, w)
	rev := slices.Clone(w)
	slices.Reverse(rev)
	want2 := dotI64Scalar(x, rev)
	forEachLevel(t, func(l Level) {
		if got := DotI64(x, w); got != want {
			t.Fatalf("DotI64 at %v (k=%d): %d, scalar %d", l, len(x), got, want)
		}
		if g0, g1 := DotI64x2(x, w, rev); g0 != want || g1 != want2 {
			t.Fatalf("DotI64x2 at %v (k=%d): %d %d, scalar %d %d", l, len(x), g0, g1, want, want2)
		}
	})
}

func checkMulAddColsF32(t testing.TB, y0, w, x []float32, skip bool) {
	want := slices.Clone(y0)
	mulAddColsF32Scalar(want, w, x, skip, 0)
	forEachLevel(t, func(l Level) {
		got := slices.Clone(y0)
		MulAddColsF32(got, w, x, skip)
		if !SameF32(got, want) {
			t.Fatalf("MulAddColsF32 at %v (n=%d, k=%d, skip=%v): %v, scalar %v", l, len(y0), len(x), skip, got, want)
		}
	})
}

// TestKernelsMatchScalar runs every kernel at every level on random and
// adversarial shapes and values and wants the scalar result bit for bit.
func TestKernelsMatchScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for it := 0; it < 300; it++ {
		n, k := shape(r)
		zeroRow := r.IntN(4) == 0
		acc := make([]int32, n)
		w := make([]int32, n*k)
		x := make([]int32, k)
		acc64 := make([]int64, n)
		w64 := make([]int64, n*k)
		y := make([]float32, n)
		wf := make([]float32, n*k)
		xf := make([]float32, k)
		for i := range acc {
			acc[i], acc64[i], y[i] = i32(r), i64(r), f32(r)
		}
		for i := range w {
			w[i], w64[i], wf[i] = i32(r), i64(r), f32(r)
		}
		for i := range x {
			x[i], xf[i] = i32(r), f32(r)
		}
		if zeroRow && k > 0 {
			z := r.IntN(k)
			x[z], xf[z] = 0, 0
			clear(w[z*n : (z+1)*n])
		}
		checkDotPairs16(t, acc, w, x)
		checkMulAccI64(t, acc64, w64, x)
		x64 := make([]int64, k)
		for i := range x64 {
			x64[i] = i64(r)
		}
		checkWide(t, acc64, w64, x64)
		checkPacked(t, acc64, w, x)
		wd := make([]int64, k)
		for i := range wd {
			wd[i] = i64(r)
		}
		checkDotI64(t, x, wd)
		checkMulAddColsF32(t, y, wf, xf, it%2 == 0)
	}
}

func checkRequant(t testing.TB, acc, mult, left, right []int32, zero, lo, hi int32) {
	want := make([]int32, len(acc))
	requantScalar(want, acc, mult, left, right, zero, lo, hi, 0)
	forEachLevel(t, func(l Level) {
		got := make([]int32, len(acc))
		Requant(got, acc, mult, left, right, zero, lo, hi)
		if !slices.Equal(got, want) {
			for o := range got {
				if got[o] != want[o] {
					t.Fatalf("Requant at %v (n=%d) output %d: acc %d mult %d left %d right %d zero %d [%d, %d]: %d, scalar %d",
						l, len(acc), o, acc[o], mult[o], left[o], right[o], zero, lo, hi, got[o], want[o])
				}
			}
		}
	})
}

// shift returns a shift count, mostly in [0, 31], sometimes outside.
func shift(r *rand.Rand) int32 {
	if r.IntN(8) == 0 {
		return []int32{-1, -31, 32, 100, math.MinInt32, math.MaxInt32}[r.IntN(6)]
	}
	return int32(r.IntN(32))
}

// TestRequantMatchesScalar covers the requantization with the multipliers
// and shifts snapshots use, and with adversarial ones (MinInt32 operands,
// shifts out of range, clamps that do and do not fit the vector form).
func TestRequantMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for it := 0; it < 400; it++ {
		n, _ := shape(r)
		acc, mult, left, right := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
		for o := range acc {
			acc[o], mult[o], left[o], right[o] = i32(r), i32(r), shift(r), shift(r)
			if r.IntN(2) == 0 { // a snapshot's: Q31 multiplier in [2^30, 2^31), one of the shifts 0
				mult[o] = 1<<30 + int32(r.IntN(1<<30))
				if r.IntN(2) == 0 {
					left[o] = 0
				} else {
					right[o] = 0
				}
			}
		}
		zero, lo, hi := int32(r.IntN(512)-256), int32(-128), int32(127)
		switch r.IntN(4) {
		case 0:
			lo, hi = -512, 511
		case 1:
			zero, lo, hi = i32(r), i32(r), i32(r)
		}
		checkRequant(t, acc, mult, left, right, zero, lo, hi)
	}
}

func FuzzRequant(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, int32(0), int32(-128), int32(127))
	}
	f.Fuzz(func(t *testing.T, data []byte, zero, lo, hi int32) {
		d, n, _ := fuzzShape(data)
		acc, mult, left, right := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
		for o := range acc {
			acc[o], mult[o] = int32(d.u32()), int32(d.u32())
			v := d.u32()
			left[o], right[o] = int32(v&63)-16, int32(v>>6&63)-16
		}
		checkRequant(t, acc, mult, left, right, zero, lo, hi)
	})
}

func checkMulAddLanesF32(t testing.TB, y0, w, x []float32, skip, relu bool) {
	want := slices.Clone(y0)
	mulAddLanesF32Scalar(want, w, x, len(x)/Lanes, skip, relu)
	forEachLevel(t, func(l Level) {
		got := slices.Clone(y0)
		MulAddLanesF32(got, w, x, skip, relu)
		if !SameF32(got, want) {
			for i := range got {
				if !SameF32(got[i:i+1], want[i:i+1]) {
					t.Fatalf("MulAddLanesF32 at %v (outs=%d, in=%d, skip=%v, relu=%v) element %d: %v (%#x), scalar %v (%#x)",
						l, len(y0)/Lanes, len(x)/Lanes, skip, relu, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
	})
}

// TestMulAddLanesMatchesScalar covers output counts around the 4-output
// blocking, zero and negative-zero inputs and sums, and NaN/Inf values.
func TestMulAddLanesMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for it := 0; it < 200; it++ {
		outs, in := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 17}[r.IntN(10)], r.IntN(40)
		y, w, x := make([]float32, outs*Lanes), make([]float32, outs*in), make([]float32, in*Lanes)
		for i := range y {
			y[i] = f32(r)
		}
		for i := range w {
			w[i] = f32(r)
		}
		for i := range x {
			x[i] = f32(r)
		}
		checkMulAddLanesF32(t, y, w, x, it%2 == 0, it%3 == 0)
	}
}

func FuzzMulAddLanesF32(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		outs := n % 10
		y, w, x := make([]float32, outs*Lanes), make([]float32, outs*k), make([]float32, k*Lanes)
		fill(d, x)
		fill(d, w)
		fill(d, y)
		checkMulAddLanesF32(t, y, w, x, len(data) > 0 && data[0]&1 == 1, len(data) > 1 && data[1]&1 == 1)
	})
}

func checkQuantizeF32(t testing.TB, x []float32, scale float32, zero, lo, hi int32) {
	want := make([]int32, len(x))
	for i, v := range x {
		want[i] = quantizeScalar(v, scale, zero, lo, hi)
	}
	forEachLevel(t, func(l Level) {
		got := make([]int32, len(x))
		QuantizeF32(got, x, scale, zero, lo, hi)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("QuantizeF32 at %v: x %v (%#x) scale %v zero %d [%d, %d]: %d, scalar %d", l, x[i], math.Float32bits(x[i]), scale, zero, lo, hi, got[i], want[i])
			}
		}
	})
}

// TestQuantizeF32MatchesScalar covers ties (k+0.5), the float32 neighbours
// of ties, huge, infinite, NaN and subnormal inputs and extreme scales.
func TestQuantizeF32MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for it := 0; it < 300; it++ {
		n, _ := shape(r)
		x := make([]float32, n)
		for i := range x {
			switch r.IntN(5) {
			case 0:
				tie := float32(r.IntN(600)-300) + 0.5
				x[i] = []float32{tie, math.Nextafter32(tie, 0), math.Nextafter32(tie, 1e9), math.Nextafter32(tie, -1e9)}[r.IntN(4)]
			case 1:
				x[i] = f32(r)
			default:
				x[i] = float32(r.NormFloat64() * 100)
			}
		}
		scale := []float32{1, 0.5, 0.0078125, 0.1, 3e-39, 3e38, float32(r.Float64()) + 1e-3}[r.IntN(7)]
		zero, lo, hi := int32(r.IntN(256)-128), int32(-128), int32(127)
		if r.IntN(3) == 0 {
			zero, lo, hi = int32(r.IntN(256)), 0, 255
		}
		if r.IntN(5) == 0 {
			lo, hi = math.MinInt32+1, math.MaxInt32-1
		}
		checkQuantizeF32(t, x, scale, zero, lo, hi)
	}
}

func FuzzQuantizeF32(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, float32(0.5), int32(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, scale float32, zero int32) {
		d, n, _ := fuzzShape(data)
		x := make([]float32, n)
		fill(d, x)
		checkQuantizeF32(t, x, scale, zero%1000, -512, 511)
	})
}

// TestKernelsPanicOnBadShape checks that inconsistent lengths panic before
// any vector code reads out of bounds.
func TestKernelsPanicOnBadShape(t *testing.T) {
	for name, f := range map[string]func(){
		"DotPairs16": func() { DotPairs16(make([]int32, 16), make([]int32, 15), make([]int32, 1)) },
		"MulAccI64":  func() { MulAccI64(make([]int64, 8), make([]int64, 9), make([]int32, 1)) },
		"DotI64":     func() { DotI64(make([]int32, 8), make([]int64, 7)) },
		"DotI64x2":   func() { DotI64x2(make([]int32, 8), make([]int64, 8), make([]int64, 9)) },
		"Requant": func() {
			Requant(make([]int32, 16), make([]int32, 16), make([]int32, 16), make([]int32, 15), make([]int32, 16), 0, 0, 0)
		},
		"MulAddLanesF32": func() { MulAddLanesF32(make([]float32, 16), make([]float32, 3), make([]float32, 32), false, false) },
		"MulAddColsF32":  func() { MulAddColsF32(make([]float32, 16), make([]float32, 17), make([]float32, 1), false) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s accepted a bad shape", name)
				}
			}()
			f()
		}()
	}
}

// fuzzShape reads a shape and a value stream from data.
type fuzzData struct{ b []byte }

func (d *fuzzData) u32() uint32 {
	if len(d.b) < 4 {
		d.b = nil
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *fuzzData) u64() uint64 { return uint64(d.u32()) | uint64(d.u32())<<32 }

func fuzzShape(data []byte) (d *fuzzData, n, k int) {
	if len(data) < 2 {
		return &fuzzData{}, 0, 0
	}
	return &fuzzData{data[2:]}, int(data[0]) % 300, int(data[1]) % 48
}

// fuzzWord is an element type the fuzz targets draw from their input.
type fuzzWord interface{ int32 | int64 | float32 }

// fill draws s's elements from d in order: 4 bytes each for int32 and
// float32 (its bits), 8 for int64.
func fill[T fuzzWord](d *fuzzData, s []T) {
	for i := range s {
		switch p := any(&s[i]).(type) {
		case *int32:
			*p = int32(d.u32())
		case *int64:
			*p = int64(d.u64())
		case *float32:
			*p = math.Float32frombits(d.u32())
		}
	}
}

var fuzzSeeds = [][]byte{
	{16, 2, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f},
	{0, 0},
	{17, 31, 0, 0, 0, 0x80, 0xff, 0x7f, 0x00, 0x80},
	{255, 47, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8},
}

func FuzzDotPairs16(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		acc, w, x := make([]int32, n), make([]int32, n*k), make([]int32, k)
		fill(d, x)
		fill(d, w)
		fill(d, acc)
		checkDotPairs16(t, acc, w, x)
	})
}

func FuzzMulAccI64(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		acc, w, x := make([]int64, n), make([]int64, n*k), make([]int32, k)
		fill(d, x)
		fill(d, w)
		fill(d, acc)
		checkMulAccI64(t, acc, w, x)
	})
}

func FuzzMulAccWide(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		acc, w, x := make([]int64, n), make([]int64, n*k), make([]int64, k)
		fill(d, x)
		fill(d, w)
		fill(d, acc)
		checkWide(t, acc, w, x)
	})
}

func FuzzMulAccPacked(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		acc, w, x := make([]int64, n), make([]int32, n*k), make([]int32, k)
		fill(d, x)
		fill(d, w)
		fill(d, acc)
		checkPacked(t, acc, w, x)
	})
}

func FuzzDotI64(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, _ := fuzzShape(data)
		x, w := make([]int32, n), make([]int64, n)
		for i := range x {
			x[i], w[i] = int32(d.u32()), int64(d.u64())
		}
		checkDotI64(t, x, w)
	})
}

func FuzzMulAddColsF32(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		y, w, x := make([]float32, n), make([]float32, n*k), make([]float32, k)
		fill(d, x)
		fill(d, w)
		fill(d, y)
		checkMulAddColsF32(t, y, w, x, len(data) > 0 && data[0]&1 == 1)
	})
}

func checkReLUF32(t testing.TB, y0 []float32) {
	want := slices.Clone(y0)
	reluF32Scalar(want)
	forEachLevel(t, func(l Level) {
		got := slices.Clone(y0)
		ReLUF32(got)
		// NaN payloads and -0 must stay too: compare the bits.
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("ReLUF32 at %v (n=%d): [%d] %v (%#x), scalar %v (%#x)", l, len(y0), i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	})
}

func TestReLUF32MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), math.Float32frombits(0xffc00001), float32(math.Inf(-1)), float32(math.Inf(1)), -math.SmallestNonzeroFloat32, math.SmallestNonzeroFloat32, -math.MaxFloat32}
	for range 300 {
		y := make([]float32, r.IntN(70))
		for i := range y {
			if r.IntN(4) == 0 {
				y[i] = special[r.IntN(len(special))]
			} else {
				y[i] = f32(r)
			}
		}
		checkReLUF32(t, y)
	}
}

func FuzzReLUF32(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, _ := fuzzShape(data)
		y := make([]float32, n)
		fill(d, y)
		checkReLUF32(t, y)
	})
}

func dotSkip2Scalar(x, w0, w1 []float32, s0, s1 float32) (float32, float32) {
	for k, v := range x {
		if v != 0 {
			s0 += float32(v * w0[k])
			s1 += float32(v * w1[k])
		}
	}
	return s0, s1
}

func checkDotSkip2F32(t testing.TB, x, w0, w1 []float32, s0, s1 float32) {
	w0s, w1s := dotSkip2Scalar(x, w0, w1, s0, s1)
	want := []float32{w0s, w1s}
	forEachLevel(t, func(l Level) {
		g0, g1 := DotSkip2F32(x, w0, w1, s0, s1)
		if got := []float32{g0, g1}; !SameF32(got, want) {
			t.Fatalf("DotSkip2F32 at %v (n=%d): %v, scalar %v", l, len(x), got, want)
		}
	})
}

func TestDotSkip2F32MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38, 1e-40}
	for range 300 {
		n := r.IntN(300)
		x, w0, w1 := make([]float32, n), make([]float32, n+r.IntN(3)), make([]float32, n+r.IntN(3))
		for _, v := range [][]float32{x, w0, w1} {
			for i := range v {
				switch r.IntN(8) {
				case 0, 1, 2:
					// zero inputs are common (ReLU)
				case 3:
					v[i] = special[r.IntN(len(special))]
				default:
					v[i] = float32(r.NormFloat64())
				}
			}
		}
		checkDotSkip2F32(t, x, w0, w1, float32(r.NormFloat64()), special[r.IntN(len(special))])
	}
}

func FuzzDotSkip2F32(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, _ := fuzzShape(data)
		x, w0, w1 := make([]float32, n), make([]float32, n), make([]float32, n)
		fill(d, x)
		fill(d, w0)
		fill(d, w1)
		for i := range x {
			if d.u32()%3 == 0 {
				x[i] = 0
			}
		}
		checkDotSkip2F32(t, x, w0, w1, math.Float32frombits(d.u32()), math.Float32frombits(d.u32()))
	})
}

// checkMulAccIdx wants MulAccPackedIdx at every level to equal the plain
// definition (each item's sum over the listed rows of unpacked weights).
func checkMulAccIdx(t testing.TB, acc0 []int64, w, idx, hv []int32, items int) {
	n := len(acc0) / items
	plain := make([]int32, len(w))
	for k := 0; k < len(w)/max(n, 1); k++ {
		for o := 0; o < n; o++ {
			plain[k*n+o] = w[k*n+PackedIndex(o, n)]
		}
	}
	want := slices.Clone(acc0)
	for j, k := range idx {
		for b := 0; b < items; b++ {
			for o := 0; o < n; o++ {
				want[b*n+o] += int64(hv[j*items+b]) * int64(plain[int(k)*n+o])
			}
		}
	}
	forEachLevel(t, func(l Level) {
		got := slices.Clone(acc0)
		MulAccPackedIdx(got, w, idx, hv, items)
		if !slices.Equal(got, want) {
			t.Fatalf("MulAccPackedIdx at %v (items %d, n %d, %d rows listed): differs", l, items, n, len(idx))
		}
	})
}

func TestMulAccPackedIdxMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	for range 200 {
		items := []int{1, 2, 3, 4}[r.IntN(4)]
		n := []int{0, 1, 15, 16, 32, 48, 64, 256}[r.IntN(8)]
		rows := 1 + r.IntN(40)
		w := make([]int32, n*rows)
		for i := range w {
			w[i] = i32(r)
		}
		w = PackColsI32(w, n)
		idx := make([]int32, r.IntN(3*rows))
		for j := range idx {
			idx[j] = int32(r.IntN(rows))
		}
		hv := make([]int32, len(idx)*items)
		for i := range hv {
			if r.IntN(3) > 0 {
				hv[i] = i32(r)
			}
		}
		acc := make([]int64, n*items)
		for i := range acc {
			acc[i] = i64(r)
		}
		checkMulAccIdx(t, acc, w, idx, hv, items)
	}
	defer func() {
		if recover() == nil {
			t.Error("row index out of range accepted")
		}
	}()
	MulAccPackedIdx(make([]int64, 16), make([]int32, 32), []int32{2}, []int32{1}, 1)
}

func FuzzMulAccPackedIdx(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, n, k := fuzzShape(data)
		items := 1 << (d.u32() % 3)
		rows := max(k, 1)
		w := make([]int32, n*rows)
		fill(d, w)
		w = PackColsI32(w, n)
		idx := make([]int32, d.u32()%64)
		for j := range idx {
			idx[j] = int32(d.u32() % uint32(rows))
		}
		hv := make([]int32, len(idx)*items)
		fill(d, hv)
		acc := make([]int64, n*items)
		fill(d, acc)
		checkMulAccIdx(t, acc, w, idx, hv, items)
	})
}
