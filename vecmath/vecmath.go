package vecmath

import (
	"fmt"
	"math"

	"github.com/lakeos/lake/liteflow/fixedpoint"
)

// DotPairs16 adds to every acc[o] the int16 pair dot products of x with
// column o of w:
//
//	acc[o] += Σ_p lo(w[p*n+o])*lo(x[p]) + hi(w[p*n+o])*hi(x[p])
//
// where n = len(acc), len(w) = len(x)*n, lo and hi are the signed low and
// high 16 bits of an int32, and every addition wraps at 32 bits. Pairs with
// x[p] == 0 add nothing and are skipped. Pack weights and inputs with
// PackPairs16.
func DotPairs16(acc, w, x []int32) { dotPairs16(acc, w, x, false) }

// DotPairs16ReLU is DotPairs16 followed by acc[o] = max(acc[o], 0).
func DotPairs16ReLU(acc, w, x []int32) { dotPairs16(acc, w, x, true) }

func dotPairs16(acc, w, x []int32, relu bool) {
	if len(w) != len(x)*len(acc) {
		panic(fmt.Sprintf("vecmath.DotPairs16: %d weights for %d inputs and %d outputs", len(w), len(x), len(acc)))
	}
	done := dotPairs16Vec(Current(), acc, w, x, relu)
	dotPairs16Scalar(acc, w, x, done, relu)
}

// dotPairs16Scalar is DotPairs16 (with relu, DotPairs16ReLU) for the
// columns from..len(acc)-1.
func dotPairs16Scalar(acc, w, x []int32, from int, relu bool) {
	n := len(acc)
	if from >= n {
		return
	}
	for p, xv := range x {
		if xv == 0 {
			continue
		}
		xl, xh := int32(int16(xv)), xv>>16
		row := w[p*n : (p+1)*n]
		for o := from; o < n; o++ {
			wv := row[o]
			acc[o] += int32(int16(wv))*xl + (wv>>16)*xh
		}
	}
	if relu {
		for o := from; o < n; o++ {
			acc[o] = max(acc[o], 0)
		}
	}
}

// PackPairs16 returns a and b (int16 values) as the int32 pair DotPairs16
// reads: a in the low half, b in the high half.
func PackPairs16(a, b int16) int32 { return int32(uint32(uint16(a)) | uint32(uint16(b))<<16) }

// MulAccI64 adds to every acc[o] the exact products of x with column o of w:
//
//	acc[o] += Σ_k int64(x[k]) * int64(int32(w[k*n+o]))
//
// where n = len(acc) and len(w) = len(x)*n; only the low 32 bits of each
// weight count (store sign-extended int32 weights). Sums wrap at 64 bits.
// Terms with x[k] == 0 are skipped.
func MulAccI64(acc, w []int64, x []int32) {
	if len(w) != len(x)*len(acc) {
		panic(fmt.Sprintf("vecmath.MulAccI64: %d weights for %d inputs and %d outputs", len(w), len(x), len(acc)))
	}
	done := mulAccI64Vec(Current(), acc, w, x)
	mulAccI64Scalar(acc, w, x, done)
}

func mulAccI64Scalar(acc, w []int64, x []int32, from int) {
	n := len(acc)
	if from >= n {
		return
	}
	for k, xv := range x {
		if xv == 0 {
			continue
		}
		x64 := int64(xv)
		row := w[k*n : (k+1)*n]
		for o := from; o < n; o++ {
			acc[o] += x64 * int64(int32(row[o]))
		}
	}
}

// MulAccWide is MulAccI64 with int64 inputs and full int64 weights:
// acc[o] += x[k] * w[k*n+o] for every k with x[k] != 0, products and sums
// wrapping at 64 bits (n = len(acc), len(w) = len(x)*n).
func MulAccWide(acc, w, x []int64) {
	if len(w) != len(x)*len(acc) {
		panic(fmt.Sprintf("vecmath.MulAccWide: %d weights for %d inputs and %d outputs", len(w), len(x), len(acc)))
	}
	done := mulAccWideVec(Current(), acc, w, x)
	n := len(acc)
	if done >= n {
		return
	}
	for k, xv := range x {
		if xv == 0 {
			continue
		}
		row := w[k*n : (k+1)*n]
		for o := done; o < n; o++ {
			acc[o] += xv * row[o]
		}
	}
}

// DotWide returns Σ_k x[k]*w[k], wrapping at 64 bits (len(w) = len(x)).
func DotWide(x, w []int64) int64 {
	if len(w) != len(x) {
		panic(fmt.Sprintf("vecmath.DotWide: %d weights for %d inputs", len(w), len(x)))
	}
	s, done := dotWideVec(Current(), x, w)
	for k := done; k < len(x); k++ {
		s += x[k] * w[k]
	}
	return s
}

