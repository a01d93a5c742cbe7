package linnos

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lakeos/lake/vecmath"
)

// maxDigit is the largest feature value the int16 first-layer path takes;
// feature vectors are decimal digits, and a vector with any value outside
// [0, maxDigit] takes the int32×int32→int64 path instead.
const maxDigit = 9

// intVec is the vectorised form of an IntModel (package vecmath). It is
// built at load time only when every weight fits in int32, so that every
// product of an int32 activation and a weight is exact in int64 and the
// int64 sums wrap exactly as the scalar engine's do. Each call checks
// whether the activations fed to the next layer fit int32 (they are ≥ 0
// after ReLU); when one does not, that layer runs on int64 activations with
// wrapping int64 products (vecmath.MulAccWide, DotWide), as the scalar
// engine computes them.
type intVec struct {
	pairs int
	// w0p is layer 0 as int16 pairs [pairs][HiddenWidth] with its int32
	// bias b0, set only when the load-time check proves that with inputs
	// in [0, maxDigit] every weight fits int16 and every partial sum fits
	// int32: |b0[j]| + maxDigit·Σ_i |w0[j][i]| ≤ MaxInt32.
	w0p []int32
	b0  []int32
	// w0, the transposed first layer [NumInputs][HiddenWidth], serves
	// vectors the int16 path does not take.
	w0  []int64
	hid [][]int64 // extra layers, transposed [HiddenWidth][HiddenWidth]
	// hidP are the extra layers as int32 in vecmath.PackColsI32's layout
	// (half the bytes of hid), for int32 activations.
	hidP [][]int32
	b    [][]int64 // every layer's bias
	out  [NumClasses][]int64
}

// maxHiddenBatch is the most vectors logitsBatch runs together.
const maxHiddenBatch = 4

// hiddenBatch is how many vectors of a model with extra hidden layers run
// together through the hidden layers (logitsBatch; 1: one at a time). It
// is a variable so that tests and benchmarks can compare the choices;
// see docs/PERFORMANCE.md for why it is what it is.
var hiddenBatch = 4

// batchLeaves counts the vectors that left a logitsBatch group for the
// int64 path (tests check that theirs did).
var batchLeaves atomic.Int64

// vecScratch is one inference's activations, for both engines.
type vecScratch struct {
	hs   [2 * HiddenWidth]int64 // the scalar engine's
	h    [HiddenWidth]int32
	acc  [HiddenWidth]int64
	acc2 [HiddenWidth]int64
	xp   [(NumInputs + 1) / 2]int32
	// The listed non-zero units of the hidden layers' inputs
	// (vecmath.MulAccPackedIdx) and, for logitsBatch, its vectors'
	// activations and accumulators, vector after vector.
	idx [HiddenWidth]int32
	hv  [maxHiddenBatch * HiddenWidth]int32
	hB  [maxHiddenBatch * HiddenWidth]int32
	aB  [maxHiddenBatch * HiddenWidth]int64
}

var vecScratchPool = sync.Pool{New: func() any { return new(vecScratch) }}

// pairOrder lists the inputs in the order the int16 path pairs them (input
// pairOrder[2p] with pairOrder[2p+1], -1 = none). The kernel skips a pair
// whose two digits are both zero, so digits of the same significance are
// paired: leading digits (mostly zero) with leading digits, units with
// units. Any order gives the same result; this one needs about 7.6 pairs
// per vector of the benchmark's Azure replay instead of 12.7 for adjacent
// digits.
var pairOrder = func() []int {
	order := make([]int, NumInputs, 2*((NumInputs+1)/2))
	for i := range order {
		order[i] = i
	}
	if latencyOffset+HistoryLen*LatencyDigits == NumInputs {
		// significance = digits to the right of i within its field.
		sig := func(i int) int {
			if i < latencyOffset {
				return PendingDigits - 1 - i%PendingDigits
			}
			return LatencyDigits - 1 - (i-latencyOffset)%LatencyDigits
		}
		slices.SortStableFunc(order, func(a, b int) int { return sig(a) - sig(b) })
	}
	if len(order)%2 == 1 {
		order = append(order, -1)
	}
	return order
}()

