package kernels

import "math"

// The tanh and sigmoid activations, defined by a fixed sequence of
// IEEE-754 double-precision operations (every product, sum and quotient
// rounded once, never fused; see the explicit float64 conversions),
// then rounded to float32. The GPU's MLP kernel (lake_mlp in
// laked/backend/cuda/ptx/lake.cu) performs the same sequence with
// explicitly rounded device operations, so an MLP computes the same bits
// on the CPU and the GPU. Both are within one float32 ulp of
// float32(math.Tanh(x)) and float32(1/(1+math.Exp(-x)))
// (TestActivationsAccurate), whose results depend on the platform's
// math library and so cannot be matched bit for bit on a GPU. The
// constants and steps must stay identical to lake.cu's lake_expd,
// lake_tanhf and lake_sigmoidf.

// Cody-Waite split of ln 2: ln2Hi has its low 21 bits zero, so k*ln2Hi
// is exact for |k| < 2^11.
// The constants are written as hex floats, exactly as in lake.cu.
const (
	log2E = 0x1.71547652b82fep+00 // log2(e)
	ln2Hi = 0x1.62e42feep-01
	ln2Lo = 0x1.a39ef35793c76p-33
	third = -0x1.5555555555555p-02 // -1/3
)

// expTaylor holds 1/13!, 1/12!, ..., 1/2!, 1, 1 for Horner's rule.
var expTaylor = [14]float64{
	0x1.6124613a86d09p-33, 0x1.1eed8eff8d898p-29, 0x1.ae64567f544e4p-26, 0x1.27e4fb7789f5cp-22,
	0x1.71de3a556c734p-19, 0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-13, 0x1.6c16c16c16c17p-10,
	0x1.1111111111111p-07, 0x1.5555555555555p-05, 0x1.5555555555555p-03, 0x1p-01,
	1, 1,
}

// expD is e^x for x in [-64, 128] (the callers clamp): x = k ln2 + r
// with |r| <= ln2/2, e^r by its Taylor polynomial of degree 13 (error
// below 2^-56), times 2^k built from its bits.
func expD(x float64) float64 {
	t := float64(x * log2E)
	if t < 0 {
		t = t - 0.5
	} else {
		t = t + 0.5
	}
	k := int64(t) // truncation: t rounded to the nearest integer
	kf := float64(k)
	r := x - float64(kf*ln2Hi)
	r = r - float64(kf*ln2Lo)
	p := expTaylor[0]
	for _, c := range expTaylor[1:] {
		p = float64(p*r) + c
	}
	return float64(p * math.Float64frombits(uint64(k+1023)<<52))
}

// tanh32 is the MLP's tanh activation.
func tanh32(v float32) float32 {
	x := float64(v)
	if x != x || x == 0 {
		return v // NaN, ±0
	}
	ax := math.Abs(x)
	var y float64
	switch {
	case ax < 0x1p-10:
		// tanh x = x - x^3/3 + 2x^5/15 - ...: the x^5 term is below
		// 2^-40 of x here.
		x2 := float64(x * x)
		y = x + float64(x*float64(x2*third))
		return float32(y)
	case ax > 20:
		y = 1 // 1 - 2e^-40 rounds to 1
	default:
		e := expD(ax + ax)
		y = 1 - 2/(e+1)
	}
	if x < 0 {
		y = -y
	}
	return float32(y)
}

// sigmoid32 is the MLP's sigmoid activation.
func sigmoid32(v float32) float32 {
	x := float64(v)
	switch {
	case x != x:
		return v
	case x >= 40:
		return 1 // 1/(1+e^-40) rounds to 1
	case x <= -120:
		return 0 // e^-120 is far below float32's smallest subnormal
	}
	return float32(1 / (1 + expD(-x)))
}
