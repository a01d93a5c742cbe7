package router

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

const inDim, outDim = 4, 2

func snap(t testing.TB, seed uint64, act model.Activation) *snapshot.Snapshot {
	t.Helper()
	m, err := model.NewMLP([]int{inDim, 8, outDim}, []model.Activation{act, model.Identity}, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 3))
	calib := make([][]float32, 64)
	for i := range calib {
		calib[i] = []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
	}
	s, err := quant.Quantize(m, calib, quant.Options{PerChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Duration      { return time.Duration(c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func inputs(n int) [][]float32 {
	r := rand.New(rand.NewPCG(9, 9))
	xs := make([][]float32, n)
	for i := range xs {
		xs[i] = []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
	}
	return xs
}

func expected(t testing.TB, s *snapshot.Snapshot, xs [][]float32) [][outDim]float32 {
	out := make([][outDim]float32, len(xs))
	for i, x := range xs {
		if err := s.Run(x, out[i][:]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestInstallUnderConcurrentLoad is the acceptance test: while
// queries run concurrently (with and without flows), 1000 installs
// alternate two models. Every answer must equal exactly the answer of the
// model whose version was returned (odd versions are model A, even B), so a
// query that read a half-written or recycled snapshot would fail; every
// query of a flow must see the flow's first version.
func TestInstallUnderConcurrentLoad(t *testing.T) {
	a, b := snap(t, 1, model.Tanh), snap(t, 2, model.ReLU)
	xs := inputs(32)
	wantA, wantB := expected(t, a, xs), expected(t, b, xs)
	for i := range xs {
		if wantA[i] == wantB[i] {
			t.Fatalf("models A and B agree on input %d; the test could not tell them apart", i)
		}
	}
	var freed atomic.Uint64
	r, err := New(Config{InputDim: inDim, OutputDim: outDim, FlowCapacity: 1 << 14, FlowTTL: time.Hour,
		OnFree: func(uint64) { freed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Install(a); err != nil {
		t.Fatal(err)
	}
	const installs = 1000
	var stop atomic.Bool
	var wg sync.WaitGroup
	var queries, flowsDone atomic.Int64
	versionsSeen := sync.Map{}
	check := func(i int, v uint64, out []float32) bool {
		want := wantB[i]
		if v%2 == 1 {
			want = wantA[i]
		}
		return out[0] == want[0] && out[1] == want[1]
	}
	errc := make(chan string, 8)
	fail := func(msg string) {
		select {
		case errc <- msg:
		default:
		}
		stop.Store(true)
	}
	// Flowless queriers.
	for g := 0; g < 1; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			out := make([]float32, outDim)
			for n := 0; !stop.Load(); n++ {
				i := (n + g) % len(xs)
				v, err := r.Query(0, xs[i], out)
				if err != nil {
					fail(err.Error())
					return
				}
				if !check(i, v, out) {
					fail("flowless answer matches neither model for its version")
					return
				}
				versionsSeen.Store(v, true)
				queries.Add(1)
				if n%64 == 0 {
					runtime.Gosched() // let the installer run on a small machine
				}
			}
		}(g)
	}
	// Flow queriers: flows of 20 queries each.
	for g := 0; g < 1; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			out := make([]float32, outDim)
			for f := uint64(1); !stop.Load(); f++ {
				id := uint64(g)<<40 | f
				var first uint64
				for q := 0; q < 20; q++ {
					i := (int(f) + q) % len(xs)
					v, err := r.Query(id, xs[i], out)
					if err != nil {
						fail(err.Error())
						return
					}
					if q == 0 {
						first = v
					} else if v != first {
						fail("a flow changed snapshot mid-flow")
						return
					}
					if !check(i, v, out) {
						fail("flow answer matches neither model for its version")
						return
					}
					queries.Add(1)
				}
				r.EndFlow(id)
				flowsDone.Add(1)
			}
		}(g)
	}
	for n := 0; n < installs && !stop.Load(); n++ {
		s := b
		if n%2 == 1 {
			s = a
		}
		if _, err := r.Install(s); err != nil {
			t.Fatal(err)
		}
		if n%10 == 0 {
			time.Sleep(50 * time.Microsecond) // let queries interleave with installs
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case msg := <-errc:
		t.Fatal(msg)
	default:
	}
	distinct := 0
	versionsSeen.Range(func(any, any) bool { distinct++; return true })
	t.Logf("%d queries, %d flows, %d distinct versions answered flowless queries", queries.Load(), flowsDone.Load(), distinct)
	if distinct < 3 || flowsDone.Load() == 0 {
		t.Fatalf("queries did not overlap installs (%d versions, %d flows)", distinct, flowsDone.Load())
	}
	st := r.Stats()
	if st.Installs != installs+1 {
		t.Fatalf("installs %d", st.Installs)
	}
	// Every flow ended, so every snapshot but the active one is freed.
	if st.Flows != 0 || st.Freed != installs || freed.Load() != installs {
		t.Fatalf("leak: %+v, OnFree called %d times, want %d", st, freed.Load(), installs)
	}
	if r.Active() != installs+1 {
		t.Fatalf("active %d", r.Active())
	}
}

// TestQueriesProceedWhileInstallerIsParked parks Install right before and
// right after the flip; queries (old and new flows, flowless) must complete
// while it is parked. A query that waited for Install would deadlock here.
func TestQueriesProceedWhileInstallerIsParked(t *testing.T) {
	a, b := snap(t, 1, model.Tanh), snap(t, 2, model.Sigmoid)
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim})
	if _, err := r.Install(a); err != nil {
		t.Fatal(err)
	}
	x, out := inputs(1)[0], make([]float32, outDim)
	if v, _ := r.Query(5, x, out); v != 1 {
		t.Fatalf("flow 5 started on %d", v)
	}
	for _, phase := range []string{"before", "after"} {
		park, resume := make(chan struct{}), make(chan struct{})
		hook := func() { close(park); <-resume }
		r.beforeFlip, r.afterFlip = nil, nil
		if phase == "before" {
			r.beforeFlip = hook
		} else {
			r.afterFlip = hook
		}
		done := make(chan uint64)
		go func() {
			v, err := r.Install(b)
			if err != nil {
				t.Error(err)
			}
			done <- v
		}()
		<-park
		finished := make(chan [3]uint64)
		go func() {
			out := make([]float32, outDim)
			var vs [3]uint64
			for i := 0; i < 1000; i++ {
				vs[0], _ = r.Query(0, x, out)
				vs[1], _ = r.Query(5, x, out)
				vs[2], _ = r.Query(uint64(100+i), x, out)
			}
			finished <- vs
		}()
		select {
		case vs := <-finished:
			if vs[1] != 1 {
				t.Fatalf("%s flip: pinned flow answered by %d", phase, vs[1])
			}
			t.Logf("%s flip: queries completed with installer parked (versions %v)", phase, vs)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s flip: queries blocked while the installer was parked", phase)
		}
		close(resume)
		<-done
	}
}

func TestFlowPinsSnapshotAndFreesOnlyWhenUnused(t *testing.T) {
	var clk fakeClock
	var freed []uint64
	var mu sync.Mutex
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim, FlowTTL: time.Second, Now: clk.now,
		OnFree: func(v uint64) { mu.Lock(); freed = append(freed, v); mu.Unlock() }})
	x, out := inputs(1)[0], make([]float32, outDim)
	if _, err := r.Query(0, x, out); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("query before install: %v", err)
	}
	s1, s2, s3 := snap(t, 1, model.ReLU), snap(t, 2, model.ReLU), snap(t, 3, model.ReLU)
	mustInstall := func(s *snapshot.Snapshot, want uint64) {
		t.Helper()
		if v, err := r.Install(s); err != nil || v != want {
			t.Fatalf("install = %d, %v; want %d", v, err, want)
		}
	}
	q := func(id uint64) uint64 {
		t.Helper()
		v, err := r.Query(id, x, out)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	freedList := func() []uint64 { mu.Lock(); defer mu.Unlock(); return append([]uint64(nil), freed...) }
	mustInstall(s1, 1)
	if q(7) != 1 {
		t.Fatal("flow 7 not on v1")
	}
	mustInstall(s2, 2)
	if len(freedList()) != 0 {
		t.Fatalf("v1 freed while flow 7 pins it: %v", freedList())
	}
	if q(7) != 1 || q(8) != 2 || q(0) != 2 {
		t.Fatal("flows not routed by pin")
	}
	if !r.EndFlow(7) || r.EndFlow(7) {
		t.Fatal("EndFlow result")
	}
	if f := freedList(); len(f) != 1 || f[0] != 1 {
		t.Fatalf("after EndFlow freed %v, want [1]", f)
	}
	mustInstall(s3, 3)
	if len(freedList()) != 1 {
		t.Fatalf("v2 freed while flow 8 pins it: %v", freedList())
	}
	clk.advance(500 * time.Millisecond)
	if r.Sweep() != 0 || q(8) != 2 {
		t.Fatal("flow 8 expired early")
	}
	clk.advance(1500 * time.Millisecond)
	if n := r.Sweep(); n != 1 {
		t.Fatalf("sweep removed %d", n)
	}
	if f := freedList(); len(f) != 2 || f[1] != 2 {
		t.Fatalf("after sweep freed %v, want [1 2]", f)
	}
	if q(8) != 3 {
		t.Fatal("expired flow did not restart on the active snapshot")
	}
}

func TestFlowCacheCapacityAndLRUEviction(t *testing.T) {
	var clk fakeClock
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim, FlowCapacity: 4, Shards: 1, FlowTTL: time.Hour, Now: clk.now})
	x, out := inputs(1)[0], make([]float32, outDim)
	q := func(id uint64) uint64 {
		t.Helper()
		clk.advance(time.Millisecond)
		v, err := r.Query(id, x, out)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	_, _ = r.Install(snap(t, 1, model.ReLU))
	for id := uint64(1); id <= 4; id++ {
		q(id)
	}
	_, _ = r.Install(snap(t, 2, model.ReLU))
	q(1) // flow 1 is now the most recent; flow 2 is least recently used
	if v := q(5); v != 2 {
		t.Fatalf("new flow on %d", v)
	}
	st := r.Stats()
	if st.Flows != 4 || st.Evictions != 1 || st.NewFlows != 5 {
		t.Fatalf("stats %+v", st)
	}
	if q(1) != 1 || q(3) != 1 || q(4) != 1 {
		t.Fatal("surviving flows lost their pin")
	}
	if q(2) != 2 {
		t.Fatal("evicted flow 2 should restart on the active snapshot")
	}
}

func TestFlowExpiryOnLookup(t *testing.T) {
	var clk fakeClock
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim, FlowTTL: 10 * time.Millisecond, Now: clk.now})
	x, out := inputs(1)[0], make([]float32, outDim)
	_, _ = r.Install(snap(t, 1, model.ReLU))
	_, _ = r.Query(42, x, out)
	_, _ = r.Install(snap(t, 2, model.ReLU))
	clk.advance(9 * time.Millisecond)
	if v, _ := r.Query(42, x, out); v != 1 {
		t.Fatal("flow expired before its TTL")
	}
	clk.advance(10*time.Millisecond + 1)
	if v, _ := r.Query(42, x, out); v != 2 {
		t.Fatal("idle flow did not expire")
	}
	if st := r.Stats(); st.Expirations != 1 || st.Freed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestValidationAndBatch(t *testing.T) {
	if _, err := New(Config{InputDim: 0, OutputDim: 1}); err == nil {
		t.Error("zero input dim accepted")
	}
	if _, err := New(Config{InputDim: 1, OutputDim: 1, FlowCapacity: -1}); err == nil {
		t.Error("negative capacity accepted")
	}
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim})
	if _, err := r.Install(nil); err == nil {
		t.Error("nil snapshot accepted")
	}
	m, _ := model.NewMLP([]int{3, 2}, []model.Activation{model.Identity}, 1)
	wrong, _ := quant.Quantize(m, [][]float32{{1, 2, 3}}, quant.Options{})
	if _, err := r.Install(wrong); !errors.Is(err, ErrShape) {
		t.Errorf("wrong-shape snapshot: %v", err)
	}
	bad := snap(t, 1, model.ReLU)
	bad.Layers[0].Mult[0] = 3
	if _, err := r.Install(bad); !errors.Is(err, snapshot.ErrInvalid) {
		t.Errorf("invalid snapshot: %v", err)
	}
	s := snap(t, 1, model.ReLU)
	if _, err := r.Install(s); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Query(0, make([]float32, 3), make([]float32, outDim)); !errors.Is(err, ErrShape) {
		t.Errorf("short input: %v", err)
	}
	xs := inputs(3)
	flat := append(append(append([]float32{}, xs[0]...), xs[1]...), xs[2]...)
	outs, vers := make([]float32, 3*outDim), make([]uint64, 3)
	if err := r.QueryBatch([]uint64{0, 1, 2}, flat, outs, vers); err != nil {
		t.Fatal(err)
	}
	want := expected(t, s, xs)
	for k := range xs {
		if outs[k*outDim] != want[k][0] || outs[k*outDim+1] != want[k][1] || vers[k] != 1 {
			t.Fatalf("batch row %d = %v v%d, want %v", k, outs[k*outDim:(k+1)*outDim], vers[k], want[k])
		}
	}
	if err := r.QueryBatch([]uint64{0}, flat, outs, vers); !errors.Is(err, ErrShape) {
		t.Errorf("mismatched batch: %v", err)
	}
}

