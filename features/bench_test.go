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

// worker is one goroutine's loop body: op(i) for i in [from, to).
type worker func(g int) func(i uint64)

// runRound runs n operations on each of procs goroutines and returns the
// wall time.
func runRound(procs int, from, n uint64, mk []func(i uint64)) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < procs; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := mk[g]
			for i := from; i < from+n; i++ {
				op(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// interleave runs b.N operations of each implementation, alternating rounds,
// and reports both rates and their ratio.
func interleave(b *testing.B, unit string, base, reg worker) {
	procs := runtime.GOMAXPROCS(0)
	mb, mr := make([]func(uint64), procs), make([]func(uint64), procs)
	for g := range procs {
		mb[g], mr[g] = base(g), reg(g)
	}
	perG := uint64(max(b.N/procs, 1))
	var tb, tr time.Duration
	b.ResetTimer()
	for done := uint64(0); done < perG; done += chunkOps {
		n := min(chunkOps, perG-done)
		tb += runRound(procs, done, n, mb)
		tr += runRound(procs, done, n, mr)
	}
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
func BenchmarkRecord(b *testing.B) {
	for _, mode := range []string{"own-key", "shared-keys", "handle"} {
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
			base := func(g int) func(uint64) {
				payload := make([]byte, 8*benchWords)
				return func(i uint64) {
					binary.LittleEndian.PutUint64(payload, i)
					mm.record(keyFor(g, i), payload)
				}
			}
			reg := func(g int) func(uint64) {
				payload := s.NewRecord()
				if mode == "handle" {
					h, err := r.Key(id, uint64(g))
					if err != nil {
						b.Fatal(err)
					}
					return func(i uint64) {
						binary.LittleEndian.PutUint64(payload, i)
						if h.Record(payload) != nil {
							lost.Add(1)
						}
					}
				}
				return func(i uint64) {
					binary.LittleEndian.PutUint64(payload, i)
					if r.Record(id, keyFor(g, i), payload) != nil {
						lost.Add(1)
					}
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
			stop := startWriter(mode, func(i uint64) {
				if which.Load() == 0 {
					mm.record(i%benchKeys, payload)
				} else {
					_ = r.Record(id, i%benchKeys, payload)
				}
			})
			var short atomic.Uint64
			base := func(g int) func(uint64) {
				dst := make([]byte, benchWindow*mm.rs)
				return func(i uint64) {
					which.Store(0)
					if mm.window((uint64(g)+i)%benchKeys, benchWindow, dst) != benchWindow {
						panic("short window")
					}
				}
			}
			reg := func(g int) func(uint64) {
				var w Window
				return func(i uint64) {
					which.Store(1)
					if err := r.ReadWindow(id, (uint64(g)+i)%benchKeys, benchWindow, &w); err != nil {
						panic(err)
					}
					if w.Len() != benchWindow {
						short.Add(1)
					}
				}
			}
			interleave(b, "windows", base, reg)
			stop()
			b.ReportMetric(float64(short.Load())/float64(b.N), "short/op")
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
// (two windowed reads and digit expansion).
func BenchmarkLinnOSFeatures(b *testing.B) {
	r := newTestRegistry(b, smallCfg())
	l, err := NewLinnOS(r, 16)
	if err != nil {
		b.Fatal(err)
	}
	for i := range uint32(8) {
		_ = l.RecordArrival(1, i)
		_ = l.RecordCompletion(1, 100*i)
	}
	dst := make([]int32, 0, LinnOSInputs)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = l.Features(1, 7, dst)
	}
}
