package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// Stress payload: writer, counter, key, 4 data words, checksum of the rest.
const stressWords = 8

func stressSchema() Schema {
	return Schema{Name: "stress", History: 8, MaxKeys: 8, Fields: []Field{
		{Name: "writer", Type: U64}, {Name: "counter", Type: U64}, {Name: "key", Type: U64},
		{Name: "data", Type: U64, Count: 4}, {Name: "sum", Type: U64},
	}}
}

func stressSum(w []uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, v := range w[:stressWords-1] {
		h = mix64(h ^ v)
	}
	return h
}

func makeStress(buf []byte, writer, counter, key uint64) {
	var w [stressWords]uint64
	w[0], w[1], w[2] = writer, counter, key
	for i := range 4 {
		w[3+i] = mix64(writer<<40 ^ counter<<8 ^ uint64(i))
	}
	w[7] = stressSum(w[:])
	for i, v := range w {
		binary.LittleEndian.PutUint64(buf[8*i:], v)
	}
}

// checkStress verifies one record's checksum and key.
func checkStress(rec []byte, key uint64) (writer, counter uint64, err error) {
	var w [stressWords]uint64
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(rec[8*i:])
	}
	if stressSum(w[:]) != w[7] {
		return 0, 0, fmt.Errorf("torn record: checksum mismatch %v", w)
	}
	if w[2] != key {
		return 0, 0, fmt.Errorf("record of key %#x read under key %#x", w[2], key)
	}
	return w[0], w[1], nil
}

// newStressRegistry returns a registry with the stress schema and a
// drainer of it from the beginning.
func newStressRegistry(t *testing.T) (*Registry, SchemaID, *SchemaInfo, *Drainer) {
	t.Helper()
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(stressSchema())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	dr, err := r.NewDrainer(id, false)
	if err != nil {
		t.Fatal(err)
	}
	return r, id, s, dr
}

// checkStressWindow checks every record of a window of key (checksum,
// key), that indices strictly increase, and that each writer's counters
// increase (no reordering).
func checkStressWindow(win *Window, key uint64) error {
	last := map[uint64]uint64{}
	for i := 0; i < win.Len(); i++ {
		wr, c, err := checkStress(win.Record(i), key)
		if err != nil {
			return err
		}
		if i > 0 && win.Index[i] <= win.Index[i-1] {
			return fmt.Errorf("window indices not increasing: %v", win.Index)
		}
		if c <= last[wr] {
			return fmt.Errorf("writer %d: counter %d after %d in one window (reordered)", wr, c, last[wr])
		}
		last[wr] = c
	}
	return nil
}

