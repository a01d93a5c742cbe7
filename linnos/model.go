package linnos

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/lakeos/lake/vecmath"
)

// Model shape constants.
const (
	HiddenWidth = 256 // width of every hidden layer
	NumClasses  = 2   // class 0 = fast (submit), class 1 = slow (revoke)
	MaxExtra    = 2   // the +1 and +2 variants
	// WeightScale is the integer scale of every weight (×10³).
	WeightScale = 1000
)

// ErrShape is returned (wrapped) when weights, features or output buffers do
// not have the expected sizes.
var ErrShape = errors.New("linnos: bad shape")

// LayerDims returns the (in, out) sizes of layer i of a model with extra
// additional hidden layers (0, 1 or 2).
func LayerDims(extra, i int) (in, out int) {
	n := extra + 2
	switch {
	case i == 0:
		return NumInputs, HiddenWidth
	case i == n-1:
		return HiddenWidth, NumClasses
	default:
		return HiddenWidth, HiddenWidth
	}
}

// BiasScale returns the integer scale of layer i's bias: 10^(3(i+1)). For the
// base model that is ×10³ for the first bias and ×10⁶ for the last, as in the
// LinnOS reference; each extra layer multiplies the activation scale by 10³.
func BiasScale(i int) int64 {
	s := int64(1)
	for k := 0; k <= i; k++ {
		s *= WeightScale
	}
	return s
}

func checkExtra(extra int) error {
	if extra < 0 || extra > MaxExtra {
		return fmt.Errorf("%w: %d extra layers (want 0..%d)", ErrShape, extra, MaxExtra)
	}
	return nil
}

// Predictor decides, for each of n feature vectors (n*NumInputs digits laid
// out back to back), whether the I/O will be slow (true = revoke). The
// replayer calls it per I/O (n = 1) or per batch; a laked-backed predictor can
// implement it too.
type Predictor interface {
	Predict(features []int32, n int, decisions []bool) error
}

// FloatModel is the float32 LinnOS network. W[i] is layer i's weight matrix,
// row-major [out][in] (the reference weight_i_T layout); B[i] its bias.
//
// Inference one vector at a time keeps a transposed copy of the weights
// (made at its first use, and again whenever a W[i] is replaced by another
// slice). Code that changes W in place after that must call
// WeightsChanged before the next inference.
type FloatModel struct {
	Extra int
	W     [][]float32
	B     [][]float32

	cols atomic.Pointer[floatCols] // the transposed weights, or nil
}

// WeightsChanged drops the transposed copy of the weights, so that the
// next inference makes it again from W. Call it after changing W in place.
func (m *FloatModel) WeightsChanged() { m.cols.Store(nil) }

// NewFloatModel returns a zero model with extra additional hidden layers.
func NewFloatModel(extra int) (*FloatModel, error) {
	if err := checkExtra(extra); err != nil {
		return nil, err
	}
	m := &FloatModel{Extra: extra}
	for i := 0; i < extra+2; i++ {
		in, out := LayerDims(extra, i)
		m.W = append(m.W, make([]float32, in*out))
		m.B = append(m.B, make([]float32, out))
	}
	return m, nil
}

// Validate checks the layer count and sizes.
func (m *FloatModel) Validate() error {
	if err := checkExtra(m.Extra); err != nil {
		return err
	}
	if len(m.W) != m.Extra+2 || len(m.B) != m.Extra+2 {
		return fmt.Errorf("%w: %d weight and %d bias layers for %d extra layers", ErrShape, len(m.W), len(m.B), m.Extra)
	}
	for i := range m.W {
		in, out := LayerDims(m.Extra, i)
		if len(m.W[i]) != in*out || len(m.B[i]) != out {
			return fmt.Errorf("%w: layer %d has %d weights and %d biases, want %d and %d", ErrShape, i, len(m.W[i]), len(m.B[i]), in*out, out)
		}
	}
	return nil
}

var floatScratch = sync.Pool{New: func() any { s := make([]float32, 2*HiddenWidth); return &s }}

// Logits computes the two output values for one feature vector.
func (m *FloatModel) Logits(features []int32) ([2]float32, error) {
	var res [2]float32
	if len(features) < NumInputs {
		return res, fmt.Errorf("%w: %d features, want %d", ErrShape, len(features), NumInputs)
	}
	if err := m.Validate(); err != nil {
		return res, err
	}
	sp := floatScratch.Get().(*[]float32)
	res = m.logitsOne(features[:NumInputs], (*sp)[:HiddenWidth], (*sp)[HiddenWidth:])
	floatScratch.Put(sp)
	return res, nil
}

