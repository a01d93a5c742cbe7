package linnos

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

func randomFloatModel(t *testing.T, extra int, seed uint64) *FloatModel {
	t.Helper()
	m, err := NewFloatModel(extra)
	if err != nil {
		t.Fatal(err)
	}
	initWeights(m, rand.New(rand.NewPCG(seed, 1)))
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range m.B {
		for k := range m.B[i] {
			m.B[i][k] = float32(r.NormFloat64() * 0.5)
		}
	}
	return m
}

// The integer path approximates the float path: after quantization almost
// every decision agrees, and the logits are the float logits ×BiasScale.
func TestQuantizedMatchesFloat(t *testing.T) {
	for extra := 0; extra <= MaxExtra; extra++ {
		f := randomFloatModel(t, extra, uint64(extra))
		q, err := Quantize(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 500
		if extra > 0 {
			n = 150
		}
		v := randomVectors(n, 3)
		fc, ic := make([]int32, n), make([]int32, n)
		if err := f.PredictBatch(v, fc); err != nil {
			t.Fatal(err)
		}
		if err := q.PredictBatch(v, ic); err != nil {
			t.Fatal(err)
		}
		agree := 0
		for i := range fc {
			if fc[i] == ic[i] {
				agree++
			}
		}
		if agree < n*97/100 {
			t.Errorf("extra=%d: float and int agree on %d/%d", extra, agree, n)
		}
		lf, err := f.Logits(v[:NumInputs])
		if err != nil {
			t.Fatal(err)
		}
		li := make([]int64, 2)
		if err := q.Logits(v[:NumInputs], li); err != nil {
			t.Fatal(err)
		}
		s := float64(BiasScale(extra + 1))
		for c := 0; c < 2; c++ {
			if d := float64(li[c])/s - float64(lf[c]); d > 0.05 || d < -0.05 {
				t.Errorf("extra=%d: class %d logit int/scale %.4f vs float %.4f", extra, c, float64(li[c])/s, lf[c])
			}
		}
		dec := make([]bool, n)
		if err := q.Predict(v, n, dec); err != nil {
			t.Fatal(err)
		}
		for i := range dec {
			if dec[i] != (ic[i] == 1) {
				t.Fatalf("Predict and PredictBatch disagree at %d", i)
			}
		}
	}
}

func TestPredictBatchNoAllocsAndConcurrent(t *testing.T) {
	q := randomIntModel(t, 0, 5)
	f := randomFloatModel(t, 0, 5)
	v := randomVectors(64, 9)
	out := make([]int32, 64)
	// The race detector makes sync.Pool drop items on purpose, so the
	// allocation check only holds without it.
	if !raceEnabled {
		if a := testing.AllocsPerRun(50, func() { _ = q.PredictBatch(v, out) }); a != 0 {
			t.Errorf("IntModel.PredictBatch allocates %.1f times per call", a)
		}
		if a := testing.AllocsPerRun(50, func() { _ = f.PredictBatch(v, out) }); a != 0 {
			t.Errorf("FloatModel.PredictBatch allocates %.1f times per call", a)
		}
	}
	want := make([]int32, 64)
	if err := q.PredictBatch(v, want); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]int32, 64)
			for i := 0; i < 20; i++ {
				if err := q.PredictBatch(v, got); err != nil {
					errs <- err
					return
				}
				for k := range got {
					if got[k] != want[k] {
						errs <- errors.New("concurrent result differs")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestShapeErrors(t *testing.T) {
	q := randomIntModel(t, 0, 1)
	if err := q.PredictBatch(make([]int32, 30), make([]int32, 1)); !errors.Is(err, ErrShape) {
		t.Fatalf("short features: %v", err)
	}
	if err := q.Predict(make([]int32, 31), 2, make([]bool, 2)); !errors.Is(err, ErrShape) {
		t.Fatalf("n too large: %v", err)
	}
	if err := q.Logits(make([]int32, 31), make([]int64, 3)); !errors.Is(err, ErrShape) {
		t.Fatalf("odd logits: %v", err)
	}
	if _, err := NewIntModel(3, nil, nil); !errors.Is(err, ErrShape) {
		t.Fatalf("extra 3: %v", err)
	}
	w, b := q.Layer(0)
	if _, err := NewIntModel(0, [][]int64{w[:10], w}, [][]int64{b, b[:2]}); !errors.Is(err, ErrShape) {
		t.Fatalf("short layer: %v", err)
	}
	f := &FloatModel{Extra: 1}
	if err := f.PredictBatch(nil, nil); !errors.Is(err, ErrShape) {
		t.Fatalf("empty float model: %v", err)
	}
	// Out-of-range digits (untrusted input) are computed, never panic.
	v := make([]int32, NumInputs)
	for i := range v {
		v[i] = -1 << 31
	}
	if err := q.PredictBatch(v, make([]int32, 1)); err != nil {
		t.Fatal(err)
	}
}
