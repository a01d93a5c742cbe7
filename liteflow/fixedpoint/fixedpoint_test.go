package fixedpoint

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// exactSRDHM computes floor((a*b + 2^30) / 2^31) with big integers, which is
// 2ab/2^32 rounded half up, saturated to int32.
func exactSRDHM(a, b int32) int32 {
	p := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(b)))
	p.Add(p, big.NewInt(1<<30))
	q := new(big.Int).Div(p, big.NewInt(1<<31)) // Euclidean: floor for positive divisor
	return sat32(q)
}

func sat32(q *big.Int) int32 {
	if q.Cmp(big.NewInt(math.MaxInt32)) > 0 {
		return math.MaxInt32
	}
	if q.Cmp(big.NewInt(math.MinInt32)) < 0 {
		return math.MinInt32
	}
	return int32(q.Int64())
}

// exactRDBP computes x / 2^e rounded to nearest, ties away from zero, exactly.
func exactRDBP(x int32, e int) int32 {
	r := new(big.Rat).SetFrac(big.NewInt(int64(x)), new(big.Int).Lsh(big.NewInt(1), uint(e)))
	neg := r.Sign() < 0
	r.Abs(r)
	r.Add(r, big.NewRat(1, 2))
	q := new(big.Int).Quo(r.Num(), r.Denom()) // floor of non-negative
	if neg {
		q.Neg(q)
	}
	return sat32(q)
}

var edge = []int32{math.MinInt32, math.MinInt32 + 1, -1 << 30, -(1 << 30) - 1, -3, -2, -1, 0, 1, 2, 3, 1 << 30, 1<<30 + 1, math.MaxInt32 - 1, math.MaxInt32}

func TestSRDHMEdgeCases(t *testing.T) {
	for _, a := range edge {
		for _, b := range edge {
			if got, want := SaturatingRoundingDoublingHighMul(a, b), exactSRDHM(a, b); got != want {
				t.Errorf("SRDHM(%d, %d) = %d, want %d", a, b, got, want)
			}
		}
	}
	if got := SaturatingRoundingDoublingHighMul(math.MinInt32, math.MinInt32); got != math.MaxInt32 {
		t.Errorf("SRDHM(MIN, MIN) = %d, want saturation to MAX", got)
	}
	// Ties: 2ab/2^32 = -0.5 rounds up to 0, +0.5 rounds up to 1.
	if got := SaturatingRoundingDoublingHighMul(-(1 << 30), 1); got != 0 {
		t.Errorf("SRDHM tie -0.5 = %d, want 0", got)
	}
	if got := SaturatingRoundingDoublingHighMul(1<<30, 1); got != 1 {
		t.Errorf("SRDHM tie +0.5 = %d, want 1", got)
	}
}

func TestSRDHMRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		a, b := int32(r.Uint32()), int32(r.Uint32())
		if got, want := SaturatingRoundingDoublingHighMul(a, b), exactSRDHM(a, b); got != want {
			t.Fatalf("SRDHM(%d, %d) = %d, want %d", a, b, got, want)
		}
	}
}

