package laked_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// gatedModel copies each input record to its output, but only once its
// gate is open: predicts accepted meanwhile stay queued in laked.
type gatedModel struct {
	rec     int
	gate    chan struct{}
	entered atomic.Int64 // calls waiting at the gate or past it
	ran     atomic.Int64 // items the model computed
}

func (m *gatedModel) Info() laked.ModelInfo {
	return laked.ModelInfo{Name: "gated", InputBytes: m.rec, OutputBytes: m.rec}
}

func (m *gatedModel) Predict(in, out []byte, n int) error {
	m.entered.Add(1)
	<-m.gate
	m.ran.Add(int64(n))
	copy(out, in[:n*m.rec])
	return nil
}

const gatedID = 40

func startGated(t *testing.T, rec int, lim laked.Limits) (*laked.Server, string, *gatedModel) {
	t.Helper()
	srv, sock := startServer(t, laked.Config{Limits: lim})
	m := &gatedModel{rec: rec, gate: make(chan struct{})}
	if err := srv.RegisterModel(gatedID, m); err != nil {
		t.Fatal(err)
	}
	return srv, sock, m
}

// burst runs k predicts of one record from goroutines on c and returns a
// channel of their errors (nil: OK with the right output) and a count of
// those refused as busy so far.
func burst(ctx context.Context, c *lakelib.Client, k, rec int, seed byte, wg *sync.WaitGroup, busy *atomic.Int32, errs chan<- error) {
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			in := bytes.Repeat([]byte{seed + byte(i)}, rec)
			out := make([]byte, rec)
			_, err := c.Predict(ctx, gatedID, 1, in, out)
			switch {
			case errors.Is(err, lakelib.ErrStatus(shm.StatusBusy)):
				busy.Add(1)
			case err != nil:
				errs <- err
			case !bytes.Equal(in, out):
				errs <- errors.New("wrong output")
			}
		}(i)
	}
}

