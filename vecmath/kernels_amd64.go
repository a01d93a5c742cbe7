//go:build !purego

package vecmath

import "unsafe"

//go:noescape
func dotPairs16AVX2(acc *int32, w *int32, x *int32, blocks, stride, pairs int, relu bool)

//go:noescape
func dotPairs16AVX512(acc *int32, w *int32, x *int32, blocks, stride, pairs int, relu bool)

//go:noescape
func dotPairs16VNNI(acc *int32, w *int32, x *int32, blocks, stride, pairs int, relu bool)

//go:noescape
func mulAccI64AVX2(acc *int64, w *int64, x *int32, blocks, stride, n int)

//go:noescape
func mulAccI64AVX512(acc *int64, w *int64, x *int32, blocks, stride, n int)

//go:noescape
func dotI64AVX2(x *int32, w *int64, blocks int) int64

//go:noescape
func dotI64AVX512(x *int32, w *int64, blocks int) int64

//go:noescape
func dotI64x2AVX2(x *int32, w0, w1 *int64, blocks int) (s0, s1 int64)

//go:noescape
func dotI64x2AVX512(x *int32, w0, w1 *int64, blocks int) (s0, s1 int64)

//go:noescape
func requantAVX2(dst, acc, mult, left, right *int32, blocks int, zero, clo, chi int32)

//go:noescape
func requantAVX512(dst, acc, mult, left, right *int32, blocks int, zero, clo, chi int32)

//go:noescape
func mulAddLanesF32AVX2(y *float32, w *float32, x *float32, outs, in int, skipZero, relu bool)

//go:noescape
func mulAddLanesF32AVX512(y *float32, w *float32, x *float32, outs, in int, skipZero, relu bool)

//go:noescape
func mulAccWideAVX2(acc *int64, w *int64, x *int64, blocks, stride, n int)

//go:noescape
func mulAccWideAVX512(acc *int64, w *int64, x *int64, blocks, stride, n int)

//go:noescape
func dotWideAVX2(x *int64, w *int64, blocks int) int64

//go:noescape
func dotWideAVX512(x *int64, w *int64, blocks int) int64

//go:noescape
func quantizeF32AVX2(dst *int32, x *float32, blocks int, scale float32, zero, lo, hi int32)

//go:noescape
func quantizeF32AVX512(dst *int32, x *float32, blocks int, scale float32, zero, lo, hi int32)

//go:noescape
func net8AVX512(desc *net8Desc, n int, act *int32, xp *int32, lo, hi int32, in *int32, inMask uint64)

//go:noescape
func net8LanesAVX2(desc *net8Desc, n int, act *int32, xp *int32, lo, hi int32)

//go:noescape
func net8LanesAVX512(desc *net8Desc, n int, act *int32, xp *int32, lo, hi int32)

// haveLanes: the lane kernels exist in this build.
const haveLanes = true

func net8LanesVec(l Level, desc []net8Desc, act, xp []int32, lo, hi int32) {
	d, a, x := unsafe.SliceData(desc), unsafe.SliceData(act), unsafe.SliceData(xp)
	if l >= AVX512 {
		net8LanesAVX512(d, len(desc), a, x, lo, hi)
	} else {
		net8LanesAVX2(d, len(desc), a, x, lo, hi)
	}
}

//go:noescape
func mulCompress2F32AVX512(x, w0, w1 *float32, blocks int, d0, d1 *float32) int

// mulCompress2F32Vec compresses the first blocks of 16 of x (see
// DotSkip2F32) into d0 and d1 and returns how many x it covered and how
// many products it wrote.
func mulCompress2F32Vec(l Level, x, w0, w1, d0, d1 []float32) (covered, n int) {
	blocks := min(len(x)/16, (len(d0)-15)/16, (len(d1)-15)/16)
	if l < AVX512 || blocks <= 0 {
		return 0, 0
	}
	n = mulCompress2F32AVX512(unsafe.SliceData(x), unsafe.SliceData(w0), unsafe.SliceData(w1), blocks, unsafe.SliceData(d0), unsafe.SliceData(d1))
	return blocks * 16, n
}

//go:noescape
func mulAccIdx1AVX512(acc *int64, w *int32, idx *int32, hv *int32, cnt, blocks, rowBytes, accStride int)

//go:noescape
func mulAccIdx2AVX512(acc *int64, w *int32, idx *int32, hv *int32, cnt, blocks, rowBytes, accStride int)

//go:noescape
func mulAccIdx4AVX512(acc *int64, w *int32, idx *int32, hv *int32, cnt, blocks, rowBytes, accStride int)