func (m *FloatModel) logits(x []int32, h, h2 []float32) [2]float32 {
	w0, b0 := m.W[0], m.B[0]
	// Gather the non-zero digits once (most are leading zeros).
	var nzIdx [NumInputs]uint8
	var nzVal [NumInputs]float32
	nz := 0
	for i, v := range x[:NumInputs] {
		if v != 0 {
			nzIdx[nz], nzVal[nz] = uint8(i), float32(v)
			nz++
		}
	}
	// Column sweeps keep 256 independent accumulators (no serial float
	// dependency chain); per unit the additions happen in the same order as
	// a row-by-row dot product.
	hh := (*[HiddenWidth]float32)(h)
	*hh = [HiddenWidth]float32(b0)
	w0a := (*[HiddenWidth * NumInputs]float32)(w0)
	for q := 0; q < nz; q++ {
		xv, i := nzVal[q], int(nzIdx[q])
		for j := 0; j < HiddenWidth; j++ {
			hh[j] += float32(xv * w0a[j*NumInputs+i])
		}
	}
	for j := range hh {
		if hh[j] < 0 {
			hh[j] = 0
		}
	}
	for l := 1; l <= m.Extra; l++ {
		w, b := m.W[l], m.B[l]
		for j := 0; j < HiddenWidth; j++ {
			row := w[j*HiddenWidth : (j+1)*HiddenWidth]
			s := b[j]
			for k, v := range h[:HiddenWidth] {
				s += float32(v * row[k])
			}
			if s < 0 {
				s = 0
			}
			h2[j] = s
		}
		h, h2 = h2, h
	}
	w, b := m.W[m.Extra+1], m.B[m.Extra+1]
	r0, r1 := (*[HiddenWidth]float32)(w), (*[HiddenWidth]float32)(w[HiddenWidth:])
	s0, s1 := b[0], b[1]
	for k, v := range h[:HiddenWidth] {
		if v != 0 {
			s0 += float32(v * r0[k])
			s1 += float32(v * r1[k])
		}
	}
	return [2]float32{s0, s1}
}

// PredictBatch writes the class (0 fast, 1 slow) of each of the
// len(out) vectors in features (len(out)*NumInputs digits) into out. It does
// not allocate.
func (m *FloatModel) PredictBatch(features []int32, out []int32) error {
	if len(features) != len(out)*NumInputs {
		return fmt.Errorf("%w: %d features for %d outputs", ErrShape, len(features), len(out))
	}
	if err := m.Validate(); err != nil {
		return err
	}
	m.batchLogits(features, len(out), func(n int, o [2]float32) {
		out[n] = 0
		if o[1] > o[0] {
			out[n] = 1
		}
	})
	return nil
}

// Predict implements Predictor.
func (m *FloatModel) Predict(features []int32, n int, decisions []bool) error {
	if n < 0 || len(features) < n*NumInputs || len(decisions) < n {
		return fmt.Errorf("%w: n=%d with %d features and %d decisions", ErrShape, n, len(features), len(decisions))
	}
	if err := m.Validate(); err != nil {
		return err
	}
	m.batchLogits(features, n, func(i int, o [2]float32) { decisions[i] = o[1] > o[0] })
	return nil
}

// IntModel is the integer LinnOS network, bit-exact with the reference C
// inference: weights are ×10³, layer i's bias is ×BiasScale(i), inputs are the
// raw digits, accumulation is int64 (wrapping on overflow like the reference
// compiled with -fwrapv), hidden layers use ReLU, and the I/O is slow when
// out[0] < out[1].
//
// Build one with NewIntModel, Quantize, ReadModel or ParseHeader; it is
// immutable afterwards and safe for concurrent use.
type IntModel struct {
	extra int
	w     [][]int64 // row-major [out][in]
	b     [][]int64
	wt    [][]int64 // transposed [in][out] copies of the hidden layers, for the zero-skipping path
	w0t32 []int32   // layer 0 transposed as int32 when every weight fits
	vec   *intVec   // the vectorised engine; nil when a weight does not fit int32
}

