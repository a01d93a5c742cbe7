package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Sample is one training example: input features X and target outputs Y.
type Sample struct {
	X []float32
	Y []float32
}

// Model is the interface a LiteFlow user implements (MLP is the shipped
// implementation).
type Model interface {
	// Freeze returns an immutable deep copy of the current float model, the
	// input to quantization.
	Freeze() *MLP
	// Evaluate writes the float outputs for input x into out.
	Evaluate(x, out []float32) error
	// Loss returns the mean loss of the model on the batch without training.
	Loss(batch []Sample) (float64, error)
	// Adapt trains the model on one batch and returns the mean loss on the
	// batch measured before the update (the value stability is judged on).
	Adapt(batch []Sample) (float64, error)
}

// Activation is a layer's non-linearity.
type Activation uint8

// Activations. The numeric values are the ones stored in snapshots.
const (
	Identity Activation = 0
	ReLU     Activation = 1
	Tanh     Activation = 2
	Sigmoid  Activation = 3
)

// String names the activation.
func (a Activation) String() string {
	switch a {
	case Identity:
		return "identity"
	case ReLU:
		return "relu"
	case Tanh:
		return "tanh"
	case Sigmoid:
		return "sigmoid"
	}
	return fmt.Sprintf("activation(%d)", uint8(a))
}

// Valid reports whether a is a known activation.
func (a Activation) Valid() bool { return a <= Sigmoid }

// Apply computes the activation of v.
func (a Activation) Apply(v float32) float32 {
	switch a {
	case ReLU:
		if v < 0 {
			return 0
		}
		return v
	case Tanh:
		return float32(math.Tanh(float64(v)))
	case Sigmoid:
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	return v
}

// deriv returns d act / d pre given the activation output y.
func (a Activation) deriv(y float32) float32 {
	switch a {
	case ReLU:
		if y > 0 {
			return 1
		}
		return 0
	case Tanh:
		return 1 - y*y
	case Sigmoid:
		return y * (1 - y)
	}
	return 1
}

// Dense is one fully connected layer: out = Act(W·in + B), W row-major with
// Out rows of In weights.
type Dense struct {
	In, Out int
	W       []float32
	B       []float32
	Act     Activation
}

// MLP is a multilayer perceptron trained with Adam on mean squared error.
// Its methods are not safe for concurrent use; Freeze gives an independent
// copy for concurrent readers.
type MLP struct {
	Layers []Dense
	// LearningRate is Adam's step size (default 1e-3 when zero).
	LearningRate float64

	adam    []adamState
	step    int
	scratch Scratch
	bufs    [][]float32 // activations per layer for training
	grads   [][]float32 // gradient w.r.t. each layer's pre-activation
	gW      [][]float32 // accumulated weight gradients
	gB      [][]float32 // accumulated bias gradients
}

type adamState struct {
	mW, vW, mB, vB []float64
}

// Limits on MLP shape, shared with the snapshot format.
const (
	MaxLayers = 16
	MaxWidth  = 1024
)

// NewMLP builds an MLP with layer widths sizes[0] (inputs) … sizes[n]
// (outputs); acts[i] is the activation of layer i (len(acts) == len(sizes)-1).
// Weights use Xavier/He initialisation from the seeded generator.
func NewMLP(sizes []int, acts []Activation, seed uint64) (*MLP, error) {
	if len(sizes) < 2 || len(acts) != len(sizes)-1 {
		return nil, fmt.Errorf("model: need at least 2 sizes and one activation per layer, got %d sizes and %d activations", len(sizes), len(acts))
	}
	if len(acts) > MaxLayers {
		return nil, fmt.Errorf("model: %d layers exceeds the limit %d", len(acts), MaxLayers)
	}
	r := rand.New(rand.NewPCG(seed, 0x11fe))
	m := &MLP{}
	for i, a := range acts {
		in, out := sizes[i], sizes[i+1]
		if in < 1 || out < 1 || in > MaxWidth || out > MaxWidth {
			return nil, fmt.Errorf("model: layer %d shape %dx%d outside [1, %d]", i, in, out, MaxWidth)
		}
		if !a.Valid() {
			return nil, fmt.Errorf("model: layer %d: unknown %v", i, a)
		}
		std := math.Sqrt(1 / float64(in))
		if a == ReLU {
			std = math.Sqrt(2 / float64(in))
		}
		d := Dense{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out), Act: a}
		for j := range d.W {
			d.W[j] = float32(r.NormFloat64() * std)
		}
		m.Layers = append(m.Layers, d)
	}
	return m, nil
}

// InputDim is the number of inputs.
func (m *MLP) InputDim() int { return m.Layers[0].In }

// OutputDim is the number of outputs.
func (m *MLP) OutputDim() int { return m.Layers[len(m.Layers)-1].Out }