// newIntVec returns m's vector form, or nil when some weight does not fit
// in int32 (the model then runs on the scalar engine only).
func newIntVec(m *IntModel) *intVec {
	for _, w := range m.w {
		for _, v := range w {
			if v != int64(int32(v)) {
				return nil
			}
		}
	}
	last := m.extra + 1
	v := &intVec{pairs: (NumInputs + 1) / 2, w0: m.wt[0], hid: m.wt[1:last], b: m.b}
	for c := 0; c < NumClasses; c++ {
		v.out[c] = m.w[last][c*HiddenWidth : (c+1)*HiddenWidth]
	}
	for _, w := range v.hid {
		w32 := make([]int32, len(w))
		for i, x := range w {
			w32[i] = int32(x)
		}
		v.hidP = append(v.hidP, vecmath.PackColsI32(w32, HiddenWidth))
	}
	if !fitsInt16Layer0(m.w[0], m.b[0]) {
		return v
	}
	v.b0 = make([]int32, HiddenWidth)
	for j, b := range m.b[0] {
		v.b0[j] = int32(b)
	}
	v.w0p = make([]int32, v.pairs*HiddenWidth)
	for j := 0; j < HiddenWidth; j++ {
		row := m.w[0][j*NumInputs : (j+1)*NumInputs]
		for p := 0; p < v.pairs; p++ {
			var hi int16
			if b := pairOrder[2*p+1]; b >= 0 {
				hi = int16(row[b])
			}
			v.w0p[p*HiddenWidth+j] = vecmath.PackPairs16(int16(row[pairOrder[2*p]]), hi)
		}
	}
	return v
}

