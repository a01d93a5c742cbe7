package adapt

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/router"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// scripted is a test double: a real MLP for Freeze/Evaluate whose Adapt
// reports scripted losses and trains nothing.
type scripted struct {
	*model.MLP
	losses []float64
	i      int
}

func (s *scripted) Adapt([]model.Sample) (float64, error) {
	l := s.losses[s.i%len(s.losses)]
	s.i++
	return l, nil
}

type recorder struct {
	at  []time.Duration
	now func() time.Duration
}

func (r *recorder) Install(*snapshot.Snapshot) (uint64, error) {
	r.at = append(r.at, r.now())
	return uint64(len(r.at)), nil
}

type clock struct{ t time.Duration }

func (c *clock) now() time.Duration { return c.t }

// shifted is y = sin(w·x) with a phase that the environment changes.
func batch(r *rand.Rand, n int, phase float64) []model.Sample {
	b := make([]model.Sample, n)
	for i := range b {
		x := []float32{float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1)}
		y := math.Sin(2*float64(x[0])+phase) * 0.5 * (1 + float64(x[1]))
		b[i] = model.Sample{X: x, Y: []float32{float32(y)}}
	}
	return b
}

func inputsOf(b []model.Sample) [][]float32 {
	xs := make([][]float32, len(b))
	for i, s := range b {
		xs[i] = s.X
	}
	return xs
}

