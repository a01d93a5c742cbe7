package adapt

import (
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/shm"
)

func newSampleRegistry(t *testing.T, history int) (*features.Registry, features.SchemaID, *features.SchemaInfo) {
	t.Helper()
	cfg := features.Config{MaxSchemas: 2, MaxKeys: 4, MaxHistory: history, ArenaBytes: 1 << 16}
	m, err := shm.NewAnonymous(uint64(features.SizeFor(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r, err := features.Create(m.Mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Register(features.Schema{Name: "cc.samples", History: history, MaxKeys: 2,
		Fields: []features.Field{{Name: "x", Type: features.F32, Count: 2}, {Name: "y", Type: features.F32, Count: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Schema(id)
	if err != nil {
		t.Fatal(err)
	}
	return r, id, s
}

func recordSample(t *testing.T, r *features.Registry, id features.SchemaID, s *features.SchemaInfo, x0, x1, y float64) {
	t.Helper()
	rec := s.NewRecord()
	for _, v := range []struct {
		f, e int
		v    float64
	}{{0, 0, x0}, {0, 1, x1}, {1, 0, y}} {
		if err := s.SetFloat(rec, v.f, v.e, v.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Record(id, 1, rec); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryFeedDeliversAndCountsDrops checks that samples recorded in
// the feature registry reach the adapter exactly once, in order, and that
// samples overwritten before a drain are counted.
func TestRegistryFeedDeliversAndCountsDrops(t *testing.T) {
	r, id, s := newSampleRegistry(t, 16)
	feed, err := NewRegistryFeed(r, id, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		recordSample(t, r, id, s, float64(i), -float64(i), float64(2*i))
	}
	got, err := feed.Next(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || feed.Dropped != 0 {
		t.Fatalf("got %d samples, %d dropped; want 10, 0", len(got), feed.Dropped)
	}
	for i, sm := range got {
		if sm.X[0] != float32(i) || sm.X[1] != -float32(i) || sm.Y[0] != float32(2*i) {
			t.Fatalf("sample %d: %+v", i, sm)
		}
	}
	// 40 more into a history of 16 without draining: 24 are lost, and
	// the feed says so.
	for i := 0; i < 40; i++ {
		recordSample(t, r, id, s, 1, 1, 1)
	}
	got, err = feed.Next(100)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(got))+feed.Dropped != 40 || feed.Dropped == 0 {
		t.Fatalf("after overflow: %d delivered + %d dropped, want 40 with some dropped", len(got), feed.Dropped)
	}
	if _, err := NewRegistryFeed(r, id, 3, 1); err == nil {
		t.Fatal("feed accepted a schema of the wrong width")
	}
}

// TestAdapterLearnsFromRegistry records a changing environment into the
// registry and feeds the adapter from it: the model's loss falls and a
// snapshot is installed.
func TestAdapterLearnsFromRegistry(t *testing.T) {
	r, id, s := newSampleRegistry(t, 256)
	feed, err := NewRegistryFeed(r, id, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := model.NewMLP([]int{2, 12, 1}, []model.Activation{model.Tanh, model.Identity}, 5)
	m.LearningRate = 2e-2
	var clk clock
	rec := &recorder{now: clk.now}
	a, err := New(m, rec, Config{FidelityThreshold: 0.02, MinInstallInterval: time.Millisecond, Steps: 4, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(9))
	calib := make([][]float32, 64)
	for i := range calib {
		calib[i] = []float32{rng.Float32()*2 - 1, rng.Float32()*2 - 1}
	}
	if _, err := a.Bootstrap(calib); err != nil {
		t.Fatal(err)
	}
	var first, last float64
	for round := 0; round < 120; round++ {
		for i := 0; i < 64; i++ {
			x0, x1 := rng.Float64()*2-1, rng.Float64()*2-1
			recordSample(t, r, id, s, x0, x1, math.Sin(1.5*x0-x1))
		}
		batch, err := feed.Next(256)
		if err != nil {
			t.Fatal(err)
		}
		clk.t += 10 * time.Millisecond
		d, err := a.Observe(batch)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = d.Loss
		}
		last = d.Loss
	}
	if !(last < first/2) {
		t.Fatalf("loss did not fall: first %.4f last %.4f", first, last)
	}
	if len(rec.at) < 2 { // the bootstrap install and at least one adaptation
		t.Fatalf("%d installs", len(rec.at))
	}
}