// DotI64 returns Σ_k int64(x[k]) * int64(int32(w[k])) over len(x) = len(w)
// terms, wrapping at 64 bits; only the low 32 bits of each weight count.
func DotI64(x []int32, w []int64) int64 {
	if len(w) != len(x) {
		panic(fmt.Sprintf("vecmath.DotI64: %d weights for %d inputs", len(w), len(x)))
	}
	s, done := dotI64Vec(Current(), x, w)
	return s + dotI64Scalar(x[done:], w[done:])
}

// DotI64x2 returns DotI64(x, w0) and DotI64(x, w1) in one pass over x.
func DotI64x2(x []int32, w0, w1 []int64) (int64, int64) {
	if len(w0) != len(x) || len(w1) != len(x) {
		panic(fmt.Sprintf("vecmath.DotI64x2: %d and %d weights for %d inputs", len(w0), len(w1), len(x)))
	}
	s0, s1, done := dotI64x2Vec(Current(), x, w0, w1)
	return s0 + dotI64Scalar(x[done:], w0[done:]), s1 + dotI64Scalar(x[done:], w1[done:])
}

func dotI64Scalar(x []int32, w []int64) int64 {
	w = w[:len(x)]
	var s int64
	for k, xv := range x {
		s += int64(xv) * int64(int32(w[k]))
	}
	return s
}

// MulAddColsF32 adds to every y[o], for k = 0, 1, ... in order, the float32
// product x[k]*w[k*n+o] (n = len(y), len(w) = len(x)*n), rounding each
// product before the addition: y[o] = y[o] + float32(x[k]*w[k*n+o]). With
// skipZero, terms with x[k] == ±0 are skipped (not added as a zero).
func MulAddColsF32(y, w, x []float32, skipZero bool) {
	if len(w) != len(x)*len(y) {
		panic(fmt.Sprintf("vecmath.MulAddColsF32: %d weights for %d inputs and %d outputs", len(w), len(x), len(y)))
	}
	done := mulAddColsF32Vec(Current(), y, w, x, skipZero)
	mulAddColsF32Scalar(y, w, x, skipZero, done)
}

func mulAddColsF32Scalar(y, w, x []float32, skipZero bool, from int) {
	n := len(y)
	if from >= n {
		return
	}
	for k, xv := range x {
		if skipZero && xv == 0 {
			continue
		}
		row := w[k*n : (k+1)*n]
		for o := from; o < n; o++ {
			y[o] += float32(xv * row[o])
		}
	}
}

// DotSkip2F32 returns what the scalar loop
//
//	for k, v := range x {
//		if v != 0 {
//			s0 += float32(v * w0[k])
//			s1 += float32(v * w1[k])
//		}
//	}
//
// returns: two sums of rounded products, each added one at a time in
// order, over the inputs that are not ±0. With AVX-512 the products of
// the non-zero inputs are computed and packed (VCOMPRESSPS) 16 at a time,
// so the additions (a serial chain the order fixes) run without a branch
// per input. w0 and w1 must be at least as long as x.
func DotSkip2F32(x, w0, w1 []float32, s0, s1 float32) (float32, float32) {
	w0, w1 = w0[:len(x)], w1[:len(x)]
	lv := Current()
	for len(x) > 0 {
		var d0, d1 [64 + 15]float32
		covered, n := mulCompress2F32Vec(lv, x, w0, w1, d0[:], d1[:])
		if covered == 0 {
			break
		}
		for i, p := range d0[:n] {
			s0 += p
			s1 += d1[i]
		}
		x, w0, w1 = x[covered:], w0[covered:], w1[covered:]
	}
	for k, v := range x {
		if v != 0 {
			s0 += float32(v * w0[k])
			s1 += float32(v * w1[k])
		}
	}
	return s0, s1
}

// ReLUF32 sets every y[i] < 0 to +0 (NaN and -0 stay), as the scalar
// `if v < 0 { v = 0 }` does.
func ReLUF32(y []float32) {
	done := reluF32Vec(Current(), y)
	reluF32Scalar(y[done:])
}

func reluF32Scalar(y []float32) {
	for i, v := range y {
		if v < 0 {
			y[i] = 0
		}
	}
}