func TestRoundingDivideByPOT(t *testing.T) {
	for _, x := range edge {
		for e := 0; e <= 31; e++ {
			if got, want := RoundingDivideByPOT(x, e), exactRDBP(x, e); got != want {
				t.Errorf("RDBP(%d, %d) = %d, want %d", x, e, got, want)
			}
		}
	}
	// Negative ties round away from zero: -3/2 = -1.5 -> -2; -5/4 = -1.25 -> -1.
	cases := []struct {
		x    int32
		e    int
		want int32
	}{{-3, 1, -2}, {3, 1, 2}, {-5, 2, -1}, {-6, 2, -2}, {-1, 1, -1}, {1, 1, 1}, {math.MinInt32, 31, -1}, {math.MaxInt32, 31, 1}}
	for _, c := range cases {
		if got := RoundingDivideByPOT(c.x, c.e); got != c.want {
			t.Errorf("RDBP(%d, %d) = %d, want %d", c.x, c.e, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		x, e := int32(r.Uint32()), r.IntN(32)
		if got, want := RoundingDivideByPOT(x, e), exactRDBP(x, e); got != want {
			t.Fatalf("RDBP(%d, %d) = %d, want %d", x, e, got, want)
		}
	}
}

func TestSaturatingLeftShift(t *testing.T) {
	if got := SaturatingLeftShift(math.MaxInt32, 1); got != math.MaxInt32 {
		t.Errorf("MAX<<1 = %d, want MAX", got)
	}
	if got := SaturatingLeftShift(math.MinInt32, 3); got != math.MinInt32 {
		t.Errorf("MIN<<3 = %d, want MIN", got)
	}
	if got := SaturatingLeftShift(-5, 2); got != -20 {
		t.Errorf("-5<<2 = %d, want -20", got)
	}
}

// exactMBQM follows the three stages with big integers.
func exactMBQM(x, m int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	xs := sat32(new(big.Int).Lsh(big.NewInt(int64(x)), uint(left)))
	return exactRDBP(exactSRDHM(xs, m), right)
}

func TestMultiplyByQuantizedMultiplier(t *testing.T) {
	ms := []int32{0, 1 << 30, 1<<30 + 12345, math.MaxInt32}
	for _, x := range edge {
		for _, m := range ms {
			for s := MinShift; s <= MaxShift; s++ {
				if got, want := MultiplyByQuantizedMultiplier(x, m, s), exactMBQM(x, m, s); got != want {
					t.Fatalf("MBQM(%d, %d, %d) = %d, want %d", x, m, s, got, want)
				}
			}
		}
	}
	// Against real arithmetic: for an unsaturated result the error is at most
	// one unit (two roundings of at most half a unit each).
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20000; i++ {
		real := math.Ldexp(r.Float64()+0.01, -r.IntN(20))
		m, s, err := QuantizeMultiplier(real)
		if err != nil {
			t.Fatal(err)
		}
		x := int32(r.IntN(1<<22)) - 1<<21
		got := float64(MultiplyByQuantizedMultiplier(x, m, s))
		want := float64(x) * real
		if math.Abs(got-want) > 1+math.Abs(want)*1e-9 {
			t.Fatalf("MBQM(%d, %v) = %v, real %v", x, real, got, want)
		}
	}
	if got := MultiplyByQuantizedMultiplier(math.MaxInt32, math.MaxInt32, 30); got != math.MaxInt32-1 {
		t.Errorf("saturating case = %d, want MAX-1", got)
	}
	if got := MultiplyByQuantizedMultiplier(math.MinInt32, math.MaxInt32, 30); got != math.MinInt32+1 {
		t.Errorf("negative saturating case = %d, want MIN+1", got)
	}
}

func TestQuantizeMultiplier(t *testing.T) {
	for _, real := range []float64{1e-12, 1e-6, 0.0039, 0.25, 0.5, 0.7, 0.99999999999, 1, 1.5, 1000} {
		m, s, err := QuantizeMultiplier(real)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidMultiplier(m, s) {
			t.Fatalf("QuantizeMultiplier(%v) = (%d, %d) not valid", real, m, s)
		}
		if real < math.Ldexp(1, MinShift-1) {
			if m != 0 {
				t.Errorf("tiny %v should flush to 0, got %d", real, m)
			}
			continue
		}
		if rel := math.Abs(Float(m, s)-real) / real; rel > 1e-9 {
			t.Errorf("QuantizeMultiplier(%v) = %v (rel err %v)", real, Float(m, s), rel)
		}
	}
	// Rounding up to 2^31 renormalises.
	m, s, _ := QuantizeMultiplier(math.Nextafter(1, 0))
	if m != 1<<30 || s != 1 {
		t.Errorf("QuantizeMultiplier(1-eps) = (%d, %d), want (2^30, 1)", m, s)
	}
	m, s, _ = QuantizeMultiplier(1e12)
	if m != math.MaxInt32 || s != MaxShift {
		t.Errorf("huge multiplier not clamped: (%d, %d)", m, s)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, _, err := QuantizeMultiplier(bad); err == nil {
			t.Errorf("QuantizeMultiplier(%v) accepted", bad)
		}
	}
}