// TestStressNoTornOrReorderedWindows runs many writers (several per key, so
// the short rings wrap under concurrent writers), window readers and a
// drainer at once, and checks that no window holds a torn record, a record
// of another key, or records out of order, and that the drainer delivers
// each sample at most once and accounts for every sample.
func TestStressNoTornOrReorderedWindows(t *testing.T) {
	const (
		writers    = 8
		readers    = 4
		perWriter  = 6000
		nkeys      = 3
		minWindows = 3000 // windows checked while writers run
		minDrained = 500  // samples drained while writers run
	)
	r, id, s, dr := newStressRegistry(t)

	var (
		wg          sync.WaitGroup
		done        atomic.Bool
		ok, lost    atomic.Uint64
		windows     atomic.Uint64
		drainedLive atomic.Uint64
		errOnce     sync.Once
		firstErr    error
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }); done.Store(true) }

	var wwg sync.WaitGroup
	for w := range writers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			buf := s.NewRecord()
			// Write at least perWriter records, and keep writing until the
			// readers and the drainer have done enough work concurrently
			// (bounded, so a slow machine still finishes).
			for c := uint64(1); !done.Load(); c++ {
				if c > perWriter && ((windows.Load() >= minWindows && drainedLive.Load() >= minDrained) || c > 50*perWriter) {
					break
				}
				key := uint64(rng.IntN(nkeys)) * 0x1001
				makeStress(buf, uint64(w), c, key)
				switch err := r.Record(id, key, buf); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrLost):
					lost.Add(1)
				default:
					fail(err)
				}
			}
		}()
	}
	for rd := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var win Window
			rng := rand.New(rand.NewPCG(uint64(rd), 2))
			for !done.Load() {
				key := uint64(rng.IntN(nkeys)) * 0x1001
				err := r.ReadWindow(id, key, 1+rng.IntN(8), &win)
				if errors.Is(err, ErrUnknownKey) {
					continue
				}
				if err != nil {
					fail(err)
					return
				}
				windows.Add(1)
				if err := checkStressWindow(&win, key); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	// Drainer: every (key, index) at most once, per-writer counters per key
	// increasing.
	var delivered, dropped uint64
	drainErr := make(chan error, 1)
	go func() {
		seen := map[[2]uint64]bool{}
		last := map[[2]uint64]uint64{}
		var b Batch
		drainOnce := func() error {
			if err := dr.Drain(64, &b); err != nil {
				return err
			}
			dropped += b.Dropped
			for _, smp := range b.Samples {
				wr, c, err := checkStress(smp.Data, smp.Key)
				if err != nil {
					return fmt.Errorf("drain: %w", err)
				}
				k := [2]uint64{smp.Key, smp.Index}
				if seen[k] {
					return fmt.Errorf("drain: duplicate sample key %#x index %d", smp.Key, smp.Index)
				}
				seen[k] = true
				wk := [2]uint64{smp.Key, wr}
				if c <= last[wk] {
					return fmt.Errorf("drain: writer %d key %#x counter %d after %d", wr, smp.Key, c, last[wk])
				}
				last[wk] = c
				delivered++
			}
			if !done.Load() {
				drainedLive.Add(uint64(len(b.Samples)))
			}
			return nil
		}
		for !done.Load() {
			if err := drainOnce(); err != nil {
				drainErr <- err
				return
			}
		}
		// Writers are finished: drain what is left.
		for {
			if err := drainOnce(); err != nil {
				drainErr <- err
				return
			}
			if len(b.Samples) == 0 && b.Dropped == 0 {
				break
			}
		}
		drainErr <- nil
	}()

	wwg.Wait()
	done.Store(true)
	wg.Wait()
	if err := <-drainErr; err != nil {
		t.Fatal(err)
	}
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	total := ok.Load() + lost.Load()
	if total < writers*perWriter {
		t.Fatalf("writers did %d records, want >= %d", total, writers*perWriter)
	}
	var reserved, lostStat uint64
	for k := range uint64(nkeys) {
		st, err := r.Stats(id, k*0x1001)
		if err != nil {
			t.Fatal(err)
		}
		reserved += st.Recorded
		lostStat += st.Lost
	}
	if reserved != total || lostStat != lost.Load() {
		t.Fatalf("stats: reserved %d lost %d, writers saw %d records %d lost", reserved, lostStat, total, lost.Load())
	}
	if delivered+dropped != total {
		t.Fatalf("drainer delivered %d + dropped %d != %d recorded", delivered, dropped, total)
	}
	if windows.Load() == 0 || drainedLive.Load() == 0 {
		t.Fatalf("readers checked %d windows, drainer delivered %d while writers ran: test did nothing", windows.Load(), drainedLive.Load())
	}
	t.Logf("records %d (lost %d), windows checked %d, drained %d (%d while writing), dropped %d", total, lost.Load(), windows.Load(), delivered, drainedLive.Load(), dropped)
}