func TestQueryDoesNotAllocate(t *testing.T) {
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim})
	_, _ = r.Install(snap(t, 1, model.Tanh))
	x, out := inputs(1)[0], make([]float32, outDim)
	_, _ = r.Query(77, x, out)
	if n := testing.AllocsPerRun(200, func() { _, _ = r.Query(0, x, out) }); n != 0 {
		t.Errorf("flowless query allocates %v", n)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = r.Query(77, x, out) }); n != 0 {
		t.Errorf("flow query allocates %v", n)
	}
}

// TestPinRoutesLikeQuery: Pin gives the snapshot Query would run (a new
// flow is pinned to the active one, a pinned flow keeps its own, flow 0
// takes the active), and a pinned snapshot stays valid until released.
func TestPinRoutesLikeQuery(t *testing.T) {
	var clk fakeClock
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim, FlowTTL: time.Second, Now: clk.now})
	if _, _, _, err := r.Pin(1); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("pin before install: %v", err)
	}
	s1, s2 := snap(t, 1, model.ReLU), snap(t, 2, model.Tanh)
	if _, err := r.Install(s1); err != nil {
		t.Fatal(err)
	}
	x := inputs(1)[0]
	run := func(s *snapshot.Snapshot) [outDim]float32 {
		var o [outDim]float32
		if err := s.Run(x, o[:]); err != nil {
			t.Fatal(err)
		}
		return o
	}
	want1, want2 := run(s1), run(s2)
	s, v, rel, err := r.Pin(5) // pins flow 5 to v1
	if err != nil || v != 1 || run(s) != want1 {
		t.Fatalf("pin flow 5: v%d %v", v, err)
	}
	rel()
	if _, err := r.Install(s2); err != nil {
		t.Fatal(err)
	}
	s, v, rel, _ = r.Pin(5)
	if v != 1 || run(s) != want1 {
		t.Fatalf("pinned flow 5 moved to v%d", v)
	}
	rel()
	s, v, rel, _ = r.Pin(0)
	if v != 2 || run(s) != want2 {
		t.Fatalf("flow 0 on v%d", v)
	}
	rel()
	s, v, rel, _ = r.Pin(6)
	if v != 2 || run(s) != want2 {
		t.Fatalf("new flow 6 on v%d", v)
	}
	rel()
	out := make([]float32, outDim)
	if qv, _ := r.Query(6, x, out); qv != 2 {
		t.Fatalf("Query of flow 6 after Pin: v%d", qv)
	}
}