// NewIntModel builds an integer model from row-major [out][in] weights and
// biases (copied).
func NewIntModel(extra int, w, b [][]int64) (*IntModel, error) {
	if err := checkExtra(extra); err != nil {
		return nil, err
	}
	if len(w) != extra+2 || len(b) != extra+2 {
		return nil, fmt.Errorf("%w: %d weight and %d bias layers for %d extra layers", ErrShape, len(w), len(b), extra)
	}
	m := &IntModel{extra: extra}
	for i := range w {
		in, out := LayerDims(extra, i)
		if len(w[i]) != in*out || len(b[i]) != out {
			return nil, fmt.Errorf("%w: layer %d has %d weights and %d biases, want %d and %d", ErrShape, i, len(w[i]), len(b[i]), in*out, out)
		}
		m.w = append(m.w, append([]int64(nil), w[i]...))
		m.b = append(m.b, append([]int64(nil), b[i]...))
		t := make([]int64, in*out)
		for o := 0; o < out; o++ {
			for k := 0; k < in; k++ {
				t[k*out+o] = w[i][o*in+k]
			}
		}
		m.wt = append(m.wt, t)
	}
	fits := true
	for _, v := range m.wt[0] {
		if v < math.MinInt32 || v > math.MaxInt32 {
			fits = false
			break
		}
	}
	if fits {
		m.w0t32 = make([]int32, len(m.wt[0]))
		for i, v := range m.wt[0] {
			m.w0t32[i] = int32(v)
		}
	}
	m.vec = newIntVec(m)
	return m, nil
}

// Extra returns the number of extra hidden layers (0, 1 or 2).
func (m *IntModel) Extra() int { return m.extra }

// Layer returns copies of layer i's row-major weights and its bias.
func (m *IntModel) Layer(i int) (w, b []int64) {
	return append([]int64(nil), m.w[i]...), append([]int64(nil), m.b[i]...)
}

// Quantize converts a float model to the integer model: round(w×10³) and
// round(b_i×BiasScale(i)), saturating at the int64 range.
func Quantize(f *FloatModel) (*IntModel, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	w := make([][]int64, len(f.W))
	b := make([][]int64, len(f.B))
	for i := range f.W {
		w[i] = make([]int64, len(f.W[i]))
		for k, v := range f.W[i] {
			w[i][k] = roundSat(float64(v) * WeightScale)
		}
		s := float64(BiasScale(i))
		b[i] = make([]int64, len(f.B[i]))
		for k, v := range f.B[i] {
			b[i][k] = roundSat(float64(v) * s)
		}
	}
	return NewIntModel(f.Extra, w, b)
}

func roundSat(v float64) int64 {
	r := math.Round(v)
	switch {
	case math.IsNaN(r):
		return 0
	case r >= math.MaxInt64:
		return math.MaxInt64
	case r <= math.MinInt64:
		return math.MinInt64
	}
	return int64(r)
}

// inferAll computes the two int64 outputs of each of the n vectors in
// features and hands them to emit. With a vector engine and extra hidden
// layers, groups of hiddenBatch vectors run their hidden layers together
// (intVec.logitsBatch); every vector gets the same bits either way.
func (m *IntModel) inferAll(features []int32, n int, emit func(int, int64, int64)) {
	vs := vecScratchPool.Get().(*vecScratch)
	h, h2 := vs.hs[:HiddenWidth], vs.hs[HiddenWidth:]
	i := 0
	if b := hiddenBatch; b > 1 && m.extra > 0 && m.vec != nil && vecmath.Current() != vecmath.Scalar {
		var dst [2 * maxHiddenBatch]int64
		for ; n-i >= b; i += b {
			m.vec.logitsBatch(features[i*NumInputs:(i+b)*NumInputs], b, vs, dst[:])
			for k := 0; k < b; k++ {
				emit(i+k, dst[2*k], dst[2*k+1])
			}
		}
	}
	for ; i < n; i++ {
		o0, o1 := m.infer(features[i*NumInputs:(i+1)*NumInputs], vs, h, h2)
		emit(i, o0, o1)
	}
	vecScratchPool.Put(vs)
}

