package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/lakeos/lake/vecmath"
)

// MLP blob format, version 1. All fields are little-endian; the blob is
// exactly as long as its header says (no trailing bytes):
//
//	offset        size  field
//	0             4     magic "LMLP"
//	4             4     u32 version, = 1
//	8             4     u32 layer count L, 1..MaxLayers
//	12            4     u32 input width, 1..MaxWidth
//	16            8*L   per layer: u32 output width (1..MaxWidth),
//	                    u32 activation (0 none, 1 relu, 2 tanh, 3 sigmoid)
//	16+8*L        ...   per layer, in order: float32 weights, out rows of
//	                    in columns (row-major, in = previous layer's
//	                    output width), then float32 biases[out]
//
// Every weight and bias must be finite. The total number of weights and
// biases is at most MaxParams. A layer computes
// y[o] = act(b[o] + sum_i W[o][i]*x[i]).
const (
	// MLPMagic starts every MLP blob.
	MLPMagic = "LMLP"
	// MLPVersion is the only blob version understood.
	MLPVersion = 1
	// MaxLayers bounds the layer count of a blob.
	MaxLayers = 64
	// MaxWidth bounds every layer width.
	MaxWidth = 1 << 16
	// MaxParams bounds the total number of weights and biases (64 MiB).
	MaxParams = 1 << 24
	// StackWidth is the widest input or layer for which Forward needs
	// no heap scratch at all; wider models borrow scratch from a pool.
	StackWidth = 512
	headerLen  = 16
)

// ErrInvalidModel is wrapped by every blob validation error.
var ErrInvalidModel = errors.New("invalid MLP model")

// Activation is a layer's activation function.
type Activation uint32

// Activations, with their blob codes.
const (
	ActNone    Activation = 0
	ActReLU    Activation = 1
	ActTanh    Activation = 2
	ActSigmoid Activation = 3
)

// String returns the activation's name.
func (a Activation) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActReLU:
		return "relu"
	case ActTanh:
		return "tanh"
	case ActSigmoid:
		return "sigmoid"
	}
	return fmt.Sprintf("activation(%d)", uint32(a))
}

// Layer is one dense layer given to EncodeMLP.
type Layer struct {
	// Out is the layer's output width.
	Out int
	// Act is applied to every output.
	Act Activation
	// W holds Out rows of In weights each, row-major, where In is the
	// previous layer's Out (or the model's input width).
	W []float32
	// B holds Out biases.
	B []float32
}

type layerSpec struct {
	in, out int
	act     Activation
}

type mlpLayer struct {
	in, out int
	act     Activation
	w, b    []float32
	wt      []float32 // w transposed ([in][out]), for the vector path; nil without
}

// MLP is a parsed, validated dense network. It is immutable and safe
// for concurrent use.
type MLP struct {
	in       int
	layers   []mlpLayer
	scratchW int  // widest of the input and every layer
	vec      bool // every layer has wt: Forward runs on vecmath
}