// fitsInt16Layer0 is the load-time check of the int16 first-layer path
// (w is row-major [HiddenWidth][NumInputs]).
func fitsInt16Layer0(w, b []int64) bool {
	for j := 0; j < HiddenWidth; j++ {
		if b[j] < -math.MaxInt32 || b[j] > math.MaxInt32 {
			return false
		}
		sum := abs64(b[j])
		for _, x := range w[j*NumInputs : (j+1)*NumInputs] {
			if x < math.MinInt16 || x > math.MaxInt16 {
				return false
			}
			sum += maxDigit * abs64(x)
		}
		// sum <= 2^31 + 31·9·2^15, no int64 overflow.
		if sum > math.MaxInt32 {
			return false
		}
	}
	return true
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// packDigits packs x (NumInputs values) into int16 pairs in pairOrder, or
// reports false when a value is outside [0, maxDigit].
func packDigits(x []int32, xp []int32) bool {
	x = x[:NumInputs]
	for p := range xp {
		lo, hi := x[pairOrder[2*p]], int32(0)
		if b := pairOrder[2*p+1]; b >= 0 {
			hi = x[b]
		}
		if uint32(lo) > maxDigit || uint32(hi) > maxDigit {
			return false
		}
		xp[p] = lo | hi<<16
	}
	return true
}

// reluNarrow applies ReLU to acc in place and writes it into h as int32,
// or reports false when a value does not fit int32 (h is then garbage).
func reluNarrow(h []int32, acc []int64) bool {
	h = h[:len(acc)]
	ok := true
	for j, a := range acc {
		a = max(a, 0)
		acc[j] = a
		ok = ok && a <= math.MaxInt32
		h[j] = int32(a)
	}
	return ok
}

// first runs the first layer on x and leaves its activations (after ReLU)
// in h as int32, or reports false when one does not fit int32 (they are
// then in acc as int64).
func (v *intVec) first(x []int32, s *vecScratch, h []int32, acc []int64) bool {
	if v.w0p != nil && packDigits(x, s.xp[:]) {
		copy(h, v.b0)
		vecmath.DotPairs16ReLU(h, v.w0p, s.xp[:])
		return true
	}
	copy(acc, v.b[0])
	vecmath.MulAccI64(acc, v.w0, x[:NumInputs])
	return reluNarrow(h, acc)
}

// listNonZero lists the units where some of the items activations in hB
// (item after item, each HiddenWidth long, all >= 0) is non-zero: the
// units in idx and their values in hv (the items' values unit after
// unit), without a branch per unit. It returns how many it listed.
func listNonZero(idx, hv, hB []int32, items int) int {
	j := 0
	switch items {
	case 1:
		h := (*[HiddenWidth]int32)(hB)
		for k, x := range h {
			idx[j], hv[j] = int32(k), x
			j += int(uint32(-x) >> 31) // x > 0
		}
	default:
		for k := 0; k < HiddenWidth; k++ {
			var any int32
			for b := 0; b < items; b++ {
				x := hB[b*HiddenWidth+k]
				hv[j*items+b] = x
				any |= x
			}
			idx[j] = int32(k)
			j += int(uint32(-any) >> 31)
		}
	}
	return j
}

// hiddenLayer adds layer l's products to acc (item after item, the
// layer's biases already there) from the int32 activations hB: over the
// listed non-zero units with AVX-512, else on vecmath.MulAccPacked per
// item.
func (v *intVec) hiddenLayer(l int, acc []int64, hB []int32, items int, s *vecScratch) {
	if vecmath.Current() >= vecmath.AVX512 {
		n := listNonZero(s.idx[:], s.hv[:], hB, items)
		vecmath.MulAccPackedIdx(acc, v.hidP[l], s.idx[:n], s.hv[:n*items], items)
		return
	}
	for b := 0; b < items; b++ {
		vecmath.MulAccPacked(acc[b*HiddenWidth:(b+1)*HiddenWidth], v.hidP[l], hB[b*HiddenWidth:(b+1)*HiddenWidth])
	}
}

// logitsBatch is logits for items (2 to maxHiddenBatch) vectors at once,
// their hidden layers in one pass over each layer's weights
// (vecmath.MulAccPackedIdx), into dst (two per vector). A vector whose
// activations stop fitting int32 leaves the group: it finishes alone on
// the int64 path (tail), and its activations in the group are zeroed, so
// that it adds nothing to the rest of the pass.
func (v *intVec) logitsBatch(xs []int32, items int, s *vecScratch, dst []int64) {
	hB, aB := s.hB[:items*HiddenWidth], s.aB[:items*HiddenWidth]
	var done [maxHiddenBatch]bool
	for b := 0; b < items; b++ {
		hb := hB[b*HiddenWidth : (b+1)*HiddenWidth]
		if !v.first(xs[b*NumInputs:(b+1)*NumInputs], s, hb, s.acc[:]) {
			dst[2*b], dst[2*b+1], _ = v.tail(0, s.h[:], s.acc[:], s)
			batchLeaves.Add(1)
			done[b] = true
			clear(hb)
		}
	}
	for l := range v.hid {
		for b := 0; b < items; b++ {
			copy(aB[b*HiddenWidth:], v.b[l+1])
		}
		v.hiddenLayer(l, aB, hB, items, s)
		for b := 0; b < items; b++ {
			hb, ab := hB[b*HiddenWidth:(b+1)*HiddenWidth], aB[b*HiddenWidth:(b+1)*HiddenWidth]
			if done[b] {
				continue
			}
			if !reluNarrow(hb, ab) {
				dst[2*b], dst[2*b+1], _ = v.tail(l+1, s.h[:], ab, s)
				batchLeaves.Add(1)
				done[b] = true
				clear(hb)
			}
		}
	}
	bl := v.b[len(v.b)-1]
	for b := 0; b < items; b++ {
		if !done[b] {
			s0, s1 := vecmath.DotI64x2(hB[b*HiddenWidth:(b+1)*HiddenWidth], v.out[0], v.out[1])
			dst[2*b], dst[2*b+1] = bl[0]+s0, bl[1]+s1
		}
	}
}

// logits is IntModel.logits on the vector kernels. wide reports whether
// some layer's activations did not fit int32 and ran on int64 (for tests).
func (v *intVec) logits(x []int32, s *vecScratch) (o0, o1 int64, wide bool) {
	h := s.h[:]
	var h64 []int64 // the activations when they do not fit int32, else nil
	if !v.first(x, s, h, s.acc[:]) {
		h64 = s.acc[:]
	}
	return v.tail(0, h, h64, s)
}

// tail runs the hidden layers from l0 and the output layer on the int32
// activations h or, when h64 is not nil, the int64 ones h64 (s.acc or
// memory outside s).
func (v *intVec) tail(l0 int, h []int32, h64 []int64, s *vecScratch) (o0, o1 int64, wide bool) {
	for l := l0; l < len(v.hid); l++ {
		acc := s.acc[:]
		if h64 != nil && &h64[0] == &acc[0] {
			acc = s.acc2[:]
		}
		copy(acc, v.b[l+1])
		if h64 == nil {
			v.hiddenLayer(l, acc, h, 1, s)
		} else {
			wide = true
			vecmath.MulAccWide(acc, v.hid[l], h64)
		}
		h64 = nil
		if !reluNarrow(h, acc) {
			h64 = acc
		}
	}
	bl := v.b[len(v.b)-1]
	if h64 != nil {
		return bl[0] + vecmath.DotWide(h64, v.out[0]), bl[1] + vecmath.DotWide(h64, v.out[1]), true
	}
	s0, s1 := vecmath.DotI64x2(h, v.out[0], v.out[1])
	return bl[0] + s0, bl[1] + s1, wide
}

// minLaneItems is the smallest group of vectors the float model runs on
// vecmath.MulAddLanesF32 (a group costs about as much whatever its size up
// to vecmath.Lanes); smaller groups, and every group when vecmath has no
// vector level, run one vector at a time.
const minLaneItems = 4

// floatLanes holds one group's activations, vecmath.Lanes vectors
// interleaved: element i of vector l is at [i*Lanes+l].
type floatLanes struct {
	x     [NumInputs * vecmath.Lanes]float32
	h, h2 [HiddenWidth * vecmath.Lanes]float32
	o     [NumClasses * vecmath.Lanes]float32
}

var floatLanesPool = sync.Pool{New: func() any { return new(floatLanes) }}

// batchLogits computes the logits of the n vectors in features and hands
// each to emit. For models with extra hidden layers, groups of at least
// minLaneItems vectors run side by side on vecmath.MulAddLanesF32, which
// sums every lane in the scalar engine's order (skipping the same zeros),
// so the logits are the scalar ones bit for bit (NaN payloads aside); the
// rest, and every vector of the base model (faster one at a time), run on
// logitsOne.
func (m *FloatModel) batchLogits(features []int32, n int, emit func(int, [2]float32)) {
	const L = vecmath.Lanes
	i := 0
	if n >= minLaneItems && m.Extra > 0 && vecmath.Current() != vecmath.Scalar {
		s := floatLanesPool.Get().(*floatLanes)
		for ; n-i >= minLaneItems; i += L {
			cnt := min(L, n-i)
			m.laneLogits(features[i*NumInputs:(i+cnt)*NumInputs], cnt, s)
			for l := 0; l < cnt; l++ {
				emit(i+l, [2]float32{s.o[l], s.o[L+l]})
			}
		}
		floatLanesPool.Put(s)
	}
	if i < n {
		sp := floatScratch.Get().(*[]float32)
		h, h2 := (*sp)[:HiddenWidth], (*sp)[HiddenWidth:]
		for ; i < n; i++ {
			emit(i, m.logitsOne(features[i*NumInputs:(i+1)*NumInputs], h, h2))
		}
		floatScratch.Put(sp)
	}
}

// laneLogits runs cnt <= Lanes vectors (idle lanes compute on zeros) and
// leaves output c of vector l in s.o[c*Lanes+l].
func (m *FloatModel) laneLogits(features []int32, cnt int, s *floatLanes) {
	const L = vecmath.Lanes
	for l := 0; l < L; l++ {
		for i := 0; i < NumInputs; i++ {
			var v float32
			if l < cnt {
				v = float32(features[l*NumInputs+i])
			}
			s.x[i*L+l] = v
		}
	}
	fill := func(dst []float32, b []float32) {
		for j, v := range b {
			for l := 0; l < L; l++ {
				dst[j*L+l] = v
			}
		}
	}
	h, h2 := s.h[:], s.h2[:]
	fill(h, m.B[0])
	vecmath.MulAddLanesF32(h, m.W[0], s.x[:], true, true)
	for l := 1; l <= m.Extra; l++ {
		fill(h2, m.B[l])
		vecmath.MulAddLanesF32(h2, m.W[l], h, false, true)
		h, h2 = h2, h
	}
	fill(s.o[:], m.B[m.Extra+1])
	vecmath.MulAddLanesF32(s.o[:], m.W[m.Extra+1], h, true, false)
}

// floatCols is a FloatModel's first and extra hidden layers transposed
// ([in][out]) for vecmath.MulAddColsF32, which keeps a lane per output.
type floatCols struct {
	src  [][]float32 // the W slices it was made from
	w0   []float32   // [NumInputs][HiddenWidth]
	hidT [][]float32 // [HiddenWidth][HiddenWidth] per extra layer
}

func transpose(w []float32, out, in int) []float32 {
	t := make([]float32, len(w))
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			t[i*out+o] = w[o*in+i]
		}
	}
	return t
}

