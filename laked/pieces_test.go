package laked_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// stepModel copies each 8-byte record to its output plus add, one call at
// a time: each call records the record values it got, then waits for a
// step (the test holds it there); fail makes the next call fail.
type stepModel struct {
	add  uint64
	step chan struct{}
	fail atomic.Bool

	mu    sync.Mutex
	calls [][]uint64
	ran   atomic.Int64 // items computed
}

func newStepModel() *stepModel { return &stepModel{step: make(chan struct{})} }

func (m *stepModel) Info() laked.ModelInfo {
	return laked.ModelInfo{Name: "step", InputBytes: 8, OutputBytes: 8}
}

func (m *stepModel) Predict(in, out []byte, n int) error {
	vals := make([]uint64, n)
	for i := range vals {
		vals[i] = binary.LittleEndian.Uint64(in[8*i:])
	}
	m.mu.Lock()
	m.calls = append(m.calls, vals)
	m.mu.Unlock()
	<-m.step
	if m.fail.Load() {
		return errors.New("step: failed (test)")
	}
	for i, v := range vals {
		binary.LittleEndian.PutUint64(out[8*i:], v+m.add)
	}
	m.ran.Add(int64(n))
	return nil
}

func (m *stepModel) nCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls)
}

// steps releases every call of m until the returned stop is called.
func (m *stepModel) steps() (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case m.step <- struct{}{}:
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

func completions(st laked.Stats) uint64 {
	var n uint64
	for _, v := range st.Completions {
		n += v
	}
	return n
}

// predictVals predicts n records base..base+n-1 and checks every output
// is its input plus one of adds, the same for all, and that of the
// version the result reports (version v has adds[v-1]).
func predictVals(ctx context.Context, c *lakelib.Client, model uint32, n int, base uint64, adds []uint64, within time.Duration) error {
	in, out := make([]byte, 8*n), make([]byte, 8*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(in[8*i:], base+uint64(i))
	}
	var res lakelib.PredictResult
	var err error
	if within > 0 {
		res, err = c.PredictWithin(ctx, model, n, in, out, within)
	} else {
		res, err = c.Predict(ctx, model, n, in, out)
	}
	if err != nil {
		return err
	}
	if res.Version == 0 || res.Version > uint64(len(adds)) {
		return fmt.Errorf("version %d", res.Version)
	}
	add := adds[res.Version-1]
	for i := 0; i < n; i++ {
		if got := binary.LittleEndian.Uint64(out[8*i:]); got != base+uint64(i)+add {
			return fmt.Errorf("%d items from %d: output %d is %d, want %d (version %d)", n, base, i, got, base+uint64(i)+add, res.Version)
		}
	}
	return nil
}

// TestLightRequestRidesBetweenPieces: client A's request of
// 16×batch.max_size items is running (its first piece held in the model)
// when client B queues a request of one item; B's item runs in the very
// next model call (a batch of its own: A's next piece follows it), not
// after A's whole request.
// A's request still runs every item exactly once, in calls of at most
// max_size items, and each request completes once.
func TestLightRequestRidesBetweenPieces(t *testing.T) {
	const maxBatch = 8
	const large = 16 * maxBatch
	srv, sock := startServer(t, laked.Config{MaxBatch: maxBatch})
	m := newStepModel()
	if err := srv.RegisterModel(echoID, m); err != nil {
		t.Fatal(err)
	}
	a, b := dial(t, sock, lakelibOptions()), dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adds := []uint64{0}
	aErr, bErr := make(chan error, 1), make(chan error, 1)
	go func() { aErr <- predictVals(ctx, a, echoID, large, 1000, adds, 0) }()
	waitFor(t, "A's first piece in the model", func() bool { return m.nCalls() == 1 })
	go func() { bErr <- predictVals(ctx, b, echoID, 1, 1, adds, 0) }()
	waitFor(t, "B's predict admitted", func() bool { return srv.Usage().Inflight == 2 })
	// Admission comes just before the batcher queues it (a few
	// straight-line statements in acceptPredict): leave room for a
	// preempted poller to finish.
	time.Sleep(20 * time.Millisecond)
	stop := m.steps()
	defer stop()
	for _, err := range []error{<-aErr, <-bErr} {
		if err != nil {
			t.Fatal(err)
		}
	}
	m.mu.Lock()
	calls := slices.Clone(m.calls)
	m.mu.Unlock()
	bAt := -1
	var aVals []uint64
	for i, c := range calls {
		if len(c) > maxBatch {
			t.Fatalf("call %d of %d items, max_size %d", i, len(c), maxBatch)
		}
		for _, v := range c {
			if v == 1 {
				bAt = i
			} else {
				aVals = append(aVals, v)
			}
		}
	}
	if bAt != 1 {
		t.Fatalf("B's item ran in model call %d of %d, want call 1 (right after A's first piece)", bAt, len(calls))
	}
	slices.Sort(aVals)
	if len(aVals) != large || aVals[0] != 1000 || aVals[large-1] != 1000+large-1 || len(slices.Compact(aVals)) != large {
		t.Fatalf("A's %d items ran as %d items (each must run once)", large, len(aVals))
	}
	st := srv.Stats()
	if st.Completions["ok"] != 2 || completions(st) != 2 || st.BatchItems != large+1 {
		t.Fatalf("completions %v, batch items %d; want 2 OK and %d items", st.Completions, st.BatchItems, large+1)
	}
	if u := srv.Usage(); u.Inflight != 0 || u.QueuedBytes != 0 {
		t.Fatalf("budgets not given back: %+v", u)
	}
}

// TestLargeRequestsInterleavedBitExact: several clients send large and
// small requests at once (max_size 8: the large ones run in pieces that
// interleave with the others); every output is the echo of its input at
// the right offset, and every request completes once.
func TestLargeRequestsInterleavedBitExact(t *testing.T) {
	m := &echoModel{}
	srv, sock := startEcho(t, laked.Config{MaxBatch: 8}, m)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sizes := []int{1, 37, 3, 8, 45, 2, 100, 9, 1, 64}
	const clients, workers, rounds = 4, 2, 4
	errs := make(chan error, clients*workers)
	var wg sync.WaitGroup
	for k := 0; k < clients; k++ {
		c := dial(t, sock, lakelibOptions())
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(k, w int) {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					for i, n := range sizes {
						base := uint64(k)<<40 | uint64(w)<<32 | uint64(r)<<24 | uint64(i)<<16
						if err := echo(ctx, c, n, base); err != nil {
							errs <- err
							return
						}
					}
				}
			}(k, w)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := m.maxCall.Load(); got > 8 {
		t.Fatalf("a model call of %d items, max_size 8", got)
	}
	want := uint64(clients * workers * rounds * len(sizes))
	if st := srv.Stats(); st.Completions["ok"] != want || completions(st) != want {
		t.Fatalf("completions %v, want %d OK", st.Completions, want)
	}
}

// TestLargeRequestsInterleavedGPURuns is the same on the GPU runs path,
// with the clients' regions registered (inputs read from and outputs
// written to the arena at each piece's offset) and not (staged): outputs
// match the CPU model's bit for bit.
func TestLargeRequestsInterleavedGPURuns(t *testing.T) {
	for _, unregistered := range []bool{false, true} {
		t.Run(fmt.Sprintf("unregistered=%v", unregistered), func(t *testing.T) {
			base, err := laked.NewMLPModel("mlp", laked.DemoMLPBlob(5, 8, 16, 2))
			if err != nil {
				t.Fatal(err)
			}
			be := newRegBackend(unregistered)
			g := &runsRecorder{base: base, be: be}
			srv, sock := runsServer(t, be, laked.WithGPURuns(base, g.run)) // max_size 16
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			sizes := []int{70, 1, 33, 5, 16, 129, 2}
			const clients = 4
			errs := make(chan error, clients)
			var wg sync.WaitGroup
			for k := 0; k < clients; k++ {
				c := dial(t, sock, lakelibOptions())
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					for r := 0; r < 3; r++ {
						for i, n := range sizes {
							in := make([]byte, n*32)
							for j := range in {
								in[j] = byte(j*7 + i + 3*k + r)
							}
							for j := 3; j < len(in); j += 4 {
								in[j] = 0x3f // finite floats
							}
							want := make([]byte, n*8)
							if err := base.Predict(in, want, n); err != nil {
								errs <- err
								return
							}
							out := make([]byte, n*8)
							if _, err := c.Predict(ctx, 7, n, in, out); err != nil {
								errs <- err
								return
							}
							if string(out) != string(want) {
								errs <- fmt.Errorf("client %d request %d (%d items): wrong outputs", k, i, n)
								return
							}
						}
					}
				}(k)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			st := srv.Stats()
			direct, staged := st.GPUDirectItems, st.GPUStagedItems
			if unregistered && direct != 0 || !unregistered && staged != 0 || direct+staged != st.BatchItems {
				t.Fatalf("direct %d staged %d of %d items", direct, staged, st.BatchItems)
			}
			if want := uint64(clients * 3 * len(sizes)); st.Completions["ok"] != want || completions(st) != want {
				t.Fatalf("completions %v, want %d OK", st.Completions, want)
			}
		})
	}
}

// TestLargeRequestEndsBetweenPieces: a large request whose first piece is
// in the model when it is stopped (model unregistered), its client
// leaves, its deadline passes, its piece fails, or the model is replaced:
// it is answered exactly once, with the budgets given back, and no
// further piece runs (replaced: it completes, all its outputs of the
// version it reports).
func TestLargeRequestEndsBetweenPieces(t *testing.T) {
	const maxBatch = 8
	const large = 4 * maxBatch
	for _, tc := range []struct {
		name   string
		within time.Duration
		act    func(t *testing.T, srv *laked.Server, m *stepModel, a *lakelib.Client)
		want   error // nil: completes OK
		ran    int64 // items the models ran
	}{
		{name: "stop", act: func(t *testing.T, srv *laked.Server, m *stepModel, a *lakelib.Client) {
			if err := srv.UnregisterModel(echoID); err != nil {
				t.Fatal(err)
			}
		}, want: lakelib.ErrStatus(shm.StatusNotFound), ran: maxBatch},
		{name: "departure", act: func(t *testing.T, srv *laked.Server, m *stepModel, a *lakelib.Client) {
			id := a.ClientID()
			a.Close()
			waitFor(t, "laked to see A leave", func() bool {
				for _, si := range srv.Sessions() {
					if si.ClientID == id {
						return si.Departed
					}
				}
				return true
			})
		}, want: errors.New("any"), ran: maxBatch},
		{name: "deadline", within: 200 * time.Millisecond, act: func(t *testing.T, srv *laked.Server, m *stepModel, a *lakelib.Client) {
			time.Sleep(250 * time.Millisecond)
		}, want: lakelib.ErrDeadline, ran: maxBatch},
		{name: "failure", act: func(t *testing.T, srv *laked.Server, m *stepModel, a *lakelib.Client) {
			m.fail.Store(true)
		}, want: lakelib.ErrStatus(shm.StatusModelFailed), ran: 0},
		{name: "replaced", act: func(t *testing.T, srv *laked.Server, m *stepModel, a *lakelib.Client) {
			m2 := newStepModel()
			m2.add = 1
			m2.step = m.step // one stepper for both
			if _, err := srv.ReplaceModel(echoID, m2); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// The rest (all of it, started over on version 2)
				// ran on the replacement.
				if got := m2.ran.Load(); got != large {
					t.Errorf("the replacement ran %d items, want %d (the request started over)", got, large)
				}
			})
		}, ran: maxBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, sock := startServer(t, laked.Config{MaxBatch: maxBatch})
			m := newStepModel()
			if err := srv.RegisterModel(echoID, m); err != nil {
				t.Fatal(err)
			}
			a := dial(t, sock, lakelibOptions())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			aErr := make(chan error, 1)
			go func() { aErr <- predictVals(ctx, a, echoID, large, 1000, []uint64{0, 1}, tc.within) }()
			waitFor(t, "A's first piece in the model", func() bool { return m.nCalls() == 1 })
			tc.act(t, srv, m, a)
			stop := m.steps()
			defer stop()
			err := <-aErr
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("A: %v, want OK", err)
			case tc.want != nil && err == nil:
				t.Fatalf("A completed OK, want %v", tc.want)
			case tc.want != nil && tc.name != "departure" && !errors.Is(err, tc.want):
				t.Fatalf("A: %v, want %v", err, tc.want)
			}
			waitFor(t, "the budgets given back", func() bool { u := srv.Usage(); return u.Inflight == 0 && u.QueuedBytes == 0 })
			waitFor(t, "one completion", func() bool { return completions(srv.Stats()) >= 1 })
			time.Sleep(20 * time.Millisecond) // room for a wrong second completion or piece
			if n := completions(srv.Stats()); n != 1 {
				t.Fatalf("%d completions of one request: %v", n, srv.Stats().Completions)
			}
			if tc.name != "replaced" && m.nCalls() != 1 {
				t.Fatalf("%d model calls, want 1 (no piece after the first)", m.nCalls())
			}
			if got := m.ran.Load(); got != tc.ran {
				t.Fatalf("the model ran %d items, want %d", got, tc.ran)
			}
		})
	}
}

// TestLargeRequestPlacedWhole: each piece of a large request is placed
// (BatchInfo.Items) with the request's items not yet run counted, as the
// whole request was before it ran in pieces, so that a GPU policy's
// minimum batch still sees it; the pieces themselves hold at most
// max_size items.
func TestLargeRequestPlacedWhole(t *testing.T) {
	const maxBatch = 8
	const large = 5*maxBatch + 3
	m := &echoModel{}
	srv, sock := startEcho(t, laked.Config{MaxBatch: maxBatch}, m)
	var mu sync.Mutex
	var seen []int
	srv.SetPlacer(laked.PlacerFunc(func(bi laked.BatchInfo) bool {
		mu.Lock()
		seen = append(seen, bi.Items)
		mu.Unlock()
		return false
	}))
	c := dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := echo(ctx, c, large, 500); err != nil {
		t.Fatal(err)
	}
	want := []int{large}
	for left := large - maxBatch; left > 0; left -= maxBatch {
		want = append(want, left)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, want) {
		t.Fatalf("placements saw %v items, want %v", seen, want)
	}
	if got := m.maxCall.Load(); got > maxBatch {
		t.Fatalf("a model call of %d items", got)
	}
}