// Requant applies TFLite's integer requantization (package
// liteflow/fixedpoint, whose functions are the reference) to every acc[o]:
//
//	r = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
//	        SaturatingLeftShift(acc[o], left[o]), mult[o]), right[o])
//	dst[o] = min(max(r + zero, lo), hi)    (exact, not wrapping)
//
// for o < len(dst); acc, mult, left and right must be as long as dst.
// Shifts outside [0, 31] are clamped as the fixedpoint functions clamp them.
func Requant(dst, acc, mult, left, right []int32, zero, lo, hi int32) {
	n := len(dst)
	if len(acc) != n || len(mult) != n || len(left) != n || len(right) != n {
		panic(fmt.Sprintf("vecmath.Requant: %d outputs with %d/%d/%d/%d accumulators/multipliers/shifts", n, len(acc), len(mult), len(left), len(right)))
	}
	done := 0
	// The vector code clamps r to [lo-zero, hi-zero] and then adds zero,
	// which needs both bounds in int32.
	clo, chi := int64(lo)-int64(zero), int64(hi)-int64(zero)
	if clo >= math.MinInt32 && clo <= math.MaxInt32 && chi >= math.MinInt32 && chi <= math.MaxInt32 {
		done = requantVec(Current(), dst, acc, mult, left, right, zero, int32(clo), int32(chi))
	}
	requantScalar(dst, acc, mult, left, right, zero, lo, hi, done)
}

func requantScalar(dst, acc, mult, left, right []int32, zero, lo, hi int32, from int) {
	for o := from; o < len(dst); o++ {
		r := fixedpoint.RoundingDivideByPOT(fixedpoint.SaturatingRoundingDoublingHighMul(fixedpoint.SaturatingLeftShift(acc[o], int(left[o])), mult[o]), int(right[o]))
		dst[o] = int32(min(max(int64(r)+int64(zero), int64(lo)), int64(hi)))
	}
}

// Lanes is the number of interleaved items MulAddLanesF32 runs side by side.
const Lanes = 16

// MulAddLanesF32 runs a dense float32 layer on Lanes interleaved items:
// with in = len(x)/Lanes and outs = len(y)/Lanes, for every output o and
// lane l, for i = 0, 1, ... in order,
//
//	y[o*Lanes+l] = y[o*Lanes+l] + float32(w[o*in+i] * x[i*Lanes+l])
//
// (w row-major [outs][in]; each product rounded before the addition),
// skipping the terms with x[i*Lanes+l] == ±0 when skipZero; then, with
// relu, y = 0 wherever y < 0. Each lane computes exactly what a scalar loop
// over one item computes (NaN payloads aside).
func MulAddLanesF32(y, w, x []float32, skipZero, relu bool) {
	if len(y)%Lanes != 0 || len(x)%Lanes != 0 || len(w) != len(y)/Lanes*(len(x)/Lanes) {
		panic(fmt.Sprintf("vecmath.MulAddLanesF32: %d outputs, %d weights, %d inputs", len(y), len(w), len(x)))
	}
	in := len(x) / Lanes
	if len(y) == 0 || mulAddLanesF32Vec(Current(), y, w, x, in, skipZero, relu) {
		return
	}
	mulAddLanesF32Scalar(y, w, x, in, skipZero, relu)
}

func mulAddLanesF32Scalar(y, w, x []float32, in int, skipZero, relu bool) {
	for o := 0; o < len(y)/Lanes; o++ {
		row := w[o*in : (o+1)*in]
		for l := 0; l < Lanes; l++ {
			s := y[o*Lanes+l]
			for i, wv := range row {
				xv := x[i*Lanes+l]
				if skipZero && xv == 0 {
					continue
				}
				s += float32(xv * wv)
			}
			if relu && s < 0 {
				s = 0
			}
			y[o*Lanes+l] = s
		}
	}
}

// SameF32 reports whether a and b hold the same float32 bits, counting
// every NaN as equal to every NaN; it is how tests compare float results
// across levels (Go does not specify NaN payloads, and
// which operand's payload survives depends on the compiler's operand order).
func SameF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

// QuantizeF32 maps every x[i] into an integer domain: v = x[i]/scale (a
// float32 division); dst[i] = zero when v is NaN, else
// clamp(round(v) + zero, lo, hi) with round to nearest, ties away from zero
// (math.Round), computed exactly. lo <= hi is the caller's to ensure; len(x)
// must equal len(dst).
func QuantizeF32(dst []int32, x []float32, scale float32, zero, lo, hi int32) {
	if len(x) != len(dst) {
		panic(fmt.Sprintf("vecmath.QuantizeF32: %d inputs for %d outputs", len(x), len(dst)))
	}
	done := quantizeF32Vec(Current(), dst, x, scale, zero, lo, hi)
	for i := done; i < len(dst); i++ {
		dst[i] = quantizeScalar(x[i], scale, zero, lo, hi)
	}
}

