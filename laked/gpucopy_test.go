package laked

import (
	"errors"
	"math"
	"testing"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/shm"
)

// plan is planRuns for tests, failing on error.
func plan(t *testing.T, spans []recSpan, rec uint64, lo, hi int) []copyRun {
	t.Helper()
	runs, err := planRuns(nil, spans, rec, lo, hi)
	if err != nil {
		t.Fatalf("planRuns(%d, %d): %v", lo, hi, err)
	}
	return runs
}

func sameRuns(t *testing.T, got, want []copyRun) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d runs %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("run %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestPlanRunsCoalesces: requests a client placed back to back in its
// arena become one copy; a gap, another client's arena or laked's buffer
// starts a new one; runs follow batch order.
func TestPlanRunsCoalesces(t *testing.T) {
	a, b := &stagedMem{b: make([]byte, 4096)}, &stagedMem{b: make([]byte, 4096)}
	const rec = 124 // a LinnOS input record
	spans := []recSpan{
		{mem: a, off: 0, items: 2},       // a[0, 248)
		{mem: a, off: 2 * rec, items: 3}, // adjacent: same run
		{mem: b, off: 0, items: 1},       // another client
		{mem: a, off: 5 * rec, items: 1}, // adjacent to a's run, but b came between
		{mem: a, off: 7 * rec, items: 2}, // a gap of one record
		{mem: a, off: 9 * rec, items: 1}, // adjacent again
	}
	sameRuns(t, plan(t, spans, rec, 0, 10), []copyRun{
		{mem: a, off: 0, n: 5 * rec},
		{mem: b, off: 0, n: rec},
		{mem: a, off: 5 * rec, n: rec},
		{mem: a, off: 7 * rec, n: 3 * rec},
	})
	// One request: one run, whatever its size.
	sameRuns(t, plan(t, []recSpan{{mem: a, off: 40, items: 30}}, 4, 0, 30), []copyRun{{mem: a, off: 40, n: 120}})
	// Empty chunk: nothing.
	if runs := plan(t, spans, rec, 3, 3); len(runs) != 0 {
		t.Fatal(runs)
	}
}

// TestPlanRunsChunks: a chunk [lo, hi) of the batch (batch.max_size)
// copies exactly its records, splitting requests at the chunk's edges,
// and the chunks of a batch together copy every record once.
func TestPlanRunsChunks(t *testing.T) {
	a, b := &stagedMem{b: make([]byte, 1<<16)}, &stagedMem{b: make([]byte, 1<<16)}
	const rec = 8
	spans := []recSpan{
		{mem: a, off: 100, items: 5},
		{mem: b, off: 0, items: 7},
		{mem: a, off: 140, items: 4}, // adjacent to the first, b between
		{mem: a, off: 1000, items: 9},
	}
	sameRuns(t, plan(t, spans, rec, 3, 9), []copyRun{
		{mem: a, off: 100 + 3*rec, n: 2 * rec},
		{mem: b, off: 0, n: 4 * rec},
	})
	sameRuns(t, plan(t, spans, rec, 9, 16), []copyRun{
		{mem: b, off: 4 * rec, n: 3 * rec},
		{mem: a, off: 140, n: 4 * rec},
	})
	for _, limit := range []int{1, 2, 3, 4, 7, 25, 64} {
		seen := map[hostMem]map[uint64]int{a: {}, b: {}}
		total := 0
		for lo := 0; lo < 25; lo += limit {
			hi := min(lo+limit, 25)
			var n uint64
			for _, r := range plan(t, spans, rec, lo, hi) {
				if r.n == 0 || r.n%rec != 0 {
					t.Fatalf("limit %d: run %+v", limit, r)
				}
				for o := r.off; o < r.off+r.n; o += rec {
					seen[r.mem][o]++
				}
				n += r.n
			}
			if n != uint64(hi-lo)*rec {
				t.Fatalf("limit %d chunk [%d,%d): %d bytes", limit, lo, hi, n)
			}
			total += hi - lo
		}
		for _, s := range spans {
			for i := 0; i < s.items; i++ {
				if c := seen[s.mem][s.off+uint64(i)*rec]; c != 1 {
					t.Fatalf("limit %d: record at %d copied %d times", limit, s.off+uint64(i)*rec, c)
				}
			}
		}
	}
}

// TestPlanRunsHostile: offsets and counts whose byte ranges overflow, and
// chunks outside the batch, plan nothing; ranges past the memory (a
// client's arena, or laked's buffer) are refused when resolved, and
// resolving keeps nothing of a failed plan.
func TestPlanRunsHostile(t *testing.T) {
	m := &stagedMem{b: make([]byte, 1024)}
	bad := []struct {
		spans  []recSpan
		rec    uint64
		lo, hi int
	}{
		{[]recSpan{{mem: m, off: math.MaxUint64 - 10, items: 1}}, 16, 0, 1},
		{[]recSpan{{mem: m, off: math.MaxUint64, items: 2}}, 1, 1, 2},
		{[]recSpan{{mem: m, off: 0, items: math.MaxInt}}, 1 << 40, 0, math.MaxInt},
		{[]recSpan{{mem: m, off: 0, items: 4}}, 8, 0, 5},  // past the batch
		{[]recSpan{{mem: m, off: 0, items: 4}}, 8, -1, 2}, // negative
		{[]recSpan{{mem: m, off: 0, items: 4}}, 8, 3, 2},  // reversed
		{[]recSpan{{mem: m, off: 0, items: -3}}, 8, 0, 0}, // negative span
		{[]recSpan{{mem: m, off: 1 << 63, items: 3}}, 1 << 62, 0, 3},
	}
	for i, c := range bad {
		prev := []copyRun{{mem: m, off: 1, n: 1}}
		runs, err := planRuns(prev, c.spans, c.rec, c.lo, c.hi)
		if err == nil {
			t.Fatalf("case %d planned %+v", i, runs)
		}
		if len(runs) != 1 || runs[0] != prev[0] {
			t.Fatalf("case %d: a failed plan left %+v", i, runs)
		}
	}
	if _, err := planRuns(nil, bad[0].spans, bad[0].rec, 0, 1); !errors.Is(err, errSpan) {
		t.Fatalf("overflow: %v", err)
	}
	// Within uint64, but past the memory: refused at resolve time.
	for _, r := range []copyRun{
		{mem: m, off: 1000, n: 25},
		{mem: m, off: 1025, n: 0},
		{mem: m, off: math.MaxUint64, n: 1},
		{mem: m, off: 1, n: math.MaxUint64},
	} {
		prev := [][]byte{m.b[:1]}
		got, err := resolveRuns(prev, []copyRun{{mem: m, off: 0, n: 8}, r})
		if err == nil || len(got) != 1 {
			t.Fatalf("run %+v resolved: %v %d", r, err, len(got))
		}
	}
	got, err := resolveRuns(nil, []copyRun{{mem: m, off: 1016, n: 8}, {mem: m, off: 0, n: 1024}})
	if err != nil || len(got) != 2 || &got[0][0] != &m.b[1016] || len(got[1]) != 1024 || cap(got[0]) != 8 {
		t.Fatalf("in-bounds runs: %v", err)
	}
}

// FuzzPlanRuns: for any spans and chunk, planRuns either fails or copies
// exactly the chunk's records, each once, in batch order, as runs that
// do not overflow.
func FuzzPlanRuns(f *testing.F) {
	f.Add(uint64(0), uint64(124), uint16(3), uint64(372), uint16(2), uint8(1), uint8(0), uint8(5))
	f.Add(uint64(math.MaxUint64-8), uint64(8), uint16(1), uint64(0), uint16(1), uint8(0), uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, off0, rec uint64, n0 uint16, off1 uint64, n1 uint16, same, lo, hi uint8) {
		a, b := &stagedMem{}, &stagedMem{}
		m1 := hostMem(b)
		if same&1 != 0 {
			m1 = a
		}
		spans := []recSpan{{mem: a, off: off0, items: int(n0)}, {mem: m1, off: off1, items: int(n1)}}
		runs, err := planRuns(nil, spans, rec, int(lo), int(hi))
		if err != nil {
			return
		}
		var total uint64
		for _, r := range runs {
			if r.off+r.n < r.off {
				t.Fatalf("run %+v overflows", r)
			}
			total += r.n
		}
		if want := uint64(int(hi)-int(lo)) * rec; total != want {
			t.Fatalf("%d bytes for records [%d,%d) of %d", total, lo, hi, rec)
		}
	})
}

