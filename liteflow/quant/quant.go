package quant

import (
	"errors"
	"fmt"
	"math"

	"github.com/lakeos/lake/liteflow/fixedpoint"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// Options control quantization.
type Options struct {
	// PerChannel selects one weight scale per output channel (default: one
	// per tensor).
	PerChannel bool
	// DType is the activation type (snapshot.Int8 or snapshot.Uint8).
	DType snapshot.DType
	// Generation is stored in the snapshot.
	Generation uint64
}

// Pre-activation ranges beyond which tanh and sigmoid are saturated to
// within a fraction of an output step; clamping the calibrated range there
// keeps the table's input resolution fine.
const (
	tanhClip    = 4.5 // 1 - tanh(4.5) < 2.5e-4 < 1/256
	sigmoidClip = 9.0 // 1 - sigmoid(9) < 1.3e-4 < 1/512
)

// ErrCalibration reports an unusable representative set.
var ErrCalibration = errors.New("quant: bad calibration set")

type rng struct{ lo, hi float64 }

func (r *rng) add(v float32) {
	f := float64(v)
	r.lo = math.Min(r.lo, f)
	r.hi = math.Max(r.hi, f)
}

// chooseQ returns affine parameters covering [lo, hi] (extended to include
// zero, as zero must be exactly representable).
func chooseQ(r rng, d snapshot.DType) snapshot.QParams {
	qlo, qhi := d.Range()
	return chooseQRange(r, qlo, qhi)
}

// chooseQRange is chooseQ for the integer range [qlo, qhi].
func chooseQRange(r rng, qlo, qhi int32) snapshot.QParams {
	lo, hi := math.Min(r.lo, 0), math.Max(r.hi, 0)
	if hi-lo < 1e-8 {
		hi = lo + 1e-8
	}
	scale := (hi - lo) / float64(qhi-qlo)
	zp := math.Round(float64(qlo) - lo/scale)
	zp = math.Min(math.Max(zp, float64(qlo)), float64(qhi))
	return snapshot.QParams{Scale: float32(scale), Zero: int32(zp)}
}

// fixedOut is the output quantization of a table layer, as in TFLite: tanh
// covers [-1, 1) with scale 1/128, sigmoid [0, 1) with scale 1/256.
func fixedOut(act model.Activation, d snapshot.DType) snapshot.QParams {
	if act == model.Tanh {
		if d == snapshot.Uint8 {
			return snapshot.QParams{Scale: 1.0 / 128, Zero: 128}
		}
		return snapshot.QParams{Scale: 1.0 / 128, Zero: 0}
	}
	if d == snapshot.Uint8 {
		return snapshot.QParams{Scale: 1.0 / 256, Zero: 0}
	}
	return snapshot.QParams{Scale: 1.0 / 256, Zero: -128}
}

// Quantize converts m into a validated integer snapshot, calibrating
// activation ranges on the representative inputs calib.
func Quantize(m *model.MLP, calib [][]float32, opt Options) (*snapshot.Snapshot, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	if len(calib) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCalibration)
	}
	if opt.DType != snapshot.Int8 && opt.DType != snapshot.Uint8 {
		return nil, fmt.Errorf("quant: unknown activation type %d", opt.DType)
	}
	nl := len(m.Layers)
	inR := rng{math.Inf(1), math.Inf(-1)}
	pre := make([]rng, nl)
	post := make([]rng, nl)
	for i := range pre {
		pre[i] = rng{math.Inf(1), math.Inf(-1)}
		post[i] = pre[i]
	}
	tr := newTracer(m)
	for n, x := range calib {
		if len(x) != m.InputDim() {
			return nil, fmt.Errorf("%w: input %d has %d values, want %d", ErrCalibration, n, len(x), m.InputDim())
		}
		for _, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: input %d is not finite", ErrCalibration, n)
			}
			inR.add(v)
		}
		tr.run(x)
		for i := range m.Layers {
			for _, v := range tr.pre[i] {
				pre[i].add(v)
			}
			for _, v := range tr.post[i] {
				post[i].add(v)
			}
		}
	}
	s := &snapshot.Snapshot{Generation: opt.Generation, DType: opt.DType, Input: chooseQ(inR, opt.DType)}
	inQ := s.Input
	lo, hi := opt.DType.Range()
	for li, fl := range m.Layers {
		l := snapshot.Layer{In: fl.In, Out: fl.Out, Act: fl.Act, PerChannel: opt.PerChannel}
		switch fl.Act {
		case model.Identity, model.ReLU:
			l.Pre = chooseQ(post[li], opt.DType)
			l.OutQ = l.Pre
		case model.Tanh, model.Sigmoid:
			clip := tanhClip
			if fl.Act == model.Sigmoid {
				clip = sigmoidClip
			}
			r := pre[li]
			r.lo, r.hi = math.Max(r.lo, -clip), math.Min(r.hi, clip)
			l.Pre = chooseQRange(r, snapshot.TableLo, snapshot.TableHi)
			l.OutQ = fixedOut(fl.Act, opt.DType)
			l.LUT = make([]int32, snapshot.TableSize)
			for i := range l.LUT {
				x := float64(l.Pre.Scale) * float64(int32(i)+snapshot.TableLo-l.Pre.Zero)
				y := float64(fl.Act.Apply(float32(x)))
				q := math.Round(y/float64(l.OutQ.Scale)) + float64(l.OutQ.Zero)
				l.LUT[i] = int32(math.Min(math.Max(q, float64(lo)), float64(hi)))
			}
		}
		nch := 1
		if opt.PerChannel {
			nch = fl.Out
		}
		l.WScale = make([]float32, nch)
		l.Mult = make([]int32, nch)
		l.Shift = make([]int32, nch)
		for c := 0; c < nch; c++ {
			var mx float64
			rows := fl.W
			if opt.PerChannel {
				rows = fl.W[c*fl.In : (c+1)*fl.In]
			}
			for _, w := range rows {
				mx = math.Max(mx, math.Abs(float64(w)))
			}
			ws := mx / 127
			if ws == 0 {
				ws = 1
			}
			l.WScale[c] = float32(ws)
			real := float64(inQ.Scale) * float64(l.WScale[c]) / float64(l.Pre.Scale)
			mult, shift, err := fixedpoint.QuantizeMultiplier(real)
			if err != nil {
				return nil, fmt.Errorf("quant: layer %d channel %d: %w", li, c, err)
			}
			l.Mult[c], l.Shift[c] = mult, int32(shift)
		}
		l.W = make([]int8, len(fl.W))
		for i, w := range fl.W {
			ws := float64(l.WScale[0])
			if opt.PerChannel {
				ws = float64(l.WScale[i/fl.In])
			}
			q := math.Round(float64(w) / ws)
			l.W[i] = int8(math.Min(math.Max(q, -127), 127))
		}
		bound := float64(math.MaxInt32 - int64(fl.In)*128*255)
		l.Bias = make([]int32, fl.Out)
		for o, b := range fl.B {
			ws := float64(l.WScale[0])
			if opt.PerChannel {
				ws = float64(l.WScale[o])
			}
			q := math.Round(float64(b) / (float64(inQ.Scale) * ws))
			l.Bias[o] = int32(math.Min(math.Max(q, -bound), bound))
		}
		s.Layers = append(s.Layers, l)
		inQ = l.OutQ
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("quant: produced snapshot: %w", err)
	}
	return s, nil
}

// tracer runs the float model keeping every layer's pre- and
// post-activation values.
type tracer struct {
	m         *model.MLP
	pre, post [][]float32
}

func newTracer(m *model.MLP) *tracer {
	t := &tracer{m: m, pre: make([][]float32, len(m.Layers)), post: make([][]float32, len(m.Layers))}
	for i, l := range m.Layers {
		t.pre[i] = make([]float32, l.Out)
		t.post[i] = make([]float32, l.Out)
	}
	return t
}

func (t *tracer) run(x []float32) {
	cur := x
	for i, l := range t.m.Layers {
		for o := 0; o < l.Out; o++ {
			acc := l.B[o]
			for j, v := range cur {
				acc += l.W[o*l.In+j] * v
			}
			t.pre[i][o] = acc
			t.post[i][o] = l.Act.Apply(acc)
		}
		cur = t.post[i]
	}
}
