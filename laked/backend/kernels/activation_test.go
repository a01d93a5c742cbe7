package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is the distance between two finite float32s in units in the last
// place (adjacent floats are 1 apart; +0 and -0 are 0 apart).
func ulps(a, b float32) int64 {
	key := func(f float32) int64 {
		u := int64(math.Float32bits(f))
		if u&0x80000000 != 0 {
			return -(u & 0x7fffffff)
		}
		return u
	}
	d := key(a) - key(b)
	if d < 0 {
		d = -d
	}
	return d
}

// activationInputs sweeps the float32 range the activations care about:
// every binade from 2^-30 to 2^8 of both signs, densely, plus random
// values, the clamp edges and the special values.
func activationInputs() []float32 {
	var xs []float32
	for e := -30; e <= 8; e++ {
		for m := 0; m < 2048; m++ {
			v := float32(math.Ldexp(1+float64(m)/2048, e))
			xs = append(xs, v, -v)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		xs = append(xs, float32(r.NormFloat64()*8))
	}
	for _, v := range []float32{0, 0x1p-10, 20, 40, 88, 100, 104, 119.9, 120, 127, 1e30, math.MaxFloat32, math.SmallestNonzeroFloat32} {
		xs = append(xs, v, -v, math.Nextafter32(v, 0), -math.Nextafter32(v, 0), math.Nextafter32(v, 1e38), -math.Nextafter32(v, 1e38))
	}
	return xs
}

// TestActivationsAccurate holds tanh32 and sigmoid32 (the deterministic
// activations the CPU and the GPU share) to float32(math.Tanh) and
// float32(1/(1+math.Exp(-x))): at most one float32 ulp apart anywhere,
// and equal for almost every input.
func TestActivationsAccurate(t *testing.T) {
	xs := activationInputs()
	for _, fn := range []struct {
		name string
		f    func(float32) float32
		ref  func(float64) float64
	}{
		{"tanh", tanh32, math.Tanh},
		{"sigmoid", sigmoid32, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }},
	} {
		off := 0
		for _, x := range xs {
			got, want := fn.f(x), float32(fn.ref(float64(x)))
			if d := ulps(got, want); d > 1 {
				t.Fatalf("%s(%v) = %v, math gives %v (%d ulps)", fn.name, x, got, want, d)
			} else if d == 1 {
				off++
			}
		}
		if off*1000 > len(xs) {
			t.Fatalf("%s: %d of %d inputs are an ulp off", fn.name, off, len(xs))
		}
		t.Logf("%s: %d of %d inputs one ulp from the math library, the rest equal", fn.name, off, len(xs))
	}
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	if !math.IsNaN(float64(tanh32(nan))) || !math.IsNaN(float64(sigmoid32(nan))) {
		t.Fatal("NaN in, not NaN out")
	}
	if tanh32(inf) != 1 || tanh32(-inf) != -1 || sigmoid32(inf) != 1 || sigmoid32(-inf) != 0 {
		t.Fatal("infinities")
	}
	if z := tanh32(float32(math.Copysign(0, -1))); math.Float32bits(z) != 0x80000000 {
		t.Fatalf("tanh(-0) = %v", z)
	}
	if sigmoid32(0) != 0.5 || tanh32(0) != 0 {
		t.Fatal("zero")
	}
}

// TestExpDAccurate: expD, on the range the activations use, is within a
// few double ulps of math.Exp.
func TestExpDAccurate(t *testing.T) {
	for x := -64.0; x <= 128; x += 0.0013 {
		got, want := expD(x), math.Exp(x)
		if math.Abs(got-want) > 4e-16*want {
			t.Fatalf("expD(%v) = %v, math.Exp %v", x, got, want)
		}
	}
}