// infer computes the two int64 outputs for one vector on the vector engine
// when the model has one (every weight fits int32) and vecmath has a vector
// level, else on the scalar engine (logits, faster than the vector engine's
// scalar kernels). Both give the same bits.
func (m *IntModel) infer(x []int32, vs *vecScratch, hs, h2s []int64) (o0, o1 int64) {
	if m.vec != nil && vecmath.Current() != vecmath.Scalar {
		o0, o1, _ = m.vec.logits(x, vs)
		return o0, o1
	}
	return m.logits(x, hs, h2s)
}

// logits computes the two int64 outputs for one vector of NumInputs digits
// with the scalar engine, the reference every vector path must match.
// It walks the non-zero inputs over the transposed first layer (most digits
// are leading zeros) and skips hidden units that ReLU zeroed; integer
// addition is associative, so the result is bit-identical to the reference's
// row-by-row order.
func (m *IntModel) logits(x []int32, hs, h2s []int64) (o0, o1 int64) {
	x = x[:NumInputs]
	h := (*[HiddenWidth]int64)(hs)
	*h = [HiddenWidth]int64(m.b[0])
	if m.w0t32 != nil {
		for i, v := range x {
			if v == 0 {
				continue
			}
			xv := int64(v)
			col := (*[HiddenWidth]int32)(m.w0t32[i*HiddenWidth:])
			for j := 0; j < HiddenWidth; j += 4 {
				h[j] += xv * int64(col[j])
				h[j+1] += xv * int64(col[j+1])
				h[j+2] += xv * int64(col[j+2])
				h[j+3] += xv * int64(col[j+3])
			}
		}
	} else {
		for i, v := range x {
			if v == 0 {
				continue
			}
			xv := int64(v)
			col := (*[HiddenWidth]int64)(m.wt[0][i*HiddenWidth:])
			for j := 0; j < HiddenWidth; j++ {
				h[j] += xv * col[j]
			}
		}
	}
	for j := range h {
		h[j] = max(h[j], 0)
	}
	for l := 1; l <= m.extra; l++ {
		h2 := (*[HiddenWidth]int64)(h2s)
		*h2 = [HiddenWidth]int64(m.b[l])
		wt := m.wt[l]
		for k, v := range h {
			if v == 0 {
				continue
			}
			col := (*[HiddenWidth]int64)(wt[k*HiddenWidth:])
			for j := 0; j < HiddenWidth; j++ {
				h2[j] += v * col[j]
			}
		}
		for j := range h2 {
			h2[j] = max(h2[j], 0)
		}
		hs, h2s = h2s, hs
		h = h2
	}
	last := m.extra + 1
	wl := (*[2 * HiddenWidth]int64)(m.wt[last]) // [256][2]
	o0, o1 = m.b[last][0], m.b[last][1]
	for k, v := range h {
		if v == 0 {
			continue
		}
		o0 += v * wl[2*k]
		o1 += v * wl[2*k+1]
	}
	return o0, o1
}

// Logits writes the two int64 outputs of each of the len(dst)/2 vectors in
// features into dst (dst[2i], dst[2i+1]).
func (m *IntModel) Logits(features []int32, dst []int64) error {
	if len(dst)%2 != 0 || len(features) != len(dst)/2*NumInputs {
		return fmt.Errorf("%w: %d features for %d outputs", ErrShape, len(features), len(dst))
	}
	m.inferAll(features, len(dst)/2, func(n int, o0, o1 int64) { dst[2*n], dst[2*n+1] = o0, o1 })
	return nil
}

// PredictBatch writes the class (0 fast, 1 slow) of each of the len(out)
// vectors in features (len(out)*NumInputs digits, back to back) into out. It
// does not allocate and is safe for concurrent use.
func (m *IntModel) PredictBatch(features []int32, out []int32) error {
	if len(features) != len(out)*NumInputs {
		return fmt.Errorf("%w: %d features for %d outputs", ErrShape, len(features), len(out))
	}
	m.inferAll(features, len(out), func(n int, o0, o1 int64) {
		out[n] = 0
		if o0 < o1 {
			out[n] = 1
		}
	})
	return nil
}

// Predict implements Predictor.
func (m *IntModel) Predict(features []int32, n int, decisions []bool) error {
	if n < 0 || len(features) < n*NumInputs || len(decisions) < n {
		return fmt.Errorf("%w: n=%d with %d features and %d decisions", ErrShape, n, len(features), len(decisions))
	}
	m.inferAll(features, n, func(i int, o0, o1 int64) { decisions[i] = o0 < o1 })
	return nil
}