// layout validates the header and layer table at the start of b (which
// must hold at least headerLen+8*L bytes, else an error asks for more)
// and returns the specs and the total blob length.
func layout(b []byte) (in int, specs []layerSpec, total int, err error) {
	if len(b) < headerLen {
		return 0, nil, 0, fmt.Errorf("blob of %d bytes is shorter than the %d-byte header: %w", len(b), headerLen, ErrInvalidModel)
	}
	if string(b[:4]) != MLPMagic {
		return 0, nil, 0, fmt.Errorf("bad magic %q: %w", b[:4], ErrInvalidModel)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != MLPVersion {
		return 0, nil, 0, fmt.Errorf("unsupported version %d: %w", v, ErrInvalidModel)
	}
	nl := binary.LittleEndian.Uint32(b[8:])
	if nl < 1 || nl > MaxLayers {
		return 0, nil, 0, fmt.Errorf("layer count %d not in 1..%d: %w", nl, MaxLayers, ErrInvalidModel)
	}
	inw := binary.LittleEndian.Uint32(b[12:])
	if inw < 1 || inw > MaxWidth {
		return 0, nil, 0, fmt.Errorf("input width %d not in 1..%d: %w", inw, MaxWidth, ErrInvalidModel)
	}
	tbl := headerLen + 8*int(nl)
	if len(b) < tbl {
		return 0, nil, 0, fmt.Errorf("blob of %d bytes is shorter than its %d-layer table: %w", len(b), nl, ErrInvalidModel)
	}
	specs = make([]layerSpec, nl)
	prev := int(inw)
	params := 0
	for i := range specs {
		o := binary.LittleEndian.Uint32(b[headerLen+8*i:])
		a := Activation(binary.LittleEndian.Uint32(b[headerLen+8*i+4:]))
		if o < 1 || o > MaxWidth {
			return 0, nil, 0, fmt.Errorf("layer %d: output width %d not in 1..%d: %w", i, o, MaxWidth, ErrInvalidModel)
		}
		if a > ActSigmoid {
			return 0, nil, 0, fmt.Errorf("layer %d: unknown activation %d: %w", i, uint32(a), ErrInvalidModel)
		}
		// prev, o <= 2^16, so prev*o+o < 2^33 fits in int on 64-bit; and
		// params stays <= MaxParams + 2^33 before the check.
		params += prev*int(o) + int(o)
		if params > MaxParams {
			return 0, nil, 0, fmt.Errorf("more than %d parameters: %w", MaxParams, ErrInvalidModel)
		}
		specs[i] = layerSpec{in: prev, out: int(o), act: a}
		prev = int(o)
	}
	return int(inw), specs, tbl + 4*params, nil
}

// build slices floats (the weights and biases, in blob order) into a
// validated MLP without copying. With checkFinite it also rejects NaN and
// infinite parameters (an O(parameters) scan).
func build(in int, specs []layerSpec, floats []float32, checkFinite bool) (*MLP, error) {
	m := &MLP{in: in, layers: make([]mlpLayer, len(specs))}
	off := 0
	for i, s := range specs {
		nw := s.in * s.out
		if len(floats)-off < nw+s.out {
			return nil, fmt.Errorf("layer %d: weights truncated: %w", i, ErrInvalidModel)
		}
		l := mlpLayer{in: s.in, out: s.out, act: s.act,
			w: floats[off : off+nw : off+nw], b: floats[off+nw : off+nw+s.out : off+nw+s.out]}
		off += nw + s.out
		for j, v := range l.w {
			if !checkFinite {
				break
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("layer %d: weight %d is %v: %w", i, j, v, ErrInvalidModel)
			}
		}
		for j, v := range l.b {
			if !checkFinite {
				break
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("layer %d: bias %d is %v: %w", i, j, v, ErrInvalidModel)
			}
		}
		m.layers[i] = l
		m.scratchW = max(m.scratchW, s.in, s.out)
	}
	if off != len(floats) {
		return nil, fmt.Errorf("%d trailing parameters: %w", len(floats)-off, ErrInvalidModel)
	}
	return m, nil
}

// ParseMLP validates an MLP blob and returns the model, holding its own
// copy of the weights (blob may be reused afterwards).
func ParseMLP(blob []byte) (*MLP, error) {
	in, specs, total, err := layout(blob)
	if err != nil {
		return nil, fmt.Errorf("parse MLP: %w", err)
	}
	if len(blob) != total {
		return nil, fmt.Errorf("parse MLP: blob is %d bytes, header says %d: %w", len(blob), total, ErrInvalidModel)
	}
	tbl := headerLen + 8*len(specs)
	floats := make([]float32, (total-tbl)/4)
	for i := range floats {
		floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(blob[tbl+4*i:]))
	}
	m, err := build(in, specs, floats, true)
	if err != nil {
		return nil, fmt.Errorf("parse MLP: %w", err)
	}
	m.transpose()
	return m, nil
}

// transpose gives every layer a transposed copy of its weights, so that
// Forward runs on vecmath.MulAddColsF32 (one vector lane per output, each
// summing its products in input order, as the scalar path does).
func (m *MLP) transpose() {
	for li := range m.layers {
		l := &m.layers[li]
		l.wt = make([]float32, len(l.w))
		for o := 0; o < l.out; o++ {
			for i, v := range l.w[o*l.in : (o+1)*l.in] {
				l.wt[i*l.out+o] = v
			}
		}
	}
	m.vec = true
}