// Validate checks the MLP's shape and values (finite weights, chained
// dimensions, known activations).
func (m *MLP) Validate() error {
	if len(m.Layers) == 0 || len(m.Layers) > MaxLayers {
		return fmt.Errorf("model: %d layers outside [1, %d]", len(m.Layers), MaxLayers)
	}
	for i, l := range m.Layers {
		if l.In < 1 || l.Out < 1 || l.In > MaxWidth || l.Out > MaxWidth {
			return fmt.Errorf("model: layer %d shape %dx%d outside [1, %d]", i, l.In, l.Out, MaxWidth)
		}
		if i > 0 && l.In != m.Layers[i-1].Out {
			return fmt.Errorf("model: layer %d has %d inputs but layer %d has %d outputs", i, l.In, i-1, m.Layers[i-1].Out)
		}
		if len(l.W) != l.In*l.Out || len(l.B) != l.Out {
			return fmt.Errorf("model: layer %d has %d weights and %d biases, want %d and %d", i, len(l.W), len(l.B), l.In*l.Out, l.Out)
		}
		if !l.Act.Valid() {
			return fmt.Errorf("model: layer %d: unknown %v", i, l.Act)
		}
		for _, v := range l.W {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("model: layer %d has a non-finite weight", i)
			}
		}
		for _, v := range l.B {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("model: layer %d has a non-finite bias", i)
			}
		}
	}
	return nil
}

// Freeze returns a deep copy holding only the layers (no optimiser state).
func (m *MLP) Freeze() *MLP {
	c := &MLP{Layers: make([]Dense, len(m.Layers)), LearningRate: m.LearningRate}
	for i, l := range m.Layers {
		c.Layers[i] = Dense{In: l.In, Out: l.Out, Act: l.Act,
			W: append([]float32(nil), l.W...), B: append([]float32(nil), l.B...)}
	}
	return c
}

// ErrShape reports an input or output slice of the wrong length.
var ErrShape = errors.New("model: wrong vector length")

// Evaluate computes the float outputs for x into out using the MLP's own
// scratch buffers (so, like training, it is not safe for concurrent use;
// concurrent readers use Forward with their own Scratch).
func (m *MLP) Evaluate(x, out []float32) error {
	return m.Forward(x, out, &m.scratch)
}

// Scratch holds reusable buffers for Forward. The zero value is ready; one
// Scratch must not be used by two goroutines at once.
type Scratch struct{ a, b []float32 }

// Forward computes the outputs for x into out using scratch buffers from s.
// It is allocation-free once s has grown to the model's widest layer.
func (m *MLP) Forward(x, out []float32, s *Scratch) error {
	if len(x) != m.InputDim() || len(out) != m.OutputDim() {
		return fmt.Errorf("%w: input %d (want %d), output %d (want %d)", ErrShape, len(x), m.InputDim(), len(out), m.OutputDim())
	}
	cur := x
	for i := range m.Layers {
		l := &m.Layers[i]
		var dst []float32
		if i == len(m.Layers)-1 {
			dst = out
		} else {
			if cap(s.a) < l.Out {
				s.a = make([]float32, MaxWidth)
			}
			dst = s.a[:l.Out]
			s.a, s.b = s.b, s.a
		}
		for o := 0; o < l.Out; o++ {
			w := l.W[o*l.In : (o+1)*l.In]
			acc := l.B[o]
			for j, v := range cur {
				acc += w[j] * v
			}
			dst[o] = l.Act.Apply(acc)
		}
		cur = dst
	}
	return nil
}

// Loss returns the mean squared error (averaged over samples and outputs) of
// the model on batch.
func (m *MLP) Loss(batch []Sample) (float64, error) {
	if len(batch) == 0 {
		return 0, errors.New("model: empty batch")
	}
	out := make([]float32, m.OutputDim())
	var s Scratch
	var sum float64
	for i, smp := range batch {
		if len(smp.Y) != m.OutputDim() {
			return 0, fmt.Errorf("sample %d: %w: target %d, want %d", i, ErrShape, len(smp.Y), m.OutputDim())
		}
		if err := m.Forward(smp.X, out, &s); err != nil {
			return 0, fmt.Errorf("sample %d: %w", i, err)
		}
		for k := range out {
			d := float64(out[k] - smp.Y[k])
			sum += d * d
		}
	}
	return sum / float64(len(batch)*m.OutputDim()), nil
}

