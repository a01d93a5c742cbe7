package quant

import (
	"fmt"
	"io"
	"math"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// LayerError is the error of one snapshot layer's dequantized output
// against the float model's output of the same layer, on the same input.
type LayerError struct {
	Layer   int
	Act     model.Activation
	Step    float64 // the layer's output quantization step (scale)
	MaxAbs  float64 // max |snapshot - float|
	MeanAbs float64 // mean |snapshot - float|
}

// MaxSteps is MaxAbs in units of the output step.
func (e LayerError) MaxSteps() float64 { return e.MaxAbs / e.Step }

// MeanSteps is MeanAbs in units of the output step.
func (e LayerError) MeanSteps() float64 { return e.MeanAbs / e.Step }

// Report collects per-layer errors on a test set; the last entry is the
// model's output.
type Report struct {
	Layers  []LayerError
	Samples int
}

// Output returns the error of the model's final output.
func (r Report) Output() LayerError { return r.Layers[len(r.Layers)-1] }

// KindError aggregates the layers of one activation kind.
type KindError struct {
	Act       model.Activation
	Layers    int
	MaxAbs    float64 // max over the layers of MaxAbs
	MeanAbs   float64 // mean over the layers of MeanAbs
	MaxSteps  float64 // max over the layers of MaxSteps
	MeanSteps float64 // mean over the layers of MeanSteps
}

// ByKind aggregates the per-layer errors by activation kind.
func (r Report) ByKind() map[model.Activation]KindError {
	out := map[model.Activation]KindError{}
	for _, l := range r.Layers {
		e := out[l.Act]
		e.Act = l.Act
		e.Layers++
		e.MaxAbs = math.Max(e.MaxAbs, l.MaxAbs)
		e.MaxSteps = math.Max(e.MaxSteps, l.MaxSteps())
		e.MeanAbs += l.MeanAbs
		e.MeanSteps += l.MeanSteps()
		out[l.Act] = e
	}
	for k, e := range out {
		e.MeanAbs /= float64(e.Layers)
		e.MeanSteps /= float64(e.Layers)
		out[k] = e
	}
	return out
}

// Fprint writes the report as a markdown table.
func (r Report) Fprint(w io.Writer) {
	fmt.Fprintf(w, "| layer | kind | step | max abs err | mean abs err | max (steps) | mean (steps) |\n|---|---|---|---|---|---|---|\n")
	for _, l := range r.Layers {
		fmt.Fprintf(w, "| %d | %v | %.3g | %.3g | %.3g | %.2f | %.2f |\n", l.Layer, l.Act, l.Step, l.MaxAbs, l.MeanAbs, l.MaxSteps(), l.MeanSteps())
	}
}

// Compare runs the float model m and the snapshot s on every test input and
// reports per-layer max and mean absolute error. m and s must have the same
// shape.
func Compare(m *model.MLP, s *snapshot.Snapshot, test [][]float32) (Report, error) {
	if len(m.Layers) != len(s.Layers) {
		return Report{}, fmt.Errorf("quant: compare: model has %d layers, snapshot %d", len(m.Layers), len(s.Layers))
	}
	for i := range m.Layers {
		if m.Layers[i].In != s.Layers[i].In || m.Layers[i].Out != s.Layers[i].Out {
			return Report{}, fmt.Errorf("quant: compare: layer %d shapes differ", i)
		}
	}
	if len(test) == 0 {
		return Report{}, fmt.Errorf("quant: compare: empty test set")
	}
	tr := newTracer(m)
	q := make([][]float32, len(s.Layers))
	for i, l := range s.Layers {
		q[i] = make([]float32, l.Out)
	}
	rep := Report{Layers: make([]LayerError, len(s.Layers)), Samples: len(test)}
	counts := make([]int, len(s.Layers))
	for i, l := range s.Layers {
		rep.Layers[i] = LayerError{Layer: i, Act: l.Act, Step: float64(l.OutQ.Scale)}
	}
	for n, x := range test {
		if err := s.RunTrace(x, q); err != nil {
			return Report{}, fmt.Errorf("quant: compare: input %d: %w", n, err)
		}
		tr.run(x)
		for i := range s.Layers {
			e := &rep.Layers[i]
			for o, v := range q[i] {
				d := math.Abs(float64(v) - float64(tr.post[i][o]))
				e.MaxAbs = math.Max(e.MaxAbs, d)
				e.MeanAbs += d
				counts[i]++
			}
		}
	}
	for i := range rep.Layers {
		rep.Layers[i].MeanAbs /= float64(counts[i])
	}
	return rep, nil
}