// TestQueryBatchMatchesQuery runs the same sequence of rows through
// QueryBatch on one router and Query row by row on another, with flows
// pinned to an older snapshot mixed with new and flowless rows (so runs
// of one snapshot alternate, and some exceed the 64-row run), and wants
// the same versions and the same output bits.
func TestQueryBatchMatchesQuery(t *testing.T) {
	a, b := snap(t, 1, model.Tanh), snap(t, 2, model.ReLU)
	mk := func() *Router {
		r, err := New(Config{InputDim: inDim, OutputDim: outDim, FlowCapacity: 1 << 10, FlowTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Install(a); err != nil {
			t.Fatal(err)
		}
		for f := uint64(1); f <= 5; f++ { // pinned to version 1
			if _, err := r.Query(f, inputs(1)[0], make([]float32, outDim)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Install(b); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ra, rb := mk(), mk()
	rng := rand.New(rand.NewPCG(4, 5))
	const n = 300
	ids := make([]uint64, n)
	for k := range ids {
		switch {
		case k >= 100 && k < 180:
			ids[k] = 0 // a run longer than 64 rows
		case rng.IntN(3) == 0:
			ids[k] = 1 + uint64(rng.IntN(5))
		case rng.IntN(2) == 0:
			ids[k] = 10 + uint64(rng.IntN(20))
		}
	}
	xs := make([]float32, n*inDim)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	outs, vers := make([]float32, n*outDim), make([]uint64, n)
	if err := rb.QueryBatch(ids, xs, outs, vers); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for k, id := range ids {
		want := make([]float32, outDim)
		v, err := ra.Query(id, xs[k*inDim:(k+1)*inDim], want)
		if err != nil {
			t.Fatal(err)
		}
		seen[v] = true
		if v != vers[k] || !slices.Equal(want, outs[k*outDim:(k+1)*outDim]) {
			t.Fatalf("row %d (flow %d): batch %v v%d, Query %v v%d", k, id, outs[k*outDim:(k+1)*outDim], vers[k], want, v)
		}
	}
	if !seen[1] || !seen[2] {
		t.Fatalf("versions answered: %v, want both", seen)
	}
	empty, _ := New(Config{InputDim: inDim, OutputDim: outDim})
	if err := empty.QueryBatch([]uint64{0}, xs[:inDim], outs[:outDim], vers[:1]); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("batch without a snapshot: %v", err)
	}
}

// TestQueryBatchUnderInstalls runs batches while installs alternate two
// models: every row must match the model of the version it reports.
func TestQueryBatchUnderInstalls(t *testing.T) {
	a, b := snap(t, 1, model.Tanh), snap(t, 2, model.ReLU)
	xs := inputs(40)
	wantA, wantB := expected(t, a, xs), expected(t, b, xs)
	r, err := New(Config{InputDim: inDim, OutputDim: outDim, FlowCapacity: 1 << 12, FlowTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Install(a); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			s := a
			if i%2 == 0 {
				s = b
			}
			if _, err := r.Install(s); err != nil {
				t.Error(err)
				return
			}
			runtime.Gosched()
		}
	}()
	flat := make([]float32, 0, len(xs)*inDim)
	for _, x := range xs {
		flat = append(flat, x...)
	}
	ids := make([]uint64, len(xs))
	outs, vers := make([]float32, len(xs)*outDim), make([]uint64, len(xs))
	for it := range 300 {
		for k := range ids {
			ids[k] = uint64((it*7 + k) % 50) // flows start, continue and mix with flowless rows
		}
		if err := r.QueryBatch(ids, flat, outs, vers); err != nil {
			t.Fatal(err)
		}
		for k := range xs {
			want := wantB[k]
			if vers[k]%2 == 1 {
				want = wantA[k]
			}
			if outs[k*outDim] != want[0] || outs[k*outDim+1] != want[1] {
				t.Fatalf("iteration %d row %d: %v v%d matches neither model", it, k, outs[k*outDim:(k+1)*outDim], vers[k])
			}
		}
	}
	stop.Store(true)
	wg.Wait()
}