// Adapt performs one Adam step on the mean squared error of batch and
// returns the loss measured in the same forward pass (before the update).
func (m *MLP) Adapt(batch []Sample) (float64, error) {
	if len(batch) == 0 {
		return 0, errors.New("model: empty batch")
	}
	for i, smp := range batch {
		if len(smp.X) != m.InputDim() || len(smp.Y) != m.OutputDim() {
			return 0, fmt.Errorf("sample %d: %w: x %d y %d, want %d and %d", i, ErrShape, len(smp.X), len(smp.Y), m.InputDim(), m.OutputDim())
		}
		for _, v := range smp.X {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, fmt.Errorf("sample %d: non-finite input", i)
			}
		}
		for _, v := range smp.Y {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, fmt.Errorf("sample %d: non-finite target", i)
			}
		}
	}
	m.ensureTraining()
	for i := range m.Layers {
		clear(m.gW[i])
		clear(m.gB[i])
	}
	nOut := m.OutputDim()
	last := len(m.Layers) - 1
	var loss float64
	for _, smp := range batch {
		// Forward, keeping every layer's output.
		cur := smp.X
		for i := range m.Layers {
			l := &m.Layers[i]
			dst := m.bufs[i][:l.Out]
			for o := range dst {
				w := l.W[o*l.In : (o+1)*l.In]
				w = w[:len(cur)]
				acc := l.B[o]
				for j, v := range cur {
					acc += w[j] * v
				}
				dst[o] = l.Act.Apply(acc)
			}
			cur = dst
		}
		// Backward.
		for k := 0; k < nOut; k++ {
			d := cur[k] - smp.Y[k]
			loss += float64(d) * float64(d)
			m.grads[last][k] = 2 * d / float32(nOut) * m.Layers[last].Act.deriv(cur[k])
		}
		for i := last; i >= 0; i-- {
			l := &m.Layers[i]
			in := smp.X
			if i > 0 {
				in = m.bufs[i-1][:l.In]
			}
			g := m.grads[i][:l.Out]
			gb := m.gB[i][:l.Out]
			if i == 0 {
				for o, gv := range g {
					gb[o] += gv
					row := m.gW[i][o*l.In : (o+1)*l.In]
					row = row[:len(in)]
					for j, v := range in {
						row[j] += gv * v
					}
				}
				continue
			}
			prevG := m.grads[i-1][:l.In]
			clear(prevG)
			for o, gv := range g {
				gb[o] += gv
				row := m.gW[i][o*l.In : (o+1)*l.In]
				w := l.W[o*l.In : (o+1)*l.In]
				row, w = row[:len(in)], w[:len(in)]
				pg := prevG[:len(in)]
				for j, v := range in {
					row[j] += gv * v
					pg[j] += gv * w[j]
				}
			}
			pa := m.Layers[i-1].Act
			for j, y := range in {
				prevG[j] *= pa.deriv(y)
			}
		}
	}
	m.adamStep(float64(len(batch)))
	return loss / float64(len(batch)*nOut), nil
}

func (m *MLP) ensureTraining() {
	if len(m.bufs) == len(m.Layers) {
		return
	}
	m.bufs = make([][]float32, len(m.Layers))
	m.grads = make([][]float32, len(m.Layers))
	m.gW = make([][]float32, len(m.Layers))
	m.gB = make([][]float32, len(m.Layers))
	m.adam = make([]adamState, len(m.Layers))
	for i, l := range m.Layers {
		m.bufs[i] = make([]float32, l.Out)
		m.grads[i] = make([]float32, l.Out)
		m.gW[i] = make([]float32, len(l.W))
		m.gB[i] = make([]float32, len(l.B))
		m.adam[i] = adamState{mW: make([]float64, len(l.W)), vW: make([]float64, len(l.W)), mB: make([]float64, len(l.B)), vB: make([]float64, len(l.B))}
	}
}

func (m *MLP) adamStep(n float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	lr := m.LearningRate
	if lr == 0 {
		lr = 1e-3
	}
	m.step++
	c1 := 1 - math.Pow(b1, float64(m.step))
	c2 := 1 - math.Pow(b2, float64(m.step))
	upd := func(p, g []float32, mm, vv []float64) {
		for j := range p {
			gj := float64(g[j]) / n
			mm[j] = b1*mm[j] + (1-b1)*gj
			vv[j] = b2*vv[j] + (1-b2)*gj*gj
			p[j] -= float32(lr * (mm[j] / c1) / (math.Sqrt(vv[j]/c2) + eps))
		}
	}
	for i := range m.Layers {
		upd(m.Layers[i].W, m.gW[i], m.adam[i].mW, m.adam[i].vW)
		upd(m.Layers[i].B, m.gB[i], m.adam[i].mB, m.adam[i].vB)
	}
}

// Train runs epochs of mini-batch Adam over samples (in order, batch size
// bs) and returns the loss of the last epoch. It is a convenience for
// offline pre-training.
func (m *MLP) Train(samples []Sample, epochs, bs int, seed uint64) (float64, error) {
	if bs < 1 {
		return 0, errors.New("model: batch size must be positive")
	}
	r := rand.New(rand.NewPCG(seed, 7))
	idx := make([]int, len(samples))
	for i := range idx {
		idx[i] = i
	}
	batch := make([]Sample, 0, bs)
	var last float64
	for e := 0; e < epochs; e++ {
		r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		var sum float64
		var nb int
		for s := 0; s < len(idx); s += bs {
			batch = batch[:0]
			for _, k := range idx[s:min(s+bs, len(idx))] {
				batch = append(batch, samples[k])
			}
			l, err := m.Adapt(batch)
			if err != nil {
				return 0, err
			}
			sum += l
			nb++
		}
		if nb > 0 {
			last = sum / float64(nb)
		}
	}
	return last, nil
}

var _ Model = (*MLP)(nil)