// EncodeMLP builds a blob for a model with input width in and the given
// layers, validating shapes and values as ParseMLP does.
func EncodeMLP(in int, layers []Layer) ([]byte, error) {
	if len(layers) < 1 || len(layers) > MaxLayers {
		return nil, fmt.Errorf("encode MLP: %d layers not in 1..%d: %w", len(layers), MaxLayers, ErrInvalidModel)
	}
	if in < 1 || in > MaxWidth {
		return nil, fmt.Errorf("encode MLP: input width %d not in 1..%d: %w", in, MaxWidth, ErrInvalidModel)
	}
	size := headerLen + 8*len(layers)
	prev := in
	params := 0
	for i, l := range layers {
		if l.Out < 1 || l.Out > MaxWidth {
			return nil, fmt.Errorf("encode MLP: layer %d: width %d not in 1..%d: %w", i, l.Out, MaxWidth, ErrInvalidModel)
		}
		if l.Act > ActSigmoid {
			return nil, fmt.Errorf("encode MLP: layer %d: unknown activation %d: %w", i, uint32(l.Act), ErrInvalidModel)
		}
		if len(l.W) != prev*l.Out || len(l.B) != l.Out {
			return nil, fmt.Errorf("encode MLP: layer %d: want %d weights and %d biases, have %d and %d: %w",
				i, prev*l.Out, l.Out, len(l.W), len(l.B), ErrInvalidModel)
		}
		params += len(l.W) + len(l.B)
		if params > MaxParams {
			return nil, fmt.Errorf("encode MLP: more than %d parameters: %w", MaxParams, ErrInvalidModel)
		}
		prev = l.Out
	}
	size += 4 * params
	b := make([]byte, headerLen+8*len(layers), size)
	copy(b, MLPMagic)
	binary.LittleEndian.PutUint32(b[4:], MLPVersion)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(layers)))
	binary.LittleEndian.PutUint32(b[12:], uint32(in))
	for i, l := range layers {
		binary.LittleEndian.PutUint32(b[headerLen+8*i:], uint32(l.Out))
		binary.LittleEndian.PutUint32(b[headerLen+8*i+4:], uint32(l.Act))
	}
	for _, l := range layers {
		for _, v := range l.W {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		for _, v := range l.B {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	if _, err := ParseMLP(b); err != nil { // non-finite values
		return nil, fmt.Errorf("encode MLP: %w", err)
	}
	return b, nil
}

// InDim returns the input width (floats per item).
func (m *MLP) InDim() int { return m.in }

// OutDim returns the output width (floats per item).
func (m *MLP) OutDim() int { return m.layers[len(m.layers)-1].out }

// NumLayers returns the number of layers.
func (m *MLP) NumLayers() int { return len(m.layers) }

// Layer returns layer i's shape, activation, weights (out rows of in,
// row-major) and biases. The slices are the model's own: do not modify
// them.
func (m *MLP) Layer(i int) (in, out int, act Activation, w, b []float32) {
	l := &m.layers[i]
	return l.in, l.out, l.act, l.w, l.b
}

// NumParams returns the number of weights and biases.
func (m *MLP) NumParams() int {
	n := 0
	for _, l := range m.layers {
		n += len(l.w) + len(l.b)
	}
	return n
}

// lanes is how many items Forward runs side by side. Each item keeps its
// own accumulator and sums in the same order whatever lane it is in, so
// an item's output does not depend on its batch or its position in it.
const lanes = 4

var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

// Forward runs n items: item i reads in[i*InDim():(i+1)*InDim()] and
// writes out[i*OutDim():(i+1)*OutDim()]. in and out must not overlap.
// With a vector level (package vecmath) items run 16 side by side on
// vecmath.MulAddLanesF32 (groups of at least four); the rest run one at a
// time on vecmath.MulAddColsF32 for a model from ParseMLP (transposed
// weights), or four at a time, interleaved so each weight is loaded once
// for four items, for a model over device memory (the mlp_forward launch).
// Every path sums in float32, bias first, then the rounded products in
// input order, so an item's result is the same bit for bit whatever path
// and batch it runs in. Forward does not allocate (after warm-up) when
// the input and every layer are at most StackWidth wide.
func (m *MLP) Forward(in, out []float32, n int) error {
	if n < 0 {
		return fmt.Errorf("mlp forward: negative item count %d", n)
	}
	if n > len(in)/m.in || n > len(out)/m.OutDim() {
		return fmt.Errorf("mlp forward: %d items need %d inputs and %d outputs, have %d and %d",
			n, n*m.in, n*m.OutDim(), len(in), len(out))
	}
	if n == 0 {
		return nil
	}
	if n >= minLaneItems && vecmath.Current() != vecmath.Scalar {
		done := m.forwardLanes(in, out, n)
		in, out, n = in[done*m.in:], out[done*m.OutDim():], n-done
		if n == 0 {
			return nil
		}
	}
	if m.vec && m.scratchW <= StackWidth {
		var buf [2 * StackWidth]float32
		m.forwardVec(in, out, n, buf[:2*m.scratchW])
		return nil
	}
	need := 2 * lanes * m.scratchW
	run := m.forward
	if m.vec {
		run = m.forwardVec
	}
	if m.scratchW <= StackWidth {
		var buf [2 * lanes * StackWidth]float32
		run(in, out, n, buf[:need])
		return nil
	}
	p := scratchPool.Get().(*[]float32)
	if cap(*p) < need {
		*p = make([]float32, need)
	}
	run(in, out, n, (*p)[:need])
	scratchPool.Put(p)
	return nil
}

// forwardVec runs n items one at a time on the vecmath kernels: per
// layer y = b, then y[o] += float32(W[o][i]*x[i]) for i in order (rounded
// products, no fused multiply-add), then the activation. It computes what
// forward1 and apply compute, bit for bit (NaN payloads aside).
func (m *MLP) forwardVec(in, out []float32, n int, scratch []float32) {
	od := m.OutDim()
	last := len(m.layers) - 1
	for it := 0; it < n; it++ {
		x := in[it*m.in : (it+1)*m.in]
		a, b := scratch[:m.scratchW], scratch[m.scratchW:2*m.scratchW]
		for li := range m.layers {
			l := &m.layers[li]
			y := a[:l.out]
			if li == last {
				y = out[it*od : (it+1)*od]
			}
			copy(y, l.b)
			vecmath.MulAddColsF32(y, l.wt, x[:l.in], false)
			activate(l.act, y)
			x = y
			a, b = b, a
		}
	}
}

// minLaneItems is the smallest group of items forwardLanes runs side by
// side (a group of up to vecmath.Lanes costs about the same).
const minLaneItems = 4

var laneScratch = sync.Pool{New: func() any { return new([]float32) }}

// forwardLanes runs the items of in in groups of vecmath.Lanes (the last
// group at least minLaneItems; idle lanes compute on zeros) on
// vecmath.MulAddLanesF32 with the row-major weights: every lane sums its
// products in input order, so each item gets exactly forward1's result. It
// returns how many items it ran.
func (m *MLP) forwardLanes(in, out []float32, n int) int {
	const L = vecmath.Lanes
	p := laneScratch.Get().(*[]float32)
	if cap(*p) < 2*L*m.scratchW {
		*p = make([]float32, 2*L*m.scratchW)
	}
	buf := (*p)[:2*L*m.scratchW]
	od := m.OutDim()
	it := 0
	for ; n-it >= minLaneItems; it += L {
		cnt := min(L, n-it)
		cur, nxt := buf[:L*m.scratchW], buf[L*m.scratchW:]
		x := cur[:L*m.in]
		for l := 0; l < L; l++ {
			for i := 0; i < m.in; i++ {
				var v float32
				if l < cnt {
					v = in[(it+l)*m.in+i]
				}
				x[i*L+l] = v
			}
		}
		for li := range m.layers {
			lay := &m.layers[li]
			y := nxt[:L*lay.out]
			for o, b := range lay.b {
				for l := 0; l < L; l++ {
					y[o*L+l] = b
				}
			}
			vecmath.MulAddLanesF32(y, lay.w, cur[:L*lay.in], false, lay.act == ActReLU)
			if lay.act != ActReLU {
				activate(lay.act, y)
			}
			cur, nxt = nxt, cur
		}
		for l := 0; l < cnt; l++ {
			dst := out[(it+l)*od : (it+l+1)*od]
			for o := range dst {
				dst[o] = cur[o*L+l]
			}
		}
	}
	laneScratch.Put(p)
	return min(it, n)
}

// forward runs n >= 1 items through the network, lanes items at a time.
// scratch holds two interleaved activation buffers of scratchW*lanes
// floats: element i of lane l is at [i*lanes+l].
func (m *MLP) forward(in, out []float32, n int, scratch []float32) {
	sw := m.scratchW * lanes
	od := m.OutDim()
	for it := 0; it < n; it += lanes {
		cnt := min(lanes, n-it)
		if cnt == 1 { // a lone item: one accumulator chain is faster than idle lanes
			m.forward1(in[it*m.in:(it+1)*m.in], out[it*od:(it+1)*od], scratch)
			continue
		}
		cur, nxt := scratch[:sw], scratch[sw:2*sw]
		x := cur[:m.in*lanes]
		for l := 0; l < lanes; l++ {
			if l < cnt {
				src := in[(it+l)*m.in : (it+l+1)*m.in]
				for i, v := range src {
					x[i*lanes+l] = v
				}
			} else { // idle lane: compute on zeros, discard
				for i := 0; i < m.in; i++ {
					x[i*lanes+l] = 0
				}
			}
		}
		for li := range m.layers {
			lay := &m.layers[li]
			lay.apply(cur[:lay.in*lanes], nxt[:lay.out*lanes])
			cur, nxt = nxt, cur
		}
		for l := 0; l < cnt; l++ {
			dst := out[(it+l)*od : (it+l+1)*od]
			for o := range dst {
				dst[o] = cur[o*lanes+l]
			}
		}
	}
}

// forward1 runs one item, summing in exactly the order apply does so
// that the result is bit-identical to the item's result in a batch.
func (m *MLP) forward1(x, out, scratch []float32) {
	a, b := scratch[:m.scratchW], scratch[m.scratchW:2*m.scratchW]
	last := len(m.layers) - 1
	for li := range m.layers {
		l := &m.layers[li]
		y := a[:l.out]
		if li == last {
			y = out[:l.out]
		}
		x = x[:l.in]
		for o := range y {
			w := l.w[o*l.in : o*l.in+l.in]
			s := l.b[o]
			for i, wv := range w {
				s += float32(wv * x[i])
			}
			y[o] = s
		}
		activate(l.act, y)
		x = y
		a, b = b, a
	}
}

// apply computes y = act(W x + b) for lanes interleaved items. Products
// are rounded to float32 before adding (the explicit conversions stop
// the compiler from fusing them into FMAs on some architectures), so
// every architecture and path computes the same bits.
func (l *mlpLayer) apply(x, y []float32) {
	in := l.in
	x = x[:in*lanes]
	y = y[:l.out*lanes]
	for o := 0; o < l.out; o++ {
		w := l.w[o*in : o*in+in]
		bv := l.b[o]
		s0, s1, s2, s3 := bv, bv, bv, bv
		for i, wv := range w {
			xv := x[i*lanes : i*lanes+lanes : i*lanes+lanes]
			s0 += float32(wv * xv[0])
			s1 += float32(wv * xv[1])
			s2 += float32(wv * xv[2])
			s3 += float32(wv * xv[3])
		}
		yv := y[o*lanes : o*lanes+lanes : o*lanes+lanes]
		yv[0], yv[1], yv[2], yv[3] = s0, s1, s2, s3
	}
	activate(l.act, y)
}

// activate applies act to every element of y in place.
func activate(act Activation, y []float32) {
	switch act {
	case ActReLU:
		for o, v := range y {
			if v < 0 {
				y[o] = 0
			}
		}
	case ActTanh:
		for o, v := range y {
			y[o] = tanh32(v)
		}
	case ActSigmoid:
		for o, v := range y {
			y[o] = sigmoid32(v)
		}
	}
}