// colsForm returns m's transposed weights, making them when there are none
// or when some W[i] is no longer the slice they were made from.
func (m *FloatModel) colsForm() *floatCols {
	if c := m.cols.Load(); c != nil && len(c.src) == len(m.W) {
		same := true
		for i, w := range m.W {
			same = same && len(w) == len(c.src[i]) && &w[0] == &c.src[i][0]
		}
		if same {
			return c
		}
	}
	c := &floatCols{src: slices.Clone(m.W), w0: transpose(m.W[0], HiddenWidth, NumInputs)}
	for l := 1; l <= m.Extra; l++ {
		c.hidT = append(c.hidT, transpose(m.W[l], HiddenWidth, HiddenWidth))
	}
	m.cols.Store(c)
	return c
}

// logitsOne is logits for one vector on the vector kernels when vecmath
// has a vector level: the first and hidden layers run on
// vecmath.MulAddColsF32 (a lane per hidden unit; each unit adds its
// rounded products in input order, skipping zero inputs in the first
// layer, exactly as logits does) and vecmath.ReLUF32; each of the two
// outputs is a serial sum in unit order (vecmath.DotSkip2F32 packs the
// products of the non-zero units, then adds them one by one, as logits
// does). The logits are logits' bit for bit (NaN payloads aside).
func (m *FloatModel) logitsOne(x []int32, h, h2 []float32) [2]float32 {
	if vecmath.Current() == vecmath.Scalar {
		return m.logits(x, h, h2)
	}
	c := m.colsForm()
	var xf [NumInputs]float32
	for i, v := range x[:NumInputs] {
		xf[i] = float32(v)
	}
	h, h2 = h[:HiddenWidth], h2[:HiddenWidth]
	copy(h, m.B[0])
	vecmath.MulAddColsF32(h, c.w0, xf[:], true)
	vecmath.ReLUF32(h)
	for l := 1; l <= m.Extra; l++ {
		copy(h2, m.B[l])
		vecmath.MulAddColsF32(h2, c.hidT[l-1], h, false)
		vecmath.ReLUF32(h2)
		h, h2 = h2, h
	}
	w, b := m.W[m.Extra+1], m.B[m.Extra+1]
	s0, s1 := vecmath.DotSkip2F32(h, w[:HiddenWidth], w[HiddenWidth:], b[0], b[1])
	return [2]float32{s0, s1}
}
