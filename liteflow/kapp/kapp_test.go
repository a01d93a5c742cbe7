package kapp

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/liteflow/adapt"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
	"github.com/lakeos/lake/shm"
)

// fakeServer records what an App serves.
type fakeServer struct {
	mu      sync.Mutex
	models  map[uint32]laked.Model
	version uint64
	images  [][]byte
}

func (f *fakeServer) RegisterModel(id uint32, m laked.Model) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.models[id] != nil {
		return errors.New("exists")
	}
	f.models[id] = m
	f.version = 1
	return f.keep(m)
}

func (f *fakeServer) ReplaceModel(id uint32, m laked.Model) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.models[id] == nil {
		return 0, laked.ErrModelNotFound
	}
	f.models[id] = m
	f.version++
	return f.version, f.keep(m)
}

func (f *fakeServer) keep(m laked.Model) error {
	kind, img, err := m.(laked.ImageExporter).Image()
	if err != nil {
		return err
	}
	if kind != laked.ImageLiteFlow {
		return errors.New("kind " + kind)
	}
	f.images = append(f.images, img)
	return nil
}

func testSnapshot(t *testing.T, seed uint64) (*snapshot.Snapshot, *model.MLP) {
	t.Helper()
	m, err := model.NewMLP([]int{3, 8, 1}, []model.Activation{model.Tanh, model.Identity}, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 2))
	calib := make([][]float32, 64)
	for i := range calib {
		calib[i] = []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
	}
	s, err := quant.Quantize(m.Freeze(), calib, quant.Options{PerChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

// TestFloatModelComputesTheSnapshot: the float model recovered from a
// snapshot agrees with the snapshot to within its quantization.
func TestFloatModelComputesTheSnapshot(t *testing.T) {
	s, _ := testSnapshot(t, 1)
	m, err := FloatModel(s)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 3))
	out1, out2 := make([]float32, 1), make([]float32, 1)
	step := float64(s.Output().Scale)
	for i := 0; i < 200; i++ {
		// inside the calibrated range: outside it the snapshot saturates
		x := []float32{float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1)}
		if err := s.Run(x, out1); err != nil {
			t.Fatal(err)
		}
		if err := m.Evaluate(x, out2); err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(float64(out1[0] - out2[0])); d > 4*step+0.02 {
			t.Fatalf("x %v: snapshot %v, its float model %v (step %v)", x, out1[0], out2[0], step)
		}
	}
}