func quantizeScalar(x, scale float32, zero, lo, hi int32) int32 {
	v := float64(x / scale)
	if math.IsNaN(v) {
		return zero
	}
	r := math.Round(v) + float64(zero)
	if r < float64(lo) {
		return lo
	}
	if r > float64(hi) {
		return hi
	}
	return int32(r)
}

// PackedIndex is where PackColsI32 puts column o (of n) of a row: within
// each block of 16 columns, column 16b+i sits at 16b+2i and column
// 16b+8+i at 16b+2i+1 (i < 8); columns past the last whole block keep
// their place.
func PackedIndex(o, n int) int {
	if o >= n/16*16 {
		return o
	}
	b, i := o/16, o%16
	if i < 8 {
		return 16*b + 2*i
	}
	return 16*b + 2*(i-8) + 1
}

// PackColsI32 returns the rows of w (len(w)/n rows of n int32 columns)
// in MulAccPacked's layout.
func PackColsI32(w []int32, n int) []int32 {
	p := make([]int32, len(w))
	if n == 0 {
		return p
	}
	for k := 0; k < len(w)/n; k++ {
		for o := 0; o < n; o++ {
			p[k*n+PackedIndex(o, n)] = w[k*n+o]
		}
	}
	return p
}

// MulAccPacked is MulAccI64 with int32 weights in PackColsI32's layout
// (half the memory of sign-extended int64 weights):
//
//	acc[o] += Σ_k int64(x[k]) * int64(w[k*n+PackedIndex(o, n)])
//
// exactly, wrapping at 64 bits, skipping x[k] == 0 (n = len(acc)).
func MulAccPacked(acc []int64, w, x []int32) {
	if len(w) != len(x)*len(acc) {
		panic(fmt.Sprintf("vecmath.MulAccPacked: %d weights for %d inputs and %d outputs", len(w), len(x), len(acc)))
	}
	done := mulAccPackedVec(Current(), acc, w, x)
	n := len(acc)
	if done >= n {
		return
	}
	for k, xv := range x {
		if xv == 0 {
			continue
		}
		row := w[k*n : (k+1)*n]
		for o := done; o < n; o++ {
			acc[o] += int64(xv) * int64(row[PackedIndex(o, n)])
		}
	}
}

// MulAccPackedIdx is MulAccPacked for several items over listed rows: with
// n = len(acc)/items outputs and rows = len(w)/n packed rows (PackColsI32's
// layout), for every item b < items, every j < len(idx) and o < n,
//
//	acc[b*n+o] += int64(hv[j*items+b]) * int64(w[idx[j]*n+PackedIndex(o, n)])
//
// exactly (int64 products of int32s, wrapping sums). The caller lists the
// rows where some item's input is non-zero (the others add nothing), so a
// listed row's weights are read once for all items. With AVX-512, items
// of 1, 2 or 4 and n a multiple of 16 run in one pass over the list per
// group of outputs. It panics on inconsistent lengths or a row index out
// of range.
func MulAccPackedIdx(acc []int64, w, idx, hv []int32, items int) {
	if items < 1 || len(acc)%items != 0 || len(hv) != len(idx)*items {
		panic(fmt.Sprintf("vecmath.MulAccPackedIdx: %d accumulators, %d values, %d rows for %d items", len(acc), len(hv), len(idx), items))
	}
	n := len(acc) / items
	if n == 0 {
		return
	}
	rows := len(w) / n
	if len(w) != rows*n || (rows == 0 && len(idx) > 0) {
		panic(fmt.Sprintf("vecmath.MulAccPackedIdx: %d weights for %d outputs", len(w), n))
	}
	var bad uint32
	for _, k := range idx {
		bad |= uint32(k) / uint32(rows) // non-zero when k < 0 or k >= rows
	}
	if bad != 0 {
		panic(fmt.Sprintf("vecmath.MulAccPackedIdx: a row index outside [0, %d)", rows))
	}
	if mulAccIdxVec(Current(), acc, w, idx, hv, items, n) {
		return
	}
	mulAccIdxScalar(acc, w, idx, hv, items, n)
}

func mulAccIdxScalar(acc []int64, w, idx, hv []int32, items, n int) {
	for j, k := range idx {
		row := w[int(k)*n : (int(k)+1)*n]
		for b := 0; b < items; b++ {
			xv := int64(hv[j*items+b])
			if xv == 0 {
				continue
			}
			a := acc[b*n : (b+1)*n]
			for o := range a {
				a[o] += xv * int64(row[PackedIndex(o, n)])
			}
		}
	}
}
