package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func target(x []float32) float32 {
	return float32(0.5*math.Sin(float64(2*x[0])) + 0.3*float64(x[1]*x[2]))
}

func dataset(n int, seed uint64) []Sample {
	r := rand.New(rand.NewPCG(seed, 1))
	s := make([]Sample, n)
	for i := range s {
		x := []float32{float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1)}
		s[i] = Sample{X: x, Y: []float32{target(x)}}
	}
	return s
}

func TestTrainingReducesLossForEachActivation(t *testing.T) {
	for _, act := range []Activation{ReLU, Tanh, Sigmoid} {
		m, err := NewMLP([]int{3, 16, 16, 1}, []Activation{act, act, Identity}, 1)
		if err != nil {
			t.Fatal(err)
		}
		m.LearningRate = 5e-3
		train, test := dataset(384, 1), dataset(256, 2)
		before, _ := m.Loss(test)
		if _, err := m.Train(train, 40, 32, 3); err != nil {
			t.Fatal(err)
		}
		after, _ := m.Loss(test)
		if !(after < before/4) || after > 0.02 {
			t.Errorf("%v: test loss %v -> %v, want a 4x drop and < 0.02", act, before, after)
		}
	}
}

// TestAdaptReturnsPreUpdateLoss checks that Adapt reports the loss before
// its update and that one step lowers the batch loss (the gradient points
// the right way).
func TestAdaptReturnsPreUpdateLoss(t *testing.T) {
	m, _ := NewMLP([]int{3, 8, 1}, []Activation{Tanh, Sigmoid}, 2)
	b := dataset(16, 4)
	want, _ := m.Loss(b)
	got, err := m.Adapt(b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-6 {
		t.Fatalf("Adapt loss %v, Loss %v", got, want)
	}
	after, _ := m.Loss(b)
	if after >= want {
		t.Fatalf("one step did not lower the batch loss: %v -> %v", want, after)
	}
}

func TestFreezeIsIndependent(t *testing.T) {
	m, _ := NewMLP([]int{3, 4, 1}, []Activation{ReLU, Identity}, 3)
	f := m.Freeze()
	x, o1, o2 := []float32{0.1, 0.2, 0.3}, make([]float32, 1), make([]float32, 1)
	_ = f.Evaluate(x, o1)
	if _, err := m.Train(dataset(64, 5), 5, 8, 1); err != nil {
		t.Fatal(err)
	}
	_ = f.Evaluate(x, o2)
	if o1[0] != o2[0] {
		t.Fatal("training the model changed the frozen copy")
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidationErrors(t *testing.T) {
	if _, err := NewMLP([]int{3}, nil, 1); err == nil {
		t.Error("single size accepted")
	}
	if _, err := NewMLP([]int{3, 0, 1}, []Activation{ReLU, ReLU}, 1); err == nil {
		t.Error("zero width accepted")
	}
	if _, err := NewMLP([]int{3, 2}, []Activation{9}, 1); err == nil {
		t.Error("unknown activation accepted")
	}
	m, _ := NewMLP([]int{3, 2}, []Activation{ReLU}, 1)
	if err := m.Evaluate([]float32{1}, make([]float32, 2)); !errors.Is(err, ErrShape) {
		t.Errorf("short input: %v", err)
	}
	if _, err := m.Adapt([]Sample{{X: []float32{1, 2, float32(math.NaN())}, Y: []float32{0, 0}}}); err == nil {
		t.Error("NaN input accepted")
	}
	m.Layers[0].W[0] = float32(math.Inf(1))
	if err := m.Validate(); err == nil {
		t.Error("infinite weight accepted")
	}
}
