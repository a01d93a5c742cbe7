package features

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks compare the registry with a baseline doing the same work: a
// sync.Mutex-protected map[key]*ring of fixed-size records. To keep the
// ratio meaningful on a shared, noisy machine, each benchmark interleaves
// the two in rounds of chunkOps operations per goroutine (baseline round,
// registry round, ...) and reports, from the same run:
//
//	mutex-ns/op, registry-ns/op    wall time per operation, all goroutines
//	mutex-ops/s/core, registry-ops/s/core
//	                               operations per second / goroutines
//	x-vs-mutex                     mutex time / registry time (> 1: faster)
//
// One goroutine per GOMAXPROCS (set with -cpu):
//
//	go test -run '^$' -bench . -cpu 1,2 ./features/

const (
	benchHistory = 16
	benchWindow  = 8
	benchKeys    = 64
	benchWords   = 4 // 32-byte payload
	chunkOps     = 4096
)

type mutexRing struct {
	buf []byte
	n   uint64
}

type mutexMap struct {
	mu sync.Mutex
	m  map[uint64]*mutexRing
	rs int
}

func newMutexMap(rs int) *mutexMap { return &mutexMap{m: map[uint64]*mutexRing{}, rs: rs} }

func (mm *mutexMap) record(key uint64, payload []byte) {
	mm.mu.Lock()
	r := mm.m[key]
	if r == nil {
		r = &mutexRing{buf: make([]byte, benchHistory*mm.rs)}
		mm.m[key] = r
	}
	i := int(r.n%benchHistory) * mm.rs
	copy(r.buf[i:i+mm.rs], payload)
	r.n++
	mm.mu.Unlock()
}

func (mm *mutexMap) window(key uint64, n int, dst []byte) int {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	r := mm.m[key]
	if r == nil {
		return 0
	}
	got := min(uint64(n), r.n, benchHistory)
	for j := uint64(0); j < got; j++ {
		idx := r.n - got + j
		i := int(idx%benchHistory) * mm.rs
		copy(dst[int(j)*mm.rs:], r.buf[i:i+mm.rs])
	}
	return int(got)
}

// privateBuf returns a zeroed n-byte buffer with a cache line of padding on
// each side, so that two goroutines' buffers never share a line (false
// sharing would slow both implementations and hide their own costs).
func privateBuf(n int) []byte { return make([]byte, n+128)[64 : 64+n : 64+n] }

// worker sets up goroutine g and returns its round: operations i in
// [from, to), in a loop of its own (a call per operation through a func
// value would cost about as much as an owned record).
type worker func(g int) func(from, to uint64)

// spinBarrier lines up the benchmark's goroutines between rounds without
// parking them: a parked goroutine takes tens of microseconds to wake on a
// VM, which would stretch short rounds and hide the operations' own cost.
type spinBarrier struct{ arrived atomic.Int64 }

// wait blocks (spinning, yielding the P) until all procs goroutines have
// called it for the k-th time (k counts from 1 per goroutine).
func (b *spinBarrier) wait(procs int, k *int64) {
	*k++
	b.arrived.Add(1)
	for spins := 0; b.arrived.Load() < *k*int64(procs); spins++ {
		// Spin: a goroutine locked to its thread (pinToCPU) that yields
		// is handed back to its thread through the scheduler, which costs
		// microseconds. Yield only after a long wait (more goroutines
		// than CPUs).
		if spins > 1<<16 {
			runtime.Gosched()
		}
	}
}