// block makes a third client's predict occupy the gated model (its
// reader runs it and waits at the gate), so that the predicts the test
// sends next are queued in laked. It returns once the model holds the
// predict: accepted is not enough, since until a runner takes it, a
// predict sent next could join its batch (and run when the gate opens)
// or make its own client's reader the runner, blocked at the gate.
func block(t *testing.T, ctx context.Context, srv *laked.Server, m *gatedModel, sock string, rec int, wg *sync.WaitGroup, errs chan<- error) {
	t.Helper()
	c := dial(t, sock, lakelibOptions())
	var busy atomic.Int32
	burst(ctx, c, 1, rec, 200, wg, &busy, errs)
	waitFor(t, "the blocking predict", func() bool { return m.entered.Load() == 1 && srv.Usage().Inflight == 1 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// release opens m's gate, waits for the calls wg counts and fails the
// test on any error they sent to errs (which it closes).
func (m *gatedModel) release(t *testing.T, wg *sync.WaitGroup, errs chan error) {
	t.Helper()
	close(m.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestInflightBudgets: a session gets at most limits.session_inflight
// predicts accepted and not completed, all sessions together at most
// limits.total_inflight; the rest are refused busy at once (never queued,
// never lost), and the accepted ones complete correctly.
func TestInflightBudgets(t *testing.T) {
	srv, sock, m := startGated(t, 8, laked.Limits{SessionInflight: 6, TotalInflight: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := dial(t, sock, lakelibOptions())
	b := dial(t, sock, lakelibOptions())
	var wg sync.WaitGroup
	var busyA, busyB atomic.Int32
	errs := make(chan error, 64)
	block(t, ctx, srv, m, sock, 8, &wg, errs)
	burst(ctx, a, 16, 8, 0, &wg, &busyA, errs)
	waitFor(t, "a's 10 refusals", func() bool { return busyA.Load() == 10 })
	if u := srv.Usage(); u.Inflight != 7 {
		t.Fatalf("%d in flight, want the blocker's 1 and session_inflight 6", u.Inflight)
	}
	burst(ctx, b, 8, 8, 100, &wg, &busyB, errs)
	waitFor(t, "b's 5 refusals", func() bool { return busyB.Load() == 5 })
	if u := srv.Usage(); u.Inflight != 10 {
		t.Fatalf("%d in flight, want total_inflight 10", u.Inflight)
	}
	m.release(t, &wg, errs)
	if busyA.Load() != 10 || busyB.Load() != 5 {
		t.Fatalf("refused %d and %d, want 10 and 5", busyA.Load(), busyB.Load())
	}
	if u := srv.Usage(); u.Inflight != 0 || u.QueuedBytes != 0 {
		t.Fatalf("budgets not given back: %+v", u)
	}
}

// TestDepartedClientsPredictsDoNotRun: predicts a client queued and then
// left are answered without running (and their budgets given back), so a
// client that bursts and disconnects cannot keep the model busy.
func TestDepartedClientsPredictsDoNotRun(t *testing.T) {
	srv, sock, m := startGated(t, 8, laked.Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg, gone sync.WaitGroup
	errs := make(chan error, 64)
	block(t, ctx, srv, m, sock, 8, &wg, errs)
	a := dial(t, sock, lakelibOptions())
	var busy atomic.Int32
	ignored := make(chan error, 64) // a's calls fail when it closes
	burst(ctx, a, 6, 8, 0, &gone, &busy, ignored)
	waitFor(t, "a's 6 queued predicts", func() bool { return srv.Usage().Inflight == 7 })
	id := a.ClientID()
	a.Close()
	gone.Wait()
	waitFor(t, "laked to see a leave", func() bool {
		for _, si := range srv.Sessions() {
			if si.ClientID == id {
				return si.Departed
			}
		}
		return true
	})
	m.release(t, &wg, errs)
	waitFor(t, "the budgets given back", func() bool { u := srv.Usage(); return u.Inflight == 0 && u.QueuedBytes == 0 })
	if got := m.ran.Load(); got != 1 {
		t.Fatalf("the model ran %d items, want 1 (the blocker's; the departed client's 6 must not run)", got)
	}
}

// TestQueuedBytesBudget: large predicts queued by one client are bounded
// by limits.session_queued_bytes (laked's private copies), all clients'
// by limits.total_queued_bytes.
func TestQueuedBytesBudget(t *testing.T) {
	const rec = 60 << 10
	srv, sock, m := startGated(t, rec, laked.Limits{SessionQueuedBytes: 4 * 2 * rec, TotalQueuedBytes: 6 * 2 * rec})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := dial(t, sock, lakelibOptions())
	b := dial(t, sock, lakelibOptions())
	var wg sync.WaitGroup
	var busyA, busyB atomic.Int32
	errs := make(chan error, 64)
	block(t, ctx, srv, m, sock, rec, &wg, errs)
	burst(ctx, a, 12, rec, 0, &wg, &busyA, errs)
	waitFor(t, "a's 8 refusals", func() bool { return busyA.Load() == 8 })
	burst(ctx, b, 6, rec, 50, &wg, &busyB, errs)
	waitFor(t, "b's 5 refusals", func() bool { return busyB.Load() == 5 })
	if u := srv.Usage(); u.QueuedBytes != 6*2*rec {
		t.Fatalf("%d bytes queued, want total_queued_bytes %d", u.QueuedBytes, 6*2*rec)
	}
	m.release(t, &wg, errs)
	if u := srv.Usage(); u.QueuedBytes != 0 {
		t.Fatalf("queued bytes not given back: %+v", u)
	}
}

// TestSessionDeviceBytes: one client's contexts together hold at most
// limits.session_device_bytes.
func TestSessionDeviceBytes(t *testing.T) {
	_, sock := startServer(t, laked.Config{Limits: laked.Limits{SessionDeviceBytes: 1 << 20}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dial(t, sock, lakelibOptions())
	x1, err := c.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x2, err := c.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := x1.MemAlloc(ctx, 768<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x2.MemAlloc(ctx, 512<<10); !errors.Is(err, lakelib.ErrStatus(shm.StatusOutOfMemory)) {
		t.Fatalf("second context past the session's device bytes: %v", err)
	}
	if err := x1.MemFree(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := x2.MemAlloc(ctx, 512<<10); err != nil {
		t.Fatalf("after a free: %v", err)
	}
	other := dial(t, sock, lakelibOptions())
	y, err := other.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := y.MemAlloc(ctx, 768<<10); err != nil {
		t.Fatalf("another client is held to its own budget only: %v", err)
	}
}

// lakedSpinModule's kernel loops until its launch must stop.
const lakedSpinModule = "laked_test_spin"

var lakedSpinning atomic.Int32

func init() {
	if err := cpu.RegisterModule(lakedSpinModule, map[string]cpu.KernelFunc{
		"spin": func(k *cpu.KernelContext) error {
			lakedSpinning.Add(1)
			defer lakedSpinning.Add(-1)
			for k.Err() == nil {
				for i := 0; i < 1000; i++ {
					_ = i
				}
			}
			return k.Err()
		},
	}); err != nil {
		panic(err)
	}
}

// spinContext creates a context on c with lakedSpinModule loaded and
// returns it with the module's spin kernel.
func spinContext(ctx context.Context, t *testing.T, c *lakelib.Client) (*lakelib.Context, lakelib.Function) {
	t.Helper()
	x, err := c.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := x.ModuleLoadData(ctx, []byte(lakedSpinModule))
	if err != nil {
		t.Fatal(err)
	}
	f, err := x.ModuleGetFunction(ctx, mod, "spin")
	if err != nil {
		t.Fatal(err)
	}
	return x, f
}

// TestDepartedClientsKernelsStop: kernels a client launched (on the
// default stream, where laked's reader runs it, and on streams) stop as
// soon as the client goes away, and its session ends.
func TestDepartedClientsKernelsStop(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dial(t, sock, lakelibOptions())
	x, f := spinContext(ctx, t, c)
	one := lakelib.Dim3{X: 1, Y: 1, Z: 1}
	for i := 0; i < 2; i++ {
		s, err := x.StreamCreate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.LaunchKernel(ctx, f, one, one, 0, s); err != nil {
			t.Fatal(err)
		}
	}
	// The default stream waits for the others (legacy semantics): the
	// synchronous launch is in a second context.
	y, yf := spinContext(ctx, t, c)
	go func() {
		sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer scancel()
		_ = y.LaunchKernel(sctx, yf, one, one, 0, 0) // synchronous in laked: the call times out
	}()
	waitFor(t, "three spinning kernels", func() bool { return lakedSpinning.Load() == 3 })
	time.Sleep(300 * time.Millisecond)
	c.Close()
	start := time.Now()
	waitFor(t, "the kernels to stop", func() bool { return lakedSpinning.Load() == 0 })
	t.Logf("kernels stopped %v after the client left", time.Since(start))
	waitFor(t, "the session to end", func() bool { return srv.Usage().Sessions == 0 })
}
