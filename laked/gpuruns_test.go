package laked_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

// regBackend is a GPU backend for the model path that records the host
// ranges laked registers with it (cuMemHostRegister, faked), or refuses
// them.
type regBackend struct {
	backend.Backend
	fail bool

	mu   sync.Mutex
	regs map[*byte]int
}

func newRegBackend(fail bool) *regBackend {
	return &regBackend{Backend: cpu.New(backend.Limits{}), fail: fail, regs: map[*byte]int{}}
}

func (r *regBackend) RegisterHost(mem []byte) (func() error, error) {
	if r.fail {
		return nil, errors.New("cuMemHostRegister: out of locked memory (fake)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.regs[&mem[0]] = len(mem)
	return func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.regs, &mem[0])
		return nil
	}, nil
}

// registered reports whether b lies wholly inside a registered range.
func (r *regBackend) registered(b []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for base, n := range r.regs {
		q := uintptr(unsafe.Pointer(base))
		if p >= q && p+uintptr(len(b)) <= q+uintptr(n) {
			return true
		}
	}
	return false
}

// runsRecorder is a GPU runs path that computes with the CPU model and
// records where its runs lay.
type runsRecorder struct {
	base laked.Model
	be   *regBackend
	fail atomic.Bool

	mu                  sync.Mutex
	calls               int
	inRuns, outRuns     int
	inInside, outInside int
}

func (g *runsRecorder) run(ins, outs [][]byte, n int) error {
	g.mu.Lock()
	g.calls++
	for _, r := range ins {
		g.inRuns++
		if g.be.registered(r) {
			g.inInside++
		}
	}
	for _, r := range outs {
		g.outRuns++
		if g.be.registered(r) {
			g.outInside++
		}
	}
	g.mu.Unlock()
	if g.fail.Load() {
		return errors.New("GPU lost (fake)")
	}
	info := g.base.Info()
	in := make([]byte, 0, n*info.InputBytes)
	for _, r := range ins {
		in = append(in, r...)
	}
	out := make([]byte, n*info.OutputBytes)
	if err := g.base.Predict(in, out, n); err != nil {
		return err
	}
	for _, r := range outs {
		out = out[copy(r, out):]
	}
	return nil
}

func (g *runsRecorder) counts() (calls, inRuns, outRuns, inInside, outInside int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, g.inRuns, g.outRuns, g.inInside, g.outInside
}

// runsServer serves the demo MLP (8 -> 16 -> 2) as model 7 with g as its
// GPU runs path, every batch placed on the GPU, with be as the GPU
// backend.
func runsServer(t *testing.T, be *regBackend, model laked.Model) (*laked.Server, string) {
	t.Helper()
	srv, sock := startServer(t, laked.Config{MaxWait: time.Millisecond, MaxBatch: 16, GPU: be})
	srv.SetPlacer(laked.PlacerFunc(func(laked.BatchInfo) bool { return true }))
	if err := srv.RegisterModel(7, model); err != nil {
		t.Fatal(err)
	}
	return srv, sock
}

// predictAll sends requests of sizes ns and checks every answer against
// the CPU model.
func predictAll(t *testing.T, sock string, base laked.Model, ns []int) int {
	t.Helper()
	c := dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	total := 0
	for k, n := range ns {
		in := make([]byte, n*32)
		for i := range in {
			in[i] = byte(i*7 + k)
		}
		for i := 3; i < len(in); i += 4 {
			in[i] = 0x3f // finite floats
		}
		want := make([]byte, n*8)
		if err := base.Predict(in, want, n); err != nil {
			t.Fatal(err)
		}
		out := make([]byte, n*8)
		if _, err := c.Predict(ctx, 7, n, in, out); err != nil {
			t.Fatal(err)
		}
		if string(out) != string(want) {
			t.Fatalf("request %d (%d items): wrong outputs", k, n)
		}
		total += n
	}
	return total
}