// TestStressConcurrentInsertAndDrop has many goroutines insert, record and
// drop a small set of keys at once: a key must never be live twice, and no
// window may ever hold a record of another key.
func TestStressConcurrentInsertAndDrop(t *testing.T) {
	const (
		workers = 8
		iters   = 3000
		nkeys   = 6
	)
	r := newTestRegistry(t, smallCfg())
	sc := stressSchema()
	sc.MaxKeys = 16
	id, err := r.Register(sc)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			buf := s.NewRecord()
			var win Window
			handles := map[uint64]*KeyHandle{}
			for c := uint64(1); c <= iters; c++ {
				key := uint64(rng.IntN(nkeys))<<32 | 7
				switch op := rng.IntN(10); {
				case op < 6:
					makeStress(buf, uint64(w), c, key)
					var err error
					if w%2 == 0 {
						err = r.Record(id, key, buf)
					} else if h := handles[key]; h != nil {
						err = h.Record(buf)
					} else {
						handles[key], err = r.Key(id, key)
					}
					if err != nil && !errors.Is(err, ErrLost) {
						errc <- err
						return
					}
				case op < 9:
					err := r.ReadWindow(id, key, 8, &win)
					if errors.Is(err, ErrUnknownKey) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					for i := 0; i < win.Len(); i++ {
						if _, _, err := checkStress(win.Record(i), key); err != nil {
							errc <- err
							return
						}
					}
				default:
					if err := r.DropKey(id, key); err != nil && !errors.Is(err, ErrUnknownKey) {
						errc <- err
						return
					}
				}
			}
		}()
	}
	// A drainer runs meanwhile: no sample twice, none under a wrong key,
	// and at the end every reserved index is delivered or counted.
	dr, err := r.NewDrainer(id, false)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var delivered, dropped uint64
	drainErr := make(chan error, 1)
	go func() {
		seen := map[[2]uint64]bool{}
		var b Batch
		for idle := false; !idle; {
			idle = stop.Load() // after writers stop, drain until empty
			if err := dr.Drain(32, &b); err != nil {
				drainErr <- err
				return
			}
			dropped += b.Dropped
			if len(b.Samples) > 0 || b.Dropped > 0 {
				idle = false
			}
			for _, smp := range b.Samples {
				wr, c, err := checkStress(smp.Data, smp.Key)
				if err != nil {
					drainErr <- fmt.Errorf("drain: %w", err)
					return
				}
				if seen[[2]uint64{wr, c}] {
					drainErr <- fmt.Errorf("drain: sample writer %d counter %d delivered twice", wr, c)
					return
				}
				seen[[2]uint64{wr, c}] = true
				delivered++
			}
		}
		drainErr <- nil
	}()
	wg.Wait()
	stop.Store(true)
	if err := <-drainErr; err != nil {
		t.Fatal(err)
	}
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var reserved uint64
	for p := uint64(0); p < s.tableSize; p++ {
		reserved += atomic.LoadUint64(r.u64(r.slotOff(s, p) + slotWriteIdx))
	}
	if delivered+dropped != reserved {
		t.Fatalf("drainer delivered %d + dropped %d != %d reserved indices", delivered, dropped, reserved)
	}
	t.Logf("reserved %d, drained %d, dropped %d", reserved, delivered, dropped)
	keys, err := r.Keys(id)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Fatalf("key %#x live twice: %v", k, keys)
		}
		seen[k] = true
	}
	if n := atomic.LoadUint32(r.u32(s.entryOff + schLiveKeys)); int(n) != len(keys) {
		t.Fatalf("live key count %d, table holds %d live keys", n, len(keys))
	}
}

// TestConcurrentInsertSameKey starts several goroutines that record a new
// key at the same instant: exactly one slot must end up holding it, with
// every sample in its history.
func TestConcurrentInsertSameKey(t *testing.T) {
	const workers = 6
	r := newTestRegistry(t, smallCfg())
	sc := stressSchema()
	sc.MaxKeys = 64
	id, err := r.Register(sc)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	for round := range uint64(60) {
		key := round * 0x10001
		var start, wg sync.WaitGroup
		start.Add(1)
		errs := make([]error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := s.NewRecord()
				makeStress(buf, uint64(w), 1, key)
				start.Wait()
				errs[w] = r.Record(id, key, buf)
			}()
		}
		start.Done()
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		keys, _ := r.Keys(id)
		n := 0
		for _, k := range keys {
			if k == key {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("round %d: key live in %d slots", round, n)
		}
		var win Window
		if err := r.ReadWindow(id, key, workers, &win); err != nil || win.Len() != workers {
			t.Fatalf("round %d: window has %d records (%v), want %d", round, win.Len(), err, workers)
		}
		if round%2 == 1 { // free slots so that claims also race on dead slots
			if err := r.DropKey(id, key); err != nil {
				t.Fatal(err)
			}
		}
	}
}
