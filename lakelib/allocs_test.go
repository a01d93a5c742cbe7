package lakelib_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
)

// TestSteadyStateAllocatesNothing: a stream of Nop and batch-1 Predict
// calls allocates nothing, in the client and in laked together (both in
// this process): garbage on the request path brings GC cycles, whose
// pauses and mark workers preempt the spinning caller and reader and
// land in the latency tail. A few allocations from pools refilled after
// a GC are tolerated; one per call is not.
func TestSteadyStateAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, busy := range []bool{false, true} {
		_, sock := lakedtest.Start(t, laked.Config{BusyPoll: busy})
		c := lakedtest.Dial(t, sock, lakelib.Options{BusyPoll: busy})
		ctx := context.Background()
		in, out := make([]byte, 32), make([]byte, 8)
		for i := 0; i < 2000; i++ { // warm up: pools, rings, arena caches
			if err := c.Nop(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Predict(ctx, lakedtest.DemoMLP, 1, in, out); err != nil {
				t.Fatal(err)
			}
		}
		const calls = 20000
		for _, op := range []struct {
			name string
			f    func() error
		}{
			{"nop", func() error { return c.Nop(ctx) }},
			{"predict", func() error { _, err := c.Predict(ctx, lakedtest.DemoMLP, 1, in, out); return err }},
		} {
			var a, b runtime.MemStats
			runtime.ReadMemStats(&a)
			for i := 0; i < calls; i++ {
				if err := op.f(); err != nil {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&b)
			per := float64(b.Mallocs-a.Mallocs) / calls
			t.Logf("busy-poll %v: %s: %.4f allocations per call (%d in %d calls)", busy, op.name, per, b.Mallocs-a.Mallocs, calls)
			if per > 0.05 {
				t.Errorf("busy-poll %v: %s allocates %.3f times per call: the steady-state path must not allocate", busy, op.name, per)
			}
		}
	}
}