// interleave runs b.N operations of each implementation, alternating rounds
// of chunkOps operations per goroutine, and reports both rates and their
// ratio. There is one goroutine per GOMAXPROCS, kept for the whole run and
// pinned to its own CPU (pinToCPU): unpinned, the goroutines that a
// contended mutex parks are often woken onto one CPU and the next rounds
// run there, two producers time-sharing a core. A round's
// time runs from the barrier that starts it to the barrier that ends it,
// so it includes waiting for the slowest goroutine.
func interleave(b *testing.B, unit string, base, reg worker) {
	procs := runtime.GOMAXPROCS(0)
	perG := uint64(max(b.N/procs, 1))
	var bar spinBarrier
	var tb, tr time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pinToCPU(g)
			ob, or := base(g), reg(g)
			var k int64
			for done := uint64(0); done < perG; done += chunkOps {
				n := min(chunkOps, perG-done)
				for impl, round := range []func(uint64, uint64){ob, or} {
					bar.wait(procs, &k)
					start := time.Now()
					round(done, done+n)
					bar.wait(procs, &k)
					if g == 0 {
						if d := time.Since(start); impl == 0 {
							tb += d
						} else {
							tr += d
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	ops := float64(perG) * float64(procs)
	b.ReportMetric(float64(tb.Nanoseconds())/ops, "mutex-ns/op")
	b.ReportMetric(float64(tr.Nanoseconds())/ops, "registry-ns/op")
	b.ReportMetric(ops/tb.Seconds()/float64(procs), "mutex-"+unit+"/s/core")
	b.ReportMetric(ops/tr.Seconds()/float64(procs), "registry-"+unit+"/s/core")
	b.ReportMetric(float64(tb)/float64(tr), "x-vs-mutex")
}

func benchRegistry(b *testing.B) (*Registry, SchemaID, *SchemaInfo) {
	r := newTestRegistry(b, Config{MaxKeys: benchKeys, ArenaBytes: 1 << 20})
	id, err := r.Register(Schema{Name: "bench", History: benchHistory, MaxKeys: benchKeys, Fields: []Field{{Name: "v", Type: U64, Count: benchWords}}})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := r.Schema(id)
	return r, id, s
}

// BenchmarkRecord: records of 32 bytes.
//
//	own-key:     each goroutine records its own key (a per-device producer)
//	shared-keys: every goroutine cycles over the same 64 keys
//	handle:      own key through a KeyHandle (no lookup per record)
//	owned:       own key through a Writer (Registry.Own: the goroutine is
//	             the key's only writer; no lookup, no atomic read-modify-write)
func BenchmarkRecord(b *testing.B) {
	for _, mode := range []string{"own-key", "shared-keys", "handle", "owned"} {
		b.Run(mode, func(b *testing.B) {
			keyFor := func(g int, i uint64) uint64 {
				if mode == "shared-keys" {
					return (uint64(g)*7 + i) % benchKeys
				}
				return uint64(g)
			}
			mm := newMutexMap(8 * benchWords)
			r, id, s := benchRegistry(b)
			var lost atomic.Uint64
			base := func(g int) func(uint64, uint64) {
				payload := privateBuf(8 * benchWords)
				return func(from, to uint64) {
					for i := from; i < to; i++ {
						binary.LittleEndian.PutUint64(payload, i)
						mm.record(keyFor(g, i), payload)
					}
				}
			}
			reg := func(g int) func(uint64, uint64) {
				payload := privateBuf(s.RecordSize())
				var failed uint64
				switch mode {
				case "owned":
					w, err := r.Own(id, uint64(g))
					if err != nil {
						b.Fatal(err)
					}
					return func(from, to uint64) {
						for i := from; i < to; i++ {
							binary.LittleEndian.PutUint64(payload, i)
							if w.Record(payload) != nil {
								failed++
							}
						}
						lost.Add(failed)
						failed = 0
					}
				case "handle":
					h, err := r.Key(id, uint64(g))
					if err != nil {
						b.Fatal(err)
					}
					return func(from, to uint64) {
						for i := from; i < to; i++ {
							binary.LittleEndian.PutUint64(payload, i)
							if h.Record(payload) != nil {
								failed++
							}
						}
						lost.Add(failed)
						failed = 0
					}
				}
				return func(from, to uint64) {
					for i := from; i < to; i++ {
						binary.LittleEndian.PutUint64(payload, i)
						if r.Record(id, keyFor(g, i), payload) != nil {
							failed++
						}
					}
					lost.Add(failed)
					failed = 0
				}
			}
			interleave(b, "records", base, reg)
			b.ReportMetric(float64(lost.Load())/float64(b.N), "lost/op")
		})
	}
}

// BenchmarkWindow: windowed reads (latest 8 of 16 records, 32 bytes each)
// over 64 keys by every goroutine; "with-writer" adds one goroutine
// recording into the same keys as fast as it can during the reads.
func BenchmarkWindow(b *testing.B) {
	for _, mode := range []string{"readers", "with-writer"} {
		b.Run(mode, func(b *testing.B) {
			mm := newMutexMap(8 * benchWords)
			r, id, s := benchRegistry(b)
			payload := s.NewRecord()
			for k := uint64(0); k < benchKeys; k++ {
				for range benchHistory {
					mm.record(k, payload)
					if err := r.Record(id, k, payload); err != nil {
						b.Fatal(err)
					}
				}
			}
			var which atomic.Int32 // 0: writer feeds the mutex map, 1: the registry
			var writes [2]uint64   // records the writer made during each side's rounds
			stop := startWriter(mode, func(i uint64) {
				if w := which.Load(); w == 0 {
					mm.record(i%benchKeys, payload)
					writes[0]++
				} else {
					_ = r.Record(id, i%benchKeys, payload)
					writes[1]++
				}
			})
			var short atomic.Uint64
			base := func(g int) func(uint64, uint64) {
				dst := make([]byte, benchWindow*mm.rs)
				return func(from, to uint64) {
					which.Store(0)
					for i := from; i < to; i++ {
						if mm.window((uint64(g)+i)%benchKeys, benchWindow, dst) != benchWindow {
							panic("short window")
						}
					}
				}
			}
			reg := func(g int) func(uint64, uint64) {
				var w Window
				return func(from, to uint64) {
					which.Store(1)
					var n uint64
					for i := from; i < to; i++ {
						if err := r.ReadWindow(id, (uint64(g)+i)%benchKeys, benchWindow, &w); err != nil {
							panic(err)
						}
						if w.Len() != benchWindow {
							n++
						}
					}
					short.Add(n)
				}
			}
			interleave(b, "windows", base, reg)
			stop() // the writer has returned: writes is safe to read
			b.ReportMetric(float64(short.Load())/float64(b.N), "short/op")
			if mode == "with-writer" {
				// How hard the writer pushed meanwhile (per window read).
				b.ReportMetric(float64(writes[0])/float64(b.N), "mutex-writes/window")
				b.ReportMetric(float64(writes[1])/float64(b.N), "registry-writes/window")
			}
		})
	}
}

// startWriter starts a background writer in "with-writer" mode and returns
// a function stopping it.
func startWriter(mode string, rec func(i uint64)) func() {
	if mode != "with-writer" {
		return func() {}
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(0); !stop.Load(); i++ {
			rec(i)
		}
	}()
	return func() { stop.Store(true); <-done }
}

// BenchmarkLinnOSFeatures measures building the 31-input LinnOS vector
// (one windowed read of the completion history and digit expansion).
func BenchmarkLinnOSFeatures(b *testing.B) {
	r := newTestRegistry(b, smallCfg())
	l, err := NewLinnOS(r, 16)
	if err != nil {
		b.Fatal(err)
	}
	for i := range uint32(8) {
		_ = l.RecordCompletion(1, LinnOSCompletion{LatencyUs: 100 * i, Pending: i})
	}
	dst := make([]int32, 0, LinnOSInputs)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = l.Features(1, 7, dst)
	}
}
