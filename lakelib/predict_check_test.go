package lakelib_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// checkedPredicts is a concurrent predict workload in which every output
// is compared with the demo MLP computed locally: clients × goroutines
// callers, each running predicts of 1..maxItems items on inputs no other
// predict uses, until total predicts have been issued.
type checkedPredicts struct {
	clients, goroutines int
	total               int64
	maxItems            int
	opts                lakelib.Options
	timeout             time.Duration
}

// checkedResult counts what the workload saw.
type checkedResult struct {
	issued, wrong, failed int64
	firstWrong, firstErr  string
	elapsed               time.Duration
}

func (w checkedPredicts) run(tb testing.TB, sock string) checkedResult {
	tb.Helper()
	ref, err := kernels.ParseMLP(laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	var (
		next              atomic.Int64
		res               checkedResult
		wrong, failed     atomic.Int64
		firstMu           sync.Mutex
		firstW, firstE    string
		clientsWithStrays atomic.Int64
	)
	note := func(dst *string, s string) {
		firstMu.Lock()
		if *dst == "" {
			*dst = s
		}
		firstMu.Unlock()
	}
	start := time.Now()
	var cwg sync.WaitGroup
	for k := 0; k < w.clients; k++ {
		c := lakedtest.Dial(tb, sock, w.opts)
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			var gwg sync.WaitGroup
			for g := 0; g < w.goroutines; g++ {
				gwg.Add(1)
				go func(seed uint64) {
					defer gwg.Done()
					rng := rand.New(rand.NewPCG(seed, 0x1a4e))
					in := make([]float32, 8*w.maxItems)
					out := make([]byte, 8*w.maxItems)
					want := make([]float32, 2*w.maxItems)
					for {
						id := next.Add(1)
						if id > w.total {
							return
						}
						n := 1 + rng.IntN(w.maxItems)
						// Distinct inputs: the predict's id is one of its
						// features, so a stale or foreign output differs.
						for i := range in[:8*n] {
							in[i] = float32(rng.IntN(2001)-1000) / 250
						}
						in[0] = float32(id%100003) / 997
						for i := range out {
							out[i] = 0xa5 // a predict that writes nothing is caught
						}
						if _, err := c.Predict(ctx, lakedtest.DemoMLP, n, laked.Float32sToBytes(in[:8*n]), out[:8*n]); err != nil {
							failed.Add(1)
							note(&firstE, err.Error())
							if ctx.Err() != nil {
								return
							}
							continue
						}
						if err := ref.Forward(in[:8*n], want[:2*n], n); err != nil {
							failed.Add(1)
							note(&firstE, err.Error())
							continue
						}
						for i, v := range laked.BytesToFloat32s(out[:8*n]) {
							if math.Float32bits(v) != math.Float32bits(want[i]) {
								wrong.Add(1)
								note(&firstW, fmt.Sprintf("predict %d (%d items): output %d = %v, reference %v", id, n, i, v, want[i]))
								break
							}
						}
					}
				}(uint64(k)<<16 | uint64(g))
			}
			gwg.Wait()
			if c.Strays() != 0 {
				clientsWithStrays.Add(1)
			}
			if err := c.Close(); err != nil {
				failed.Add(1)
				note(&firstE, "close: "+err.Error())
			}
		}()
	}
	cwg.Wait()
	res.elapsed = time.Since(start)
	res.issued = min(next.Load(), w.total)
	res.wrong, res.failed = wrong.Load(), failed.Load()
	res.firstWrong, res.firstErr = firstW, firstE
	if n := clientsWithStrays.Load(); n != 0 {
		tb.Errorf("%d clients saw stray completions", n)
	}
	return res
}

func (r checkedResult) check(tb testing.TB) {
	tb.Helper()
	tb.Logf("%d predicts checked in %v: %d wrong outputs, %d failed", r.issued, r.elapsed.Round(time.Millisecond), r.wrong, r.failed)
	if r.wrong != 0 {
		tb.Errorf("%d predicts returned OK with outputs that differ from the reference; first: %s", r.wrong, r.firstWrong)
	}
	if r.failed != 0 {
		tb.Errorf("%d predicts failed; first: %s", r.failed, r.firstErr)
	}
}

// TestConcurrentPredictsMatchReference runs many clients with many
// goroutines each, all predicting at once through small rings (so call
// slots are reused constantly, by spinning and sleeping callers alike),
// and checks every output against the reference MLP.
//
// LAKE_STRESS_PREDICTS=N makes it the stress mode of docs/RELIABILITY.md
// (N predicts, e.g. 1000000); the default is a short run for make test.
func TestConcurrentPredictsMatchReference(t *testing.T) {
	total := int64(20000)
	if testing.Short() {
		total = 1500
	}
	if s := os.Getenv("LAKE_STRESS_PREDICTS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("LAKE_STRESS_PREDICTS=%q: want a positive count", s)
		}
		total = n
	}
	_, sock := lakedtest.Start(t, laked.Config{})
	w := checkedPredicts{
		clients: 4, goroutines: 6, total: total, maxItems: 4,
		// 8 slots for 6 goroutines: slots are reused at once; a short
		// spin makes callers park as well as spin.
		opts:    lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 1 << 20}, SpinMax: 5 * time.Microsecond},
		timeout: time.Duration(max(60, total/1000)) * time.Second,
	}
	w.run(t, sock).check(t)
}

// TestLateWakeIsNotTakenForTheNextCall widens the window between a call
// being marked done and its caller being woken (where a reaping
// goroutine can be preempted). A spinning caller sees done, returns and
// frees its slot; the slot's next call must not take the late wake-up
// for its own completion and return the old call's results.
func TestLateWakeIsNotTakenForTheNextCall(t *testing.T) {
	var n atomic.Uint64
	lakelib.SetCompletedHook(func() {
		if n.Add(1)%3 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	})
	defer lakelib.SetCompletedHook(nil)
	_, sock := lakedtest.Start(t, laked.Config{})
	w := checkedPredicts{
		clients: 1, goroutines: 12, total: 3000, maxItems: 2,
		opts:    lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 1 << 20}, SpinMax: 20 * time.Microsecond},
		timeout: time.Minute,
	}
	w.run(t, sock).check(t) // closes its clients: no reaper runs the hook after
}