// mulAccIdxVec runs the kernel for items (1, 2 or 4) on the first
// outputs of n (a multiple of 16) and reports whether it ran.
func mulAccIdxVec(l Level, acc []int64, w, idx, hv []int32, items, n int) bool {
	if l < AVX512 || n < 16 || n%16 != 0 || len(idx) == 0 {
		return false
	}
	a, wp, ip, hp := unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(idx), unsafe.SliceData(hv)
	switch items {
	case 1:
		mulAccIdx1AVX512(a, wp, ip, hp, len(idx), n/16, 4*n, 8*n)
	case 2:
		mulAccIdx2AVX512(a, wp, ip, hp, len(idx), n/16, 4*n, 8*n)
	case 4:
		mulAccIdx4AVX512(a, wp, ip, hp, len(idx), n/16, 4*n, 8*n)
	default:
		return false
	}
	return true
}

//go:noescape
func reluF32AVX2(y *float32, blocks int)

//go:noescape
func reluF32AVX512(y *float32, blocks int)

func reluF32Vec(l Level, y []float32) int {
	n := len(y)
	switch {
	case l >= AVX512 && n >= 16:
		reluF32AVX512(unsafe.SliceData(y), n/16)
		return n / 16 * 16
	case l >= AVX2 && n >= 8:
		reluF32AVX2(unsafe.SliceData(y), n/8)
		return n / 8 * 8
	}
	return 0
}

//go:noescape
func mulAccPAVX2(acc *int64, w *int32, x *int32, blocks, stride, n int)

//go:noescape
func mulAccPAVX512(acc *int64, w *int32, x *int32, blocks, stride, n int)

//go:noescape
func mulAddColsF32AVX2(y *float32, w *float32, x *float32, blocks, stride, n int, skipZero bool)

//go:noescape
func mulAddColsF32AVX512(y *float32, w *float32, x *float32, blocks, stride, n int, skipZero bool)

// dotPairs16Vec runs the vector kernel on the first columns of acc and
// returns how many it covered.
func dotPairs16Vec(l Level, acc, w, x []int32, relu bool) int {
	n := len(acc)
	switch {
	case l >= AVX512VNNI && n >= 16:
		dotPairs16VNNI(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/16, 4*n, len(x), relu)
		return n / 16 * 16
	case l >= AVX512 && n >= 16:
		dotPairs16AVX512(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/16, 4*n, len(x), relu)
		return n / 16 * 16
	case l >= AVX2 && n >= 8:
		dotPairs16AVX2(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/8, 4*n, len(x), relu)
		return n / 8 * 8
	}
	return 0
}

func mulAccI64Vec(l Level, acc, w []int64, x []int32) int {
	n := len(acc)
	switch {
	case l >= AVX512 && n >= 8 && len(x) > 0:
		mulAccI64AVX512(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/8, 8*n, len(x))
		return n / 8 * 8
	case l >= AVX2 && n >= 4 && len(x) > 0:
		mulAccI64AVX2(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/4, 8*n, len(x))
		return n / 4 * 4
	}
	return 0
}

func dotI64Vec(l Level, x []int32, w []int64) (int64, int) {
	n := len(x)
	switch {
	case l >= AVX512 && n >= 8:
		return dotI64AVX512(unsafe.SliceData(x), unsafe.SliceData(w), n/8), n / 8 * 8
	case l >= AVX2 && n >= 4:
		return dotI64AVX2(unsafe.SliceData(x), unsafe.SliceData(w), n/4), n / 4 * 4
	}
	return 0, 0
}

func dotI64x2Vec(l Level, x []int32, w0, w1 []int64) (int64, int64, int) {
	n := len(x)
	switch {
	case l >= AVX512 && n >= 8:
		s0, s1 := dotI64x2AVX512(unsafe.SliceData(x), unsafe.SliceData(w0), unsafe.SliceData(w1), n/8)
		return s0, s1, n / 8 * 8
	case l >= AVX2 && n >= 4:
		s0, s1 := dotI64x2AVX2(unsafe.SliceData(x), unsafe.SliceData(w0), unsafe.SliceData(w1), n/4)
		return s0, s1, n / 4 * 4
	}
	return 0, 0, 0
}