func TestLoadFile(t *testing.T) {
	s, _ := testSnapshot(t, 2)
	b, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.lksn"), filepath.Join(dir, "bad.lksn")
	os.WriteFile(good, b, 0o644)
	b[60] ^= 1
	os.WriteFile(bad, b, 0o644)
	if got, err := LoadFile(good); err != nil || got.InputDim() != 3 {
		t.Fatalf("good file: %v", err)
	}
	if _, err := LoadFile(bad); !errors.Is(err, snapshot.ErrInvalid) {
		t.Fatalf("corrupt file: %v, want ErrInvalid", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file loaded")
	}
}

// newRegistry creates a feature registry of cfg in anonymous shared
// memory, unmapped when the test ends.
func newRegistry(t *testing.T, cfg features.Config) *features.Registry {
	t.Helper()
	mem, err := shm.NewAnonymous(uint64(features.SizeFor(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	reg, err := features.Create(mem.Mem, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestAppAdaptsFromKernelSamples records samples of a changed target in
// the registry, as the kernel app does; the app must learn it and ship new
// snapshots (each a new image of the served model), skipping non-finite
// samples.
func TestAppAdaptsFromKernelSamples(t *testing.T) {
	app, srv, put := sampledApp(t)
	if len(srv.images) != 1 {
		t.Fatalf("%d images served at start, want 1", len(srv.images))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 60; round++ {
		for k := 0; k < 64; k++ {
			x := []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
			put(x, target(x))
		}
		put([]float32{float32(math.NaN()), 0, 0}, 1)
		if _, err := app.Step(); err != nil {
			t.Fatal(err)
		}
	}
	st := app.Status()
	if st.Rejected != 60 || st.Samples != 60*65 || st.Batches == 0 {
		t.Fatalf("status %+v", st)
	}
	if len(srv.images) < 3 {
		t.Fatalf("only %d images served; last reason %q", len(srv.images), st.LastReason)
	}
	// the last served snapshot has learned the target
	last, err := snapshot.Decode(srv.images[len(srv.images)-1])
	if err != nil {
		t.Fatal(err)
	}
	var errSum float64
	out := make([]float32, 1)
	for k := 0; k < 200; k++ {
		x := []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
		last.Run(x, out)
		errSum += math.Abs(float64(out[0] - target(x)))
	}
	if mae := errSum / 200; mae > 0.25 {
		t.Fatalf("served snapshot's error on the new target %.3f (installs %d, reason %q)", mae, len(srv.images), st.LastReason)
	}
}

// TestAppBatchesAcrossDrains: a kernel app records a few samples per
// interval; they are kept until a batch is full, never dropped.
func TestAppBatchesAcrossDrains(t *testing.T) {
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 8, MaxHistory: 256, ArenaBytes: 1 << 18}
	reg := newRegistry(t, cfg)
	s, _ := testSnapshot(t, 4)
	app, err := NewApp(&fakeServer{models: map[uint32]laked.Model{}}, reg, Config{Name: "few", Model: 3, Snapshot: s, Batch: 32,
		Adapt: adapt.Config{FidelityThreshold: 0.05}})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := reg.Lookup(SchemaName("few"))
	info, _ := reg.Schema(id)
	rec := info.NewRecord()
	for step := 0; step < 20; step++ {
		for k := 0; k < 5; k++ {
			info.SetFloat(rec, 0, 0, float64(k))
			if err := reg.Record(id, 1, rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := app.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if st := app.Status(); st.Samples != 100 || st.Batches != 3 || len(app.pending) != 4 {
		t.Fatalf("100 samples in 20 drains: %d samples, %d batches, %d pending; want 100, 3, 4", st.Samples, st.Batches, len(app.pending))
	}
}

// target is what the kernel samples of sampledApp's tests follow: a
// function the starting snapshot does not know.
func target(x []float32) float32 { return 0.8*x[0] - 0.5*x[1] + 0.3 }

// sampledApp is an app "test" (model 3, batches of 32, adapting quickly)
// over a new registry, starting from testSnapshot 3; put records one
// kernel sample (features x, label y) in its schema.
func sampledApp(t *testing.T) (*App, *fakeServer, func(x []float32, y float32)) {
	t.Helper()
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 64, MaxHistory: 1024, ArenaBytes: 1 << 18}
	reg := newRegistry(t, cfg)
	s, _ := testSnapshot(t, 3)
	srv := &fakeServer{models: map[uint32]laked.Model{}}
	var now float64
	app, err := NewApp(srv, reg, Config{Name: "test", Model: 3, Snapshot: s, Batch: 32,
		Adapt: adapt.Config{FidelityThreshold: 0.05, Window: 4, StabilityFraction: 0.5, Steps: 4, MaxStale: 1,
			Now: func() (d time.Duration) { now += 1e9; return time.Duration(now) }}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Lookup(SchemaName("test"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := reg.Schema(id)
	rec := info.NewRecord()
	put := func(x []float32, y float32) {
		t.Helper()
		for i, v := range x {
			info.SetFloat(rec, 0, i, float64(v))
		}
		info.SetFloat(rec, 1, 0, float64(y))
		if err := reg.Record(id, 1, rec); err != nil {
			t.Fatal(err)
		}
	}
	return app, srv, put
}

// adaptingApp is a sampledApp whose kernel samples follow target; feed
// records rounds of 64 samples and steps.
func adaptingApp(t *testing.T) (*App, *fakeServer, func(rounds int)) {
	t.Helper()
	app, srv, put := sampledApp(t)
	r := rand.New(rand.NewPCG(3, 4))
	feed := func(rounds int) {
		for round := 0; round < rounds; round++ {
			for k := 0; k < 64; k++ {
				x := []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
				put(x, target(x))
			}
			if _, err := app.Step(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return app, srv, feed
}

// TestAppTraceShowsRecovery: the trace measures, per batch, the served
// snapshot's and the initial snapshot's error on the batch's labels; as
// the app adapts to a target the initial snapshot does not know, the
// served error falls well below the initial one, which stays put.
func TestAppTraceShowsRecovery(t *testing.T) {
	app, _, feed := adaptingApp(t)
	feed(40)
	tr := app.Status().Trace
	if len(tr) != 80 {
		t.Fatalf("%d trace points for 80 batches", len(tr))
	}
	first, last := tr[0], tr[len(tr)-1]
	if first.Served != first.Fixed {
		t.Fatalf("first batch: served %v, initial %v: the initial snapshot was served, they must be equal", first.Served, first.Fixed)
	}
	var served, fixed float64
	for _, p := range tr[len(tr)-10:] {
		served += p.Served
		fixed += p.Fixed
	}
	if served > 0.5*fixed || last.Generation == first.Generation {
		t.Fatalf("last 10 batches: served error %.3f, initial %.3f (generation %d -> %d): no recovery", served/10, fixed/10, first.Generation, last.Generation)
	}
}

// TestAppPinnedByHand: a snapshot loaded by hand is served and pins the
// app; the adapter keeps training but ships nothing until Unpin, which
// ships its latest snapshot; a restart begins again from the loaded one.
func TestAppPinnedByHand(t *testing.T) {
	app, srv, feed := adaptingApp(t)
	feed(5)
	hand, _ := testSnapshot(t, 9)
	hand.Generation = 777
	bad, err := quant.Quantize(mustMLP(t, []int{2, 1}), [][]float32{{1, 2}}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Load(bad); !errors.Is(err, ErrShape) {
		t.Fatalf("a 2 -> 1 snapshot for a 3 -> 1 app: %v", err)
	}
	if err := app.Unpin(false); err == nil {
		t.Fatal("unpinning an app that is not pinned succeeded")
	}
	if err := app.Load(hand); err != nil {
		t.Fatal(err)
	}
	n := len(srv.images)
	if got, _ := snapshot.Decode(srv.images[n-1]); got == nil || got.Generation != 777 {
		t.Fatal("the snapshot loaded by hand is not what is served")
	}
	batches := app.Status().Batches
	feed(20)
	st := app.Status()
	if len(srv.images) != n || !st.Pinned || st.Withheld == 0 || st.Batches < batches+40 {
		t.Fatalf("pinned: %d images served (want %d), pinned %v, withheld %d, batches %d -> %d",
			len(srv.images), n, st.Pinned, st.Withheld, batches, st.Batches)
	}
	if last := st.Trace[len(st.Trace)-1]; last.Generation != 777 {
		t.Fatalf("pinned: the trace measures generation %d, want the loaded 777", last.Generation)
	}
	if err := app.Unpin(false); err != nil {
		t.Fatal(err)
	}
	st = app.Status()
	if len(srv.images) != n+1 || st.Pinned || st.Withheld != 0 || st.Installs[len(st.Installs)-1].Reason != "shipped on unpin" {
		t.Fatalf("after unpin: %d images (want %d), status %+v", len(srv.images), n+1, st.Installs[len(st.Installs)-1])
	}
	// pin again, restart from the loaded snapshot: the next batch
	// bootstraps a snapshot of its float model
	if err := app.Load(hand); err != nil {
		t.Fatal(err)
	}
	if err := app.Unpin(true); err != nil {
		t.Fatal(err)
	}
	n = len(srv.images)
	feed(1)
	if len(srv.images) <= n {
		t.Fatal("restart: nothing served after the next batch")
	}
	boot, err := snapshot.Decode(srv.images[n])
	if err != nil || boot.Generation != 1 {
		t.Fatalf("restart: first snapshot after it has generation %v (%v), want 1 (a new adapter)", boot, err)
	}
}

func mustMLP(t *testing.T, sizes []int) *model.MLP {
	t.Helper()
	acts := make([]model.Activation, len(sizes)-1)
	m, err := model.NewMLP(sizes, acts, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