// TestLeaveInArena: a predict's inputs stay in the arena only for a
// model with a runs path, a client whose region the GPU backend
// registered, and input and output ranges that do not overlap (an
// in-place predict is copied at acceptance).
func TestLeaveInArena(t *testing.T) {
	base, err := NewMLPModel("m", DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	runs := WithGPURuns(base, func(ins, outs [][]byte, n int) error { return nil })
	srv := &Server{cfg: Config{GPU: cpu.New(backend.Limits{})}}
	sm := &servedModel{}
	sm.current.Store(&modelVersion{m: runs})
	s := &session{srv: srv, dma: true}
	args := func(in, inLen, out, outLen uint64) *[shm.NumArgs]uint64 {
		return &[shm.NumArgs]uint64{7, 1, in, inLen, out, outLen}
	}
	cases := []struct {
		a    *[shm.NumArgs]uint64
		want bool
	}{
		{args(0, 32, 32, 8), true},    // adjacent, output after
		{args(64, 32, 0, 8), true},    // output before
		{args(0, 32, 31, 8), false},   // last input byte is the first output byte
		{args(0, 32, 0, 8), false},    // in place
		{args(8, 32, 0, 16), false},   // output overlaps the start
		{args(0, 320, 100, 8), false}, // output inside the input
	}
	for i, c := range cases {
		if got := s.leaveInArena(sm, c.a); got != c.want {
			t.Errorf("case %d %v: %v, want %v", i, c.a[2:], got, c.want)
		}
	}
	a := args(0, 32, 32, 8)
	s.dma = false
	if s.leaveInArena(sm, a) {
		t.Error("left in an unregistered arena")
	}
	s.dma = true
	sm.current.Store(&modelVersion{m: WithGPU(base, func(in, out []byte, n int) error { return nil })})
	if s.leaveInArena(sm, a) {
		t.Error("left in the arena for a GPU path without runs")
	}
	sm.current.Store(&modelVersion{m: runs})
	srv.cfg.GPU = nil
	if s.leaveInArena(sm, a) {
		t.Error("left in the arena without a GPU")
	}
}