func TestStabilityWindow(t *testing.T) {
	m, _ := model.NewMLP([]int{2, 4, 1}, []model.Activation{model.ReLU, model.Identity}, 1)
	var clk clock
	rec := &recorder{now: clk.now}
	sm := &scripted{MLP: m, losses: []float64{1, 1.5, 0.6, 1.2}}
	a, err := New(sm, rec, Config{Window: 4, StabilityFraction: 0.2, Smoothing: 1, FidelityThreshold: 1e-9, MinInstallInterval: 1, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	if _, err := a.Observe(batch(r, 4, 0)); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("observe before bootstrap: %v", err)
	}
	if _, err := a.Bootstrap(inputsOf(batch(r, 64, 0))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		d, err := a.Observe(batch(r, 4, 0))
		if err != nil {
			t.Fatal(err)
		}
		if d.Stable || d.Installed || d.Reason != ReasonUnstable {
			t.Fatalf("batch %d: fluctuating losses judged %+v", i, d)
		}
	}
	sm.losses = []float64{1, 1.05, 0.97, 1.02}
	sm.i = 0
	var last Decision
	for i := 0; i < 4; i++ {
		last, _ = a.Observe(batch(r, 4, 0))
	}
	if !last.Stable || math.Abs(last.Variation-0.08/1.01) > 1e-9 {
		t.Fatalf("flat losses judged %+v", last)
	}
}

// TestInstallRules drives a real model through a distribution shift with a
// fake clock and checks every install decision against the rules.
func TestInstallRules(t *testing.T) {
	m, _ := model.NewMLP([]int{2, 12, 8, 1}, []model.Activation{model.Tanh, model.Tanh, model.Identity}, 2)
	m.LearningRate = 1e-2
	r := rand.New(rand.NewPCG(2, 2))
	if _, err := m.Train(batch(r, 512, 0), 40, 32, 1); err != nil {
		t.Fatal(err)
	}
	var clk clock
	rec := &recorder{now: clk.now}
	const interval = 50 * time.Millisecond
	m.LearningRate = 3e-3
	cfg := Config{Window: 6, StabilityFraction: 0.3, FidelityThreshold: 0.05, MinInstallInterval: interval, RecentInputs: 128, Now: clk.now}
	a, err := New(m, rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bootstrap(inputsOf(batch(r, 256, 0))); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	phase := 0.0
	for i := 0; i < 250; i++ {
		if i == 100 {
			phase = 1.5 // the environment changes
		}
		clk.t += 5 * time.Millisecond
		d, err := a.Observe(batch(r, 16, phase))
		if err != nil {
			t.Fatal(err)
		}
		reasons[d.Reason]++
		if d.Installed {
			if !d.Stable || !(d.Fidelity > cfg.FidelityThreshold) {
				t.Fatalf("batch %d installed against the rules: %+v", i, d)
			}
			if i < 100 {
				t.Fatalf("batch %d: installed before the shift (fidelity %v)", i, d.Fidelity)
			}
		}
	}
	t.Logf("decisions: %v, installs at %v", reasons, rec.at)
	if len(rec.at) < 3 {
		t.Fatalf("only %d installs after the shift", len(rec.at))
	}
	for i := 1; i < len(rec.at); i++ {
		if rec.at[i]-rec.at[i-1] < interval {
			t.Fatalf("installs %v and %v closer than %v", rec.at[i-1], rec.at[i], interval)
		}
	}
	if reasons[ReasonFaithful] == 0 || reasons[ReasonRateLimited] == 0 {
		t.Fatalf("expected both faithful and rate-limited decisions: %v", reasons)
	}
}

// TestAdaptationImprovesServedModel installs through a real Router and
// checks that after a shift the served snapshot's error on the new
// environment drops well below the bootstrap snapshot's.
func TestAdaptationImprovesServedModel(t *testing.T) {
	m, _ := model.NewMLP([]int{2, 16, 1}, []model.Activation{model.Sigmoid, model.Identity}, 3)
	m.LearningRate = 1e-2
	r := rand.New(rand.NewPCG(3, 3))
	if _, err := m.Train(batch(r, 512, 0), 30, 32, 1); err != nil {
		t.Fatal(err)
	}
	rt, _ := router.New(router.Config{InputDim: 2, OutputDim: 1})
	var clk clock
	a, err := New(m, rt, Config{FidelityThreshold: 0.02, MinInstallInterval: 5 * time.Millisecond, RecentInputs: 128, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bootstrap(inputsOf(batch(r, 256, 0))); err != nil {
		t.Fatal(err)
	}
	test := batch(rand.New(rand.NewPCG(4, 4)), 500, 2)
	served := func() float64 {
		out := make([]float32, 1)
		var sum float64
		for _, s := range test {
			if _, err := rt.Query(0, s.X, out); err != nil {
				t.Fatal(err)
			}
			sum += math.Abs(float64(out[0] - s.Y[0]))
		}
		return sum / float64(len(test))
	}
	before := served()
	for i := 0; i < 300; i++ {
		clk.t += time.Millisecond
		if _, err := a.Observe(batch(r, 16, 2)); err != nil {
			t.Fatal(err)
		}
	}
	after := served()
	t.Logf("served mean abs error on the new environment: %.4f -> %.4f (active v%d)", before, after, rt.Active())
	if !(after < before/2) || rt.Active() < 2 {
		t.Fatalf("adaptation did not improve the served model: %.4f -> %.4f", before, after)
	}
}

func TestConfigValidation(t *testing.T) {
	m, _ := model.NewMLP([]int{2, 1}, []model.Activation{model.Identity}, 1)
	rec := &recorder{now: func() time.Duration { return 0 }}
	if _, err := New(m, rec, Config{}); err == nil {
		t.Error("missing fidelity threshold accepted")
	}
	if _, err := New(m, rec, Config{FidelityThreshold: 0.1, Window: 1}); err == nil {
		t.Error("window 1 accepted")
	}
	if _, err := New(nil, rec, Config{FidelityThreshold: 0.1}); err == nil {
		t.Error("nil model accepted")
	}
	a, _ := New(m, rec, Config{FidelityThreshold: 0.1})
	_, _ = a.Bootstrap([][]float32{{1, 2}})
	if _, err := a.Observe(nil); err == nil {
		t.Error("empty batch accepted")
	}
	if _, err := a.Observe([]model.Sample{{X: []float32{1}, Y: []float32{1}}}); err == nil {
		t.Error("short sample accepted")
	}
}

// TestMaxStaleOverridesStability: with losses that never settle, no
// install happens unless MaxStale is set, and then installs happen only
// once the snapshot is older than MaxStale (and fidelity is exceeded).
func TestMaxStaleOverridesStability(t *testing.T) {
	for _, stale := range []time.Duration{0, 100 * time.Millisecond} {
		m, _ := model.NewMLP([]int{2, 4, 1}, []model.Activation{model.ReLU, model.Identity}, 1)
		var clk clock
		rec := &recorder{now: clk.now}
		sm := &scripted{MLP: m, losses: []float64{1, 3, 0.5, 2}}
		a, err := New(sm, rec, Config{Window: 4, Smoothing: 1, FidelityThreshold: 1e-9, MinInstallInterval: time.Millisecond, MaxStale: stale, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 5))
		if _, err := a.Bootstrap(inputsOf(batch(r, 32, 0))); err != nil {
			t.Fatal(err)
		}
		// Make the float model differ from the installed snapshot.
		for i := range m.Layers[1].B {
			m.Layers[1].B[i] += 1
		}
		for i := 0; i < 30; i++ {
			clk.t += 10 * time.Millisecond
			d, err := a.Observe(batch(r, 4, 0))
			if err != nil {
				t.Fatal(err)
			}
			if d.Stable {
				t.Fatalf("scripted losses judged stable: %+v", d)
			}
			if d.Installed && (stale == 0 || d.Reason != ReasonStale) {
				t.Fatalf("stale=%v: unexpected install %+v", stale, d)
			}
		}
		switch {
		case stale == 0 && len(rec.at) != 1:
			t.Fatalf("without MaxStale: %d installs, want only the bootstrap", len(rec.at))
		case stale > 0 && len(rec.at) < 2:
			t.Fatalf("with MaxStale: %d installs", len(rec.at))
		}
		for i := 1; i < len(rec.at); i++ {
			if rec.at[i]-rec.at[i-1] <= stale {
				t.Fatalf("installs at %v and %v within MaxStale %v", rec.at[i-1], rec.at[i], stale)
			}
		}
	}
}
