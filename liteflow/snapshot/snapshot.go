package snapshot

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/lakeos/lake/liteflow/fixedpoint"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/vecmath"
)

// DType is the integer type of activations (weights are always int8).
type DType uint8

// Activation types.
const (
	Int8  DType = 0
	Uint8 DType = 1
)

// Range returns the representable [lo, hi] of the type.
func (d DType) Range() (lo, hi int32) {
	if d == Uint8 {
		return 0, 255
	}
	return -128, 127
}

// String names the type.
func (d DType) String() string {
	switch d {
	case Int8:
		return "int8"
	case Uint8:
		return "uint8"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Limits enforced on every snapshot.
const (
	MaxLayers = model.MaxLayers // layers per snapshot
	MaxWidth  = model.MaxWidth  // inputs or outputs per layer
	// TableSize is the number of entries of a tanh/sigmoid table. The
	// table's input (the requantized accumulator) has 10 bits, [TableLo,
	// TableHi], four times finer than an int8 input (TFLite's int8 tables
	// have 256 entries); its output is in the activation type.
	TableSize = 1024
	TableLo   = -512
	TableHi   = 511
	// maxAbsProduct bounds |w * (q - zp)| for one input: |w| <= 128,
	// |q - zp| <= 255.
	maxAbsProduct = 128 * 255
)

// QParams are the affine quantization parameters of a tensor:
// real = Scale * (q - Zero).
type QParams struct {
	Scale float32
	Zero  int32
}

// Layer is one quantized dense layer.
//
// acc[o] = Bias[o] + Σ_i W[o*In+i] * (in[i] - inZero), an exact int32;
// v = clamp(MultiplyByQuantizedMultiplier(acc, Mult[c], Shift[c]) + Pre.Zero)
// with c = o for per-channel layers and 0 otherwise. For Identity and ReLU
// layers Pre == Out, v is clamped to the activation type's range and is the
// output (ReLU clamps below at Out.Zero); for Tanh and Sigmoid layers v is
// clamped to [TableLo, TableHi] and the output is LUT[v - TableLo].
type Layer struct {
	In, Out    int
	Act        model.Activation
	PerChannel bool
	Pre        QParams   // quantization of the requantized accumulator
	OutQ       QParams   // quantization of the layer output
	WScale     []float32 // weight scales: 1 (per-tensor) or Out (per-channel)
	Mult       []int32   // Q31 multipliers, len(WScale)
	Shift      []int32   // shifts, len(WScale)
	Bias       []int32   // Out entries, scale = in scale * weight scale
	W          []int8    // Out*In weights, row-major
	LUT        []int32   // TableSize entries for Tanh/Sigmoid, indexed by v - TableLo; nil otherwise

	folded []int64 // Bias[o] - inZero * Σ_i W[o*In+i]
	mult   []int32 // Mult expanded to one entry per output
	left   []uint8 // max(Shift, 0) per output
	right  []uint8 // max(-Shift, 0) per output

	// The vecmath form of the weights: wp holds (In+1)/2 rows of outPad
	// (Out rounded up to 16) int16 pairs (W[o][2p], W[o][2p+1]), zero in
	// the padding; acc0[o] = int32(folded[o]). The engine's accumulator is
	// int32(dot + folded) with a wrapping int32 dot, which equals
	// acc0[o] + dot wrapping at 32 bits, so DotPairs16 from acc0 gives it
	// bit for bit.
	wp   []int32
	acc0 []int32
	// mult, left and right as int32, padded with zeros to outPad, for
	// vecmath.Requant.
	multP, leftP, rightP []int32
}

// outPad is the accumulator length of a layer with out outputs.
func outPad(out int) int { return (out + 15) &^ 15 }

// Snapshot is a validated full-integer model. After Validate succeeds it is
// read-only and safe for concurrent Run calls.
type Snapshot struct {
	Generation uint64 // producer-assigned counter (the adapter's install count)
	DType      DType
	Input      QParams
	Layers     []Layer

	ready bool
	net   *vecmath.Net8 // the layers in vecmath's form, built by Validate
}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("snapshot: invalid")

// ErrNotValidated is returned by Run on a snapshot that was never validated.
var ErrNotValidated = errors.New("snapshot: not validated")

// ErrShape reports an input or output slice of the wrong length.
var ErrShape = errors.New("snapshot: wrong vector length")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func validQ(q QParams, d DType) bool {
	lo, hi := d.Range()
	s := float64(q.Scale)
	return !math.IsNaN(s) && !math.IsInf(s, 0) && s > 0 && q.Zero >= lo && q.Zero <= hi
}

// InputDim is the number of inputs.
func (s *Snapshot) InputDim() int { return s.Layers[0].In }

// OutputDim is the number of outputs.
func (s *Snapshot) OutputDim() int { return s.Layers[len(s.Layers)-1].Out }

// Output returns the quantization of the model's output.
func (s *Snapshot) Output() QParams { return s.Layers[len(s.Layers)-1].OutQ }

// Validate checks every invariant the engine relies on and precomputes the
// folded biases. It must succeed before Run; Decode calls it.
func (s *Snapshot) Validate() error {
	s.ready = false
	if s.DType != Int8 && s.DType != Uint8 {
		return invalid("unknown activation type %d", s.DType)
	}
	if n := len(s.Layers); n < 1 || n > MaxLayers {
		return invalid("%d layers outside [1, %d]", n, MaxLayers)
	}
	if !validQ(s.Input, s.DType) {
		return invalid("input quantization scale %v zero %d", s.Input.Scale, s.Input.Zero)
	}
	inZero := s.Input.Zero
	for li := range s.Layers {
		l := &s.Layers[li]
		if l.In < 1 || l.In > MaxWidth || l.Out < 1 || l.Out > MaxWidth {
			return invalid("layer %d shape %dx%d outside [1, %d]", li, l.In, l.Out, MaxWidth)
		}
		if li > 0 && l.In != s.Layers[li-1].Out {
			return invalid("layer %d has %d inputs, layer %d has %d outputs", li, l.In, li-1, s.Layers[li-1].Out)
		}
		if !l.Act.Valid() {
			return invalid("layer %d: unknown activation %d", li, l.Act)
		}
		lut := l.Act == model.Tanh || l.Act == model.Sigmoid
		preOK := validQ(l.Pre, s.DType)
		if lut {
			ps := float64(l.Pre.Scale)
			preOK = !math.IsNaN(ps) && !math.IsInf(ps, 0) && ps > 0 && l.Pre.Zero >= TableLo && l.Pre.Zero <= TableHi
		}
		if !preOK || !validQ(l.OutQ, s.DType) {
			return invalid("layer %d: bad quantization parameters", li)
		}
		if !lut && l.Pre != l.OutQ {
			return invalid("layer %d: %v layer must have equal pre and output quantization", li, l.Act)
		}
		nch := 1
		if l.PerChannel {
			nch = l.Out
		}
		if len(l.WScale) != nch || len(l.Mult) != nch || len(l.Shift) != nch {
			return invalid("layer %d: %d/%d/%d scales/multipliers/shifts, want %d", li, len(l.WScale), len(l.Mult), len(l.Shift), nch)
		}
		for c := 0; c < nch; c++ {
			ws := float64(l.WScale[c])
			if math.IsNaN(ws) || math.IsInf(ws, 0) || ws <= 0 {
				return invalid("layer %d channel %d: weight scale %v", li, c, ws)
			}
			if !fixedpoint.ValidMultiplier(l.Mult[c], int(l.Shift[c])) {
				return invalid("layer %d channel %d: multiplier %d shift %d", li, c, l.Mult[c], l.Shift[c])
			}
		}
		if len(l.Bias) != l.Out || len(l.W) != l.In*l.Out {
			return invalid("layer %d: %d biases and %d weights, want %d and %d", li, len(l.Bias), len(l.W), l.Out, l.In*l.Out)
		}
		bound := int64(math.MaxInt32) - int64(l.In)*maxAbsProduct
		for o, b := range l.Bias {
			if int64(b) > bound || int64(b) < -bound {
				return invalid("layer %d: bias %d of output %d exceeds ±%d (accumulator could overflow)", li, b, o, bound)
			}
		}
		if lut {
			if len(l.LUT) != TableSize {
				return invalid("layer %d: %v layer needs a %d-entry table, has %d", li, l.Act, TableSize, len(l.LUT))
			}
			lo, hi := s.DType.Range()
			for _, v := range l.LUT {
				if v < lo || v > hi {
					return invalid("layer %d: table entry %d outside [%d, %d]", li, v, lo, hi)
				}
			}
		} else if l.LUT != nil {
			return invalid("layer %d: %v layer must not have a table", li, l.Act)
		}
		if cap(l.folded) < l.Out {
			l.folded = make([]int64, l.Out)
		}
		l.folded = l.folded[:l.Out]
		l.mult = append(l.mult[:0], make([]int32, l.Out)...)
		l.left = append(l.left[:0], make([]uint8, l.Out)...)
		l.right = append(l.right[:0], make([]uint8, l.Out)...)
		for o := 0; o < l.Out; o++ {
			c := 0
			if l.PerChannel {
				c = o
			}
			l.mult[o] = l.Mult[c]
			if sh := l.Shift[c]; sh > 0 {
				l.left[o] = uint8(sh)
			} else {
				l.right[o] = uint8(-sh)
			}
			var sum int64
			for _, w := range l.W[o*l.In : (o+1)*l.In] {
				sum += int64(w)
			}
			l.folded[o] = int64(l.Bias[o]) - int64(inZero)*sum
		}
		pad := outPad(l.Out)
		l.acc0 = append(l.acc0[:0], make([]int32, pad)...)
		for o, f := range l.folded {
			l.acc0[o] = int32(f)
		}
		l.multP = append(l.multP[:0], make([]int32, pad)...)
		l.leftP = append(l.leftP[:0], make([]int32, pad)...)
		l.rightP = append(l.rightP[:0], make([]int32, pad)...)
		for o := 0; o < l.Out; o++ {
			l.multP[o], l.leftP[o], l.rightP[o] = l.mult[o], int32(l.left[o]), int32(l.right[o])
		}
		pairs := (l.In + 1) / 2
		l.wp = append(l.wp[:0], make([]int32, pairs*pad)...)
		for o := 0; o < l.Out; o++ {
			row := l.W[o*l.In : (o+1)*l.In]
			for p := 0; p < pairs; p++ {
				var hi int16
				if 2*p+1 < l.In {
					hi = int16(row[2*p+1])
				}
				l.wp[p*pad+o] = vecmath.PackPairs16(int16(row[2*p]), hi)
			}
		}
		inZero = l.OutQ.Zero
	}
	if err := s.buildNet(); err != nil {
		return invalid("%v", err)
	}
	s.ready = true
	return nil
}

// buildNet describes the validated layers to vecmath (the weights, folded
// biases and multipliers Validate prepared; nothing is copied).
func (s *Snapshot) buildNet() error {
	lo, hi := s.DType.Range()
	layers := make([]vecmath.Net8Layer, len(s.Layers))
	for li := range s.Layers {
		l := &s.Layers[li]
		vlo, vhi := lo, hi
		switch l.Act {
		case model.ReLU:
			vlo = max(lo, l.OutQ.Zero)
		case model.Tanh, model.Sigmoid:
			vlo, vhi = TableLo, TableHi
		}
		layers[li] = vecmath.Net8Layer{In: l.In, Out: l.Out, W: l.wp, Acc0: l.acc0, Mult: l.multP, Left: l.leftP, Right: l.rightP,
			LUT: l.LUT, LUTBase: TableLo, Zero: l.Pre.Zero, Lo: vlo, Hi: vhi}
	}
	net, err := vecmath.NewNet8(layers)
	s.net = net
	return err
}

// CopyInto makes dst a deep copy of s, reusing dst's buffers where they are
// large enough. The copy is validated (ready) exactly when s is.
func (s *Snapshot) CopyInto(dst *Snapshot) {
	dst.Generation, dst.DType, dst.Input, dst.ready = s.Generation, s.DType, s.Input, s.ready
	if cap(dst.Layers) < len(s.Layers) {
		dst.Layers = make([]Layer, len(s.Layers))
	}
	dst.Layers = dst.Layers[:len(s.Layers)]
	for i := range s.Layers {
		sl, dl := &s.Layers[i], &dst.Layers[i]
		dl.In, dl.Out, dl.Act, dl.PerChannel, dl.Pre, dl.OutQ = sl.In, sl.Out, sl.Act, sl.PerChannel, sl.Pre, sl.OutQ
		dl.WScale = append(dl.WScale[:0], sl.WScale...)
		dl.Mult = append(dl.Mult[:0], sl.Mult...)
		dl.Shift = append(dl.Shift[:0], sl.Shift...)
		dl.Bias = append(dl.Bias[:0], sl.Bias...)
		dl.W = append(dl.W[:0], sl.W...)
		if sl.LUT == nil {
			dl.LUT = nil
		} else {
			dl.LUT = append(dl.LUT[:0], sl.LUT...)
		}
		dl.folded = append(dl.folded[:0], sl.folded...)
		dl.mult = append(dl.mult[:0], sl.mult...)
		dl.left = append(dl.left[:0], sl.left...)
		dl.right = append(dl.right[:0], sl.right...)
		dl.wp = append(dl.wp[:0], sl.wp...)
		dl.acc0 = append(dl.acc0[:0], sl.acc0...)
		dl.multP = append(dl.multP[:0], sl.multP...)
		dl.leftP = append(dl.leftP[:0], sl.leftP...)
		dl.rightP = append(dl.rightP[:0], sl.rightP...)
	}
	dst.net = nil
	if dst.ready {
		if err := dst.buildNet(); err != nil { // s's layers passed the same check
			panic(err)
		}
	}
}

// Clone returns a deep copy of s.
func (s *Snapshot) Clone() *Snapshot {
	c := &Snapshot{}
	s.CopyInto(c)
	return c
}

// QuantizeValue maps a real value into the integer domain of q:
// clamp(Zero + round_half_away(x / Scale)); NaN maps to Zero.
func QuantizeValue(x float32, q QParams, d DType) int32 {
	lo, hi := d.Range()
	v := float64(x / q.Scale) // float32 division, as the C engine does
	if math.IsNaN(v) {
		return q.Zero
	}
	r := math.Round(v) + float64(q.Zero)
	if r < float64(lo) {
		return lo
	}
	if r > float64(hi) {
		return hi
	}
	return int32(r)
}

// Dequantize maps an integer value back to real: Scale * (q - Zero).
func Dequantize(v int32, q QParams) float32 {
	return q.Scale * float32(v-q.Zero)
}

// Scratch holds the activation buffers of one inference. A Scratch must
// not be used by two goroutines at once.
type Scratch struct {
	a, b [MaxWidth]int32
	xp   [MaxWidth / 2]int32 // the current layer's input as int16 pairs
	acc  [MaxWidth]int32     // accumulators (MaxWidth is a multiple of 16)
}

// scratchPool recycles scratch buffers so that Run neither allocates nor
// clears 8 KiB of stack per query.
var scratchPool = sync.Pool{New: func() any { return new(Scratch) }}

// bufs are one inference's activation (a, b), input-pair (xp) and
// accumulator (acc) buffers.
type bufs struct{ a, b, xp, acc []int32 }

func (sc *Scratch) bufs() bufs { return bufs{sc.a[:], sc.b[:], sc.xp[:], sc.acc[:]} }

// Run executes the integer engine on the real input x and writes real
// outputs into out. It does not allocate (after warm-up) and is safe for
// concurrent use on a validated snapshot.
func (s *Snapshot) Run(x, out []float32) error {
	if s.runSmall(x, out) {
		return nil
	}
	sc := scratchPool.Get().(*Scratch)
	err := s.RunScratch(x, out, sc)
	scratchPool.Put(sc)
	return err
}

// RunScratch is Run with caller-provided scratch buffers.
func (s *Snapshot) RunScratch(x, out []float32, sc *Scratch) error {
	return s.run(x, out, sc.bufs())
}

func (s *Snapshot) run(x, out []float32, b bufs) error {
	if !s.ready {
		return ErrNotValidated
	}
	if len(x) != s.InputDim() || len(out) != s.OutputDim() {
		return fmt.Errorf("%w: input %d (want %d), output %d (want %d)", ErrShape, len(x), s.InputDim(), len(out), s.OutputDim())
	}
	lo, hi := s.DType.Range()
	oq := s.Output()
	cur := b.a[:len(x)]
	// QuantizeValue on every input.
	vecmath.QuantizeF32(cur, x, s.Input.Scale, s.Input.Zero, lo, hi)
	cur = s.runLayers(cur, b, nil)
	for i, v := range cur {
		out[i] = Dequantize(v, oq)
	}
	return nil
}

// RunQuantized executes the engine on already-quantized inputs (in the
// input's integer domain) and writes the quantized outputs (in the output's
// domain) to out: the entry point a kernel caller without floating point
// uses. Inputs outside the type's range are clamped.
func (s *Snapshot) RunQuantized(in, out []int32) error {
	if !s.ready {
		return ErrNotValidated
	}
	if len(in) != s.InputDim() || len(out) != s.OutputDim() {
		return fmt.Errorf("%w: input %d (want %d), output %d (want %d)", ErrShape, len(in), s.InputDim(), len(out), s.OutputDim())
	}
	if lo, hi := s.DType.Range(); s.net.Query(in, out, lo, hi) {
		return nil
	}
	sc := scratchPool.Get().(*Scratch)
	s.runQuantized(in, out, sc.bufs())
	scratchPool.Put(sc)
	return nil
}

// runSmall runs a small network (vecmath.Net8.Query: stack buffers, one
// kernel call) and reports whether it did; the caller checks nothing
// before it and runs the general path when it returns false.
func (s *Snapshot) runSmall(x, out []float32) bool {
	if !s.ready || len(x) != s.InputDim() || len(out) != s.OutputDim() || len(x) > vecmath.Net8QueryWidth || len(out) > vecmath.Net8QueryWidth {
		return false
	}
	lo, hi := s.DType.Range()
	var q, r [vecmath.Net8QueryWidth]int32
	// QuantizeValue on every input.
	vecmath.QuantizeF32(q[:len(x)], x, s.Input.Scale, s.Input.Zero, lo, hi)
	if !s.net.Query(q[:len(x)], r[:len(out)], lo, hi) {
		return false
	}
	oq := s.Output()
	for i, v := range r[:len(out)] {
		out[i] = Dequantize(v, oq)
	}
	return true
}

func (s *Snapshot) runQuantized(in, out []int32, b bufs) {
	lo, hi := s.DType.Range()
	cur := b.a[:len(in)]
	for i, v := range in {
		cur[i] = min(max(v, lo), hi)
	}
	copy(out, s.runLayers(cur, b, nil))
}

// batchChunk bounds the items RunBatch and RunQuantizedBatch convert per
// kernel pass (their buffers hold this many items).
const batchChunk = 256

// batchBufs are the buffers of one batch run: the kernel's scratch and
// a chunk's quantized inputs and outputs.
type batchBufs struct{ scratch, qin, qout []int32 }

var batchPool = sync.Pool{New: func() any { return new(batchBufs) }}

func grow(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

// batchItems checks a batch's lengths and returns its item count.
func (s *Snapshot) batchItems(nIn, nOut int) (int, error) {
	if !s.ready {
		return 0, ErrNotValidated
	}
	in, out := s.InputDim(), s.OutputDim()
	items := nIn / in
	if nIn%in != 0 || nOut != items*out {
		return 0, fmt.Errorf("%w: batch of %d inputs and %d outputs for %d -> %d", ErrShape, nIn, nOut, in, out)
	}
	return items, nil
}

// RunQuantizedBatch is RunQuantized on several inputs at once: in holds
// items × InputDim values, out receives items × OutputDim. The items run
// side by side on the vector kernels (vecmath.Net8.RunBatch: one pass over
// the weights per 8 or 16 items); each gets exactly what RunQuantized
// gives it. It does not allocate after warm-up and is safe for concurrent
// use.
func (s *Snapshot) RunQuantizedBatch(in, out []int32) error {
	items, err := s.batchItems(len(in), len(out))
	if err != nil || items == 0 {
		return err
	}
	if vecmath.BatchLanes() == 0 {
		return s.runEach(in, out, items)
	}
	b := batchPool.Get().(*batchBufs)
	defer batchPool.Put(b)
	b.scratch = grow(b.scratch, s.net.BatchScratch())
	lo, hi := s.DType.Range()
	if !s.net.RunBatch(in, out, items, lo, hi, b.scratch) {
		return s.runEach(in, out, items) // the level dropped meanwhile
	}
	return nil
}

// runEach runs RunQuantized item by item.
func (s *Snapshot) runEach(in, out []int32, items int) error {
	ni, no := s.InputDim(), s.OutputDim()
	for i := range items {
		if err := s.RunQuantized(in[i*ni:(i+1)*ni], out[i*no:(i+1)*no]); err != nil {
			return err
		}
	}
	return nil
}

// RunBatch is Run on several inputs at once: x holds items × InputDim
// real values, out receives items × OutputDim; each item gets exactly
// what Run gives it (see RunQuantizedBatch).
func (s *Snapshot) RunBatch(x, out []float32) error {
	items, err := s.batchItems(len(x), len(out))
	if err != nil || items == 0 {
		return err
	}
	ni, no := s.InputDim(), s.OutputDim()
	b := batchPool.Get().(*batchBufs)
	defer batchPool.Put(b)
	b.scratch = grow(b.scratch, s.net.BatchScratch())
	lo, hi := s.DType.Range()
	oq := s.Output()
	for base := 0; base < items; base += batchChunk {
		k := min(batchChunk, items-base)
		b.qin, b.qout = grow(b.qin, k*ni), grow(b.qout, k*no)
		// QuantizeValue on every input.
		vecmath.QuantizeF32(b.qin, x[base*ni:(base+k)*ni], s.Input.Scale, s.Input.Zero, lo, hi)
		if !s.net.RunBatch(b.qin, b.qout, k, lo, hi, b.scratch) {
			if err := s.runEach(b.qin, b.qout, k); err != nil {
				return err
			}
		}
		for i, v := range b.qout {
			out[base*no+i] = Dequantize(v, oq)
		}
	}
	return nil
}

// RunQuantizedReference is RunQuantized on the scalar engine, the
// reference the vector engine (and the C engine) must match bit for bit. It
// is meant for tests and benchmarks.
func (s *Snapshot) RunQuantizedReference(in, out []int32) error {
	if !s.ready {
		return ErrNotValidated
	}
	if len(in) != s.InputDim() || len(out) != s.OutputDim() {
		return fmt.Errorf("%w: input %d (want %d), output %d (want %d)", ErrShape, len(in), s.InputDim(), len(out), s.OutputDim())
	}
	sc := scratchPool.Get().(*Scratch)
	lo, hi := s.DType.Range()
	cur := sc.a[:len(in)]
	for i, v := range in {
		cur[i] = min(max(v, lo), hi)
	}
	copy(out, s.runLayersScalar(cur, &sc.a, &sc.b))
	scratchPool.Put(sc)
	return nil
}

// RunTrace is Run that also writes each layer's dequantized output into
// layers[i] (len(layers) == number of layers, layers[i] of length Out). It
// is meant for error reports, not the fast path.
func (s *Snapshot) RunTrace(x []float32, layers [][]float32) error {
	if !s.ready {
		return ErrNotValidated
	}
	if len(x) != s.InputDim() || len(layers) != len(s.Layers) {
		return fmt.Errorf("%w: input %d (want %d), %d layer buffers (want %d)", ErrShape, len(x), s.InputDim(), len(layers), len(s.Layers))
	}
	for i := range s.Layers {
		if len(layers[i]) != s.Layers[i].Out {
			return fmt.Errorf("%w: layer %d buffer %d, want %d", ErrShape, i, len(layers[i]), s.Layers[i].Out)
		}
	}
	sc := new(Scratch)
	cur := sc.a[:len(x)]
	for i, v := range x {
		cur[i] = QuantizeValue(v, s.Input, s.DType)
	}
	s.runLayers(cur, sc.bufs(), layers)
	return nil
}

// runLayers runs every layer on the vecmath kernels (vecmath.Net8: one
// kernel call for a small network on AVX-512); cur aliases b.a. trace,
// when non-nil, receives the dequantized output of each layer (the layers
// then run one by one). It computes exactly what runLayersScalar computes.
func (s *Snapshot) runLayers(cur []int32, b bufs, trace [][]float32) []int32 {
	if trace == nil && vecmath.Current() == vecmath.Scalar {
		// Without vector instructions the scalar engine is the faster one.
		return s.runLayersScalar(cur, (*[MaxWidth]int32)(b.a), (*[MaxWidth]int32)(b.b))
	}
	if trace == nil {
		s.net.Run(b.a, b.xp, b.acc)
		return b.a[:s.OutputDim()]
	}
	for li := range s.Layers {
		s.net.RunLayer(li, b.a, b.xp, b.acc)
		for o, q := range b.a[:s.Layers[li].Out] {
			trace[li][o] = Dequantize(q, s.Layers[li].OutQ)
		}
	}
	return b.a[:s.OutputDim()]
}

// runLayersScalar is the scalar engine, the reference runLayers and the C
// engine are held to: every layer on cur (which aliases bufA).
func (s *Snapshot) runLayersScalar(cur []int32, bufA, bufB *[MaxWidth]int32) []int32 {
	lo, hi := s.DType.Range()
	next := bufB
	other := bufA
	for li := range s.Layers {
		l := &s.Layers[li]
		dst := next[:l.Out]
		vlo, vhi := int64(lo), int64(hi)
		switch l.Act {
		case model.ReLU:
			vlo = int64(max(lo, l.OutQ.Zero))
		case model.Tanh, model.Sigmoid:
			vlo, vhi = TableLo, TableHi
		}
		folded, mult, left, right := l.folded[:len(dst)], l.mult[:len(dst)], l.left[:len(dst)], l.right[:len(dst)]
		zero := int64(l.Pre.Zero)
		for o := range dst {
			dot := dot8(l.W[o*l.In:(o+1)*l.In], cur)
			// Validation guarantees the true accumulator fits in int32.
			acc := int32(int64(dot) + folded[o])
			// fixedpoint.MultiplyByQuantizedMultiplier, with the shift split
			// in advance.
			r := fixedpoint.RoundingDivideByPOT(fixedpoint.SaturatingRoundingDoublingHighMul(fixedpoint.SaturatingLeftShift(acc, int(left[o])), mult[o]), int(right[o]))
			q := int32(min(max(int64(r)+zero, vlo), vhi))
			if l.LUT != nil {
				q = l.LUT[q-TableLo]
			}
			dst[o] = q
		}
		cur = dst
		next, other = other, next
	}
	return cur
}

// dot8 returns Σ w[i]*x[i] for len(x) <= len(w), four products per step
// with independent partial sums.
func dot8(w []int8, x []int32) int32 {
	w = w[:len(x)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		ww, xx := w[i:i+4:i+4], x[i:i+4:i+4]
		s0 += int32(ww[0]) * xx[0]
		s1 += int32(ww[1]) * xx[1]
		s2 += int32(ww[2]) * xx[2]
		s3 += int32(ww[3]) * xx[3]
	}
	for ; i < len(x); i++ {
		s0 += int32(w[i]) * x[i]
	}
	return s0 + s1 + s2 + s3
}