func requantVec(l Level, dst, acc, mult, left, right []int32, zero, clo, chi int32) int {
	n := len(dst)
	d, a, m, sl, sr := unsafe.SliceData(dst), unsafe.SliceData(acc), unsafe.SliceData(mult), unsafe.SliceData(left), unsafe.SliceData(right)
	switch {
	case l >= AVX512 && n >= 16:
		requantAVX512(d, a, m, sl, sr, n/16, zero, clo, chi)
		return n / 16 * 16
	case l >= AVX2 && n >= 8:
		requantAVX2(d, a, m, sl, sr, n/8, zero, clo, chi)
		return n / 8 * 8
	}
	return 0
}

func mulAddColsF32Vec(l Level, y, w, x []float32, skipZero bool) int {
	n := len(y)
	switch {
	case l >= AVX512 && n >= 16 && len(x) > 0:
		mulAddColsF32AVX512(unsafe.SliceData(y), unsafe.SliceData(w), unsafe.SliceData(x), n/16, 4*n, len(x), skipZero)
		return n / 16 * 16
	case l >= AVX2 && n >= 8 && len(x) > 0:
		mulAddColsF32AVX2(unsafe.SliceData(y), unsafe.SliceData(w), unsafe.SliceData(x), n/8, 4*n, len(x), skipZero)
		return n / 8 * 8
	}
	return 0
}

func mulAddLanesF32Vec(l Level, y, w, x []float32, in int, skipZero, relu bool) bool {
	outs := len(y) / Lanes
	switch {
	case l >= AVX512:
		mulAddLanesF32AVX512(unsafe.SliceData(y), unsafe.SliceData(w), unsafe.SliceData(x), outs, in, skipZero, relu)
		return true
	case l >= AVX2:
		mulAddLanesF32AVX2(unsafe.SliceData(y), unsafe.SliceData(w), unsafe.SliceData(x), outs, in, skipZero, relu)
		return true
	}
	return false
}

func mulAccWideVec(l Level, acc, w, x []int64) int {
	n := len(acc)
	switch {
	case l >= AVX512 && n >= 8:
		mulAccWideAVX512(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/8, 8*n, len(x))
		return n / 8 * 8
	case l >= AVX2 && n >= 4:
		mulAccWideAVX2(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/4, 8*n, len(x))
		return n / 4 * 4
	}
	return 0
}

func dotWideVec(l Level, x, w []int64) (int64, int) {
	n := len(x)
	switch {
	case l >= AVX512 && n >= 8:
		return dotWideAVX512(unsafe.SliceData(x), unsafe.SliceData(w), n/8), n / 8 * 8
	case l >= AVX2 && n >= 4:
		return dotWideAVX2(unsafe.SliceData(x), unsafe.SliceData(w), n/4), n / 4 * 4
	}
	return 0, 0
}

func quantizeF32Vec(l Level, dst []int32, x []float32, scale float32, zero, lo, hi int32) int {
	n := len(dst)
	width := 8
	switch {
	case l >= AVX512 && n >= 16:
		width = 16
	case l < AVX2 || n < 8:
		return 0
	}
	d, xs := unsafe.SliceData(dst), unsafe.SliceData(x)
	quantizeF32Blocks(width, d, xs, n/width, scale, zero, lo, hi)
	if n%width != 0 {
		// The tail as the block that ends at n, overlapping the previous
		// one (whose values it computes again, identically).
		quantizeF32Blocks(width, &dst[n-width], &x[n-width], 1, scale, zero, lo, hi)
	}
	return n
}

func quantizeF32Blocks(width int, dst *int32, x *float32, blocks int, scale float32, zero, lo, hi int32) {
	if width == 16 {
		quantizeF32AVX512(dst, x, blocks, scale, zero, lo, hi)
	} else {
		quantizeF32AVX2(dst, x, blocks, scale, zero, lo, hi)
	}
}

// net8Vec runs the fused kernel on the input in (the first layer's In
// values; the last of its 16-value blocks read through inMask).
func net8Vec(l Level, desc []net8Desc, act, xp, in []int32, inMask uint64, lo, hi int32) bool {
	if l < AVX512 {
		return false
	}
	net8AVX512(unsafe.SliceData(desc), len(desc), unsafe.SliceData(act), unsafe.SliceData(xp), lo, hi, unsafe.SliceData(in), inMask)
	return true
}

func mulAccPackedVec(l Level, acc []int64, w, x []int32) int {
	n := len(acc)
	switch {
	case l >= AVX512 && n >= 16:
		mulAccPAVX512(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/16, 4*n, len(x))
		return n / 16 * 16
	case l >= AVX2 && n >= 16:
		mulAccPAVX2(unsafe.SliceData(acc), unsafe.SliceData(w), unsafe.SliceData(x), n/16, 4*n, len(x))
		return n / 16 * 16
	}
	return 0
}
