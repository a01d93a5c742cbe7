package fixedpoint

import (
	"fmt"
	"math"
)

// Limits on the shift accepted by MultiplyByQuantizedMultiplier. A positive
// shift is a left shift, a negative one a rounding right shift.
const (
	MinShift = -31
	MaxShift = 30
)

// SaturatingRoundingDoublingHighMul returns the high 32 bits of 2*a*b,
// rounded half up (towards +inf), saturating the single overflowing case
// a == b == math.MinInt32 to math.MaxInt32. It is gemmlowp's / TFLite's
// reference function of the same name.
func SaturatingRoundingDoublingHighMul(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	// Go's integer division truncates towards zero, as C's does.
	return int32((ab + nudge) / (1 << 31))
}

// RoundingDivideByPOT returns x / 2^exponent rounded to nearest, ties away
// from zero, for exponent in [0, 31]. Exponents outside that range are
// clamped. It is TFLite's reference RoundingDivideByPOT.
func RoundingDivideByPOT(x int32, exponent int) int32 {
	if exponent <= 0 {
		return x
	}
	if exponent > 31 {
		exponent = 31
	}
	mask := int64(1)<<exponent - 1
	remainder := int64(x) & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	r := int64(x) >> exponent
	if remainder > threshold {
		r++
	}
	return int32(r)
}

// SaturatingLeftShift returns x * 2^shift saturated to the int32 range, for
// shift in [0, 31]. TFLite's reference leaves overflow undefined; lake
// saturates so that a hostile snapshot cannot produce undefined behaviour in
// the C engine.
func SaturatingLeftShift(x int32, shift int) int32 {
	if shift <= 0 {
		return x
	}
	if shift > 31 {
		shift = 31
	}
	v := int64(x) << shift
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	if v < math.MinInt32 {
		return math.MinInt32
	}
	return int32(v)
}

// MultiplyByQuantizedMultiplier returns x * multiplier * 2^shift / 2^31 with
// TFLite's reference rounding: a saturating left shift by max(shift, 0), a
// SaturatingRoundingDoublingHighMul by multiplier, then a RoundingDivideByPOT
// by max(-shift, 0).
func MultiplyByQuantizedMultiplier(x, multiplier int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	return RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(SaturatingLeftShift(x, left), multiplier), right)
}

// QuantizeMultiplier converts a real multiplier into a Q31 fixed-point
// multiplier in [2^30, 2^31) (or 0) and a shift in [MinShift, MaxShift] so
// that real ≈ multiplier * 2^shift / 2^31. It mirrors TFLite's
// QuantizeMultiplier, including flushing tiny values to zero and clamping
// huge ones. It returns an error for negative, NaN or infinite input.
func QuantizeMultiplier(real float64) (multiplier int32, shift int, err error) {
	if math.IsNaN(real) || math.IsInf(real, 0) || real < 0 {
		return 0, 0, fmt.Errorf("fixedpoint: multiplier %v must be finite and non-negative", real)
	}
	if real == 0 {
		return 0, 0, nil
	}
	frac, exp := math.Frexp(real) // real = frac * 2^exp, frac in [0.5, 1)
	q := int64(math.Round(frac * (1 << 31)))
	if q == 1<<31 {
		q /= 2
		exp++
	}
	if exp < MinShift {
		return 0, 0, nil
	}
	if exp > MaxShift {
		return math.MaxInt32, MaxShift, nil
	}
	return int32(q), exp, nil
}

// ValidMultiplier reports whether (multiplier, shift) is a pair that
// QuantizeMultiplier can produce: multiplier 0 or in [2^30, 2^31), and shift
// in [MinShift, MaxShift].
func ValidMultiplier(multiplier int32, shift int) bool {
	if shift < MinShift || shift > MaxShift {
		return false
	}
	return multiplier == 0 || multiplier >= 1<<30
}

// Float returns the real value that the (multiplier, shift) pair represents.
func Float(multiplier int32, shift int) float64 {
	return math.Ldexp(float64(multiplier), shift-31)
}