// TestGPURunsFromRegisteredArena: with the client's region registered
// with the GPU backend, a GPU batch gets its inputs and writes its
// outputs as runs inside the client's registered region (no staging in
// laked): one input and one output run per request, split only at
// batch.max_size; a request larger than it runs in pieces (one per
// batch, each from its offset in the arena). Answers are
// the CPU model's, and the items are counted as direct.
func TestGPURunsFromRegisteredArena(t *testing.T) {
	base, err := laked.NewMLPModel("mlp", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	be := newRegBackend(false)
	g := &runsRecorder{base: base, be: be}
	srv, sock := runsServer(t, be, laked.WithGPURuns(base, g.run))
	ns := []int{1, 5, 16, 40, 3}
	total := predictAll(t, sock, base, ns)
	calls, inRuns, outRuns, inInside, outInside := g.counts()
	// 40 items at max_size 16: 3 pieces, 3 calls; the others one each.
	if calls != len(ns)+2 || inRuns != calls || outRuns != calls {
		t.Fatalf("%d calls with %d input and %d output runs, want %d each", calls, inRuns, outRuns, len(ns)+2)
	}
	if inInside != inRuns || outInside != outRuns {
		t.Fatalf("%d of %d input and %d of %d output runs in the registered region", inInside, inRuns, outInside, outRuns)
	}
	st := srv.Stats()
	if st.GPUDirectItems != uint64(total) || st.GPUStagedItems != 0 || st.GPUFallbacks != 0 {
		t.Fatalf("direct %d staged %d fallbacks %d, want %d direct", st.GPUDirectItems, st.GPUStagedItems, st.GPUFallbacks, total)
	}
	// The GPU path fails: each batch (the 4 items; each of the two
	// pieces of the 20) runs on the CPU, from inputs read out of the
	// arena then, with the right answers.
	g.fail.Store(true)
	predictAll(t, sock, base, []int{4, 20})
	if c, _, _, _, _ := g.counts(); c != calls+3 {
		t.Fatalf("GPU path called %d times after failing, want 3 (one per batch)", c-calls)
	}
	// Each failed GPU batch ran on the CPU: a fallback.
	if st := srv.Stats(); st.GPUFallbacks != 3 {
		t.Fatalf("fallbacks %d after three failed GPU batches", st.GPUFallbacks)
	}
}

// TestGPUFailureNotChargedToCPU: a GPU batch that fails slowly (a launch
// timeout) and then runs on the CPU charges the CPU's per-item cost (the
// placer's BatchInfo.CPUPerItem, laked's deadline estimate) with the CPU
// run alone, not with the failed GPU attempt.
func TestGPUFailureNotChargedToCPU(t *testing.T) {
	base, err := laked.NewMLPModel("mlp", laked.DemoMLPBlob(3, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	const stall = 300 * time.Millisecond
	slowFail := func(ins, outs [][]byte, n int) error {
		time.Sleep(stall)
		return errors.New("CUDA_ERROR_LAUNCH_TIMEOUT (fake)")
	}
	be := newRegBackend(false)
	srv, sock := runsServer(t, be, laked.WithGPURuns(base, slowFail))
	var mu sync.Mutex
	var seen []time.Duration
	srv.SetPlacer(laked.PlacerFunc(func(bi laked.BatchInfo) bool {
		mu.Lock()
		seen = append(seen, bi.CPUPerItem)
		mu.Unlock()
		return true
	}))
	predictAll(t, sock, base, []int{2, 2, 2})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 {
		t.Fatalf("%d placements", len(seen))
	}
	// After two batches of 2 items each taking stall on the GPU first, a
	// CPU cost that included it would be ~stall/2 per item.
	if last := seen[len(seen)-1]; last <= 0 || last > stall/20 {
		t.Fatalf("CPU per-item cost %v after failed GPU attempts of %v", last, stall)
	}
	if st := srv.Stats(); st.GPUFallbacks != 3 {
		t.Fatalf("fallbacks %d", st.GPUFallbacks)
	}
}

// TestGPURunsStagedWithoutRegistration: when the GPU backend refuses to
// register a client's region, that client's GPU batches are staged
// through laked's buffers (the runs lie outside any registered memory)
// with the right answers, and counted as staged; so is a GPU path
// without runs (WithGPU).
func TestGPURunsStagedWithoutRegistration(t *testing.T) {
	base, err := laked.NewMLPModel("mlp", laked.DemoMLPBlob(2, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	be := newRegBackend(true)
	g := &runsRecorder{base: base, be: be}
	srv, sock := runsServer(t, be, laked.WithGPURuns(base, g.run))
	total := predictAll(t, sock, base, []int{1, 7, 33})
	_, inRuns, outRuns, inInside, outInside := g.counts()
	if inRuns == 0 || inInside != 0 || outInside != 0 {
		t.Fatalf("%d/%d input and %d/%d output runs in registered memory without a registration", inInside, inRuns, outInside, outRuns)
	}
	if st := srv.Stats(); st.GPUStagedItems != uint64(total) || st.GPUDirectItems != 0 {
		t.Fatalf("staged %d direct %d, want %d staged", st.GPUStagedItems, st.GPUDirectItems, total)
	}

	be2 := newRegBackend(false)
	var calls atomic.Int32
	plain := laked.WithGPU(base, func(in, out []byte, n int) error { calls.Add(1); return base.Predict(in, out, n) })
	srv2, sock2 := runsServer(t, be2, plain)
	total = predictAll(t, sock2, base, []int{2, 9})
	if st := srv2.Stats(); calls.Load() == 0 || st.GPUStagedItems != uint64(total) || st.GPUDirectItems != 0 {
		t.Fatalf("GPU path without runs: %d calls, staged %d direct %d", calls.Load(), st.GPUStagedItems, st.GPUDirectItems)
	}
}
