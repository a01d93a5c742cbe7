package features

import (
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
)

func drainVals(t *testing.T, d *Drainer, max int) (vals []uint64, keys []uint64, dropped uint64) {
	t.Helper()
	var b Batch
	if err := d.Drain(max, &b); err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Samples {
		vals = append(vals, binary.LittleEndian.Uint64(s.Data))
		keys = append(keys, s.Key)
	}
	return vals, keys, b.Dropped
}

func TestDrainDeliversOnceAndCountsDrops(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "s", History: 8, MaxKeys: 4, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	d, err := r.NewDrainer(id, false)
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(1); k <= 3; k++ {
		for i := uint64(0); i < 5; i++ {
			if err := r.Record(id, k, u64rec(s, k*100+i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Small batches: everything exactly once, per key in order.
	var all []uint64
	for range 10 {
		v, _, dropped := drainVals(t, d, 4)
		if dropped != 0 {
			t.Fatalf("dropped %d", dropped)
		}
		if len(v) > 4 {
			t.Fatalf("batch of %d > max 4", len(v))
		}
		all = append(all, v...)
	}
	slices.Sort(all)
	want := []uint64{100, 101, 102, 103, 104, 200, 201, 202, 203, 204, 300, 301, 302, 303, 304}
	if !slices.Equal(all, want) {
		t.Fatalf("drained %v, want %v", all, want)
	}
	// A consumer that falls behind: 20 records into an 8-record ring.
	for i := uint64(0); i < 20; i++ {
		if err := r.Record(id, 2, u64rec(s, 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	v, k, dropped := drainVals(t, d, 100)
	if dropped != 12 || !slices.Equal(v, []uint64{1012, 1013, 1014, 1015, 1016, 1017, 1018, 1019}) {
		t.Fatalf("behind: vals %v dropped %d", v, dropped)
	}
	if slices.ContainsFunc(k, func(x uint64) bool { return x != 2 }) {
		t.Fatalf("keys %v", k)
	}
	if v, _, dropped := drainVals(t, d, 100); len(v) != 0 || dropped != 0 {
		t.Fatalf("idle drain: %v %d", v, dropped)
	}
	if err := d.Drain(0, &Batch{}); !errors.Is(err, ErrWindow) {
		t.Fatalf("max 0: %v", err)
	}
	// fromNow skips history without counting it.
	d2, err := r.NewDrainer(id, true)
	if err != nil {
		t.Fatal(err)
	}
	if v, _, dropped := drainVals(t, d2, 100); len(v) != 0 || dropped != 0 {
		t.Fatalf("fromNow first drain: %v %d", v, dropped)
	}
	if err := r.Record(id, 3, u64rec(s, 7)); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := drainVals(t, d2, 100); !slices.Equal(v, []uint64{7}) {
		t.Fatalf("fromNow: %v", v)
	}
	if _, err := r.NewDrainer(9, false); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("unknown schema: %v", err)
	}
}

func TestDrainAcrossDropAndReuse(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "one", History: 8, MaxKeys: 1, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	d, _ := r.NewDrainer(id, false)
	rec := func(k, v uint64) {
		t.Helper()
		if err := r.Record(id, k, u64rec(s, v)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint64(5) {
		rec(1, i)
	}
	if v, _, dr := drainVals(t, d, 100); len(v) != 5 || dr != 0 {
		t.Fatalf("first: %v %d", v, dr)
	}
	rec(1, 5)
	rec(1, 6)
	if err := r.DropKey(id, 1); err != nil {
		t.Fatal(err)
	}
	// Dropped generation, slot not reused yet: its tail is still delivered.
	if v, k, dr := drainVals(t, d, 1); !slices.Equal(v, []uint64{5}) || k[0] != 1 || dr != 0 {
		t.Fatalf("dead tail: %v %d", v, dr)
	}
	rec(1, 7) // same key again: fresh generation in the only slot
	rec(1, 8)
	// Value 6 of the old generation is gone with the reuse: counted.
	if v, _, dr := drainVals(t, d, 100); !slices.Equal(v, []uint64{7, 8}) || dr != 1 {
		t.Fatalf("after reuse: %v dropped %d", v, dr)
	}
	if err := r.DropKey(id, 1); err != nil {
		t.Fatal(err)
	}
	rec(2, 9)
	if v, k, dr := drainVals(t, d, 100); !slices.Equal(v, []uint64{9}) || k[0] != 2 || dr != 0 {
		t.Fatalf("new key in reused slot: %v %v %d", v, k, dr)
	}
}

// TestPendingAndLostRecords simulates a writer stalled in the middle of a
// record (sequence odd): readers skip it, the drainer waits for it, a
// writer that wraps onto it gives up with ErrLost instead of waiting, and
// the hole it leaves is counted, not delivered.
func TestPendingAndLostRecords(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "s", History: 4, MaxKeys: 2, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	d, _ := r.NewDrainer(id, false)
	rec := func(v uint64) error { return r.Record(id, 5, u64rec(s, v)) }
	if err := rec(10); err != nil { // index 0
		t.Fatal(err)
	}
	p, _, err := r.find(s, 5)
	if err != nil {
		t.Fatal(err)
	}
	so := r.slotOff(s, p)
	stall := func() (complete func(v uint64)) {
		n := atomic.AddUint64(r.u64(so+slotWriteIdx), 1) - 1
		ro := r.recOff(s, p, n)
		atomic.StoreUint64(r.u64(ro+recSeq), 2*n+1)
		return func(v uint64) {
			atomic.StoreUint64(r.u64(ro+recHdrSize), v)
			atomic.StoreUint64(r.u64(ro+recSeq), 2*n+2)
		}
	}
	var w Window
	window := func(wantVals, wantIdx []uint64) {
		t.Helper()
		if err := r.ReadWindow(id, 5, 4, &w); err != nil || !slices.Equal(windowVals(&w), wantVals) || !slices.Equal(w.Index, wantIdx) {
			t.Fatalf("window %v %v (%v), want %v %v", windowVals(&w), w.Index, err, wantVals, wantIdx)
		}
	}
	drain := func(wantVals []uint64, wantDropped uint64) {
		t.Helper()
		if v, _, dr := drainVals(t, d, 100); !slices.Equal(v, wantVals) || dr != wantDropped {
			t.Fatalf("drained %v dropped %d, want %v dropped %d", v, dr, wantVals, wantDropped)
		}
	}

	complete1 := stall() // index 1 in progress
	for _, v := range []uint64{12, 13} {
		if err := rec(v); err != nil {
			t.Fatal(err)
		}
	}
	window([]uint64{10, 12, 13}, []uint64{0, 2, 3}) // pending index skipped
	drain([]uint64{10}, 0)                          // waits at the pending index
	complete1(11)
	window([]uint64{10, 11, 12, 13}, []uint64{0, 1, 2, 3})
	drain([]uint64{11, 12, 13}, 0)

	stall() // index 4 (ring record 0) stalls for good
	for _, v := range []uint64{15, 16, 17} {
		if err := rec(v); err != nil {
			t.Fatal(err)
		}
	}
	// Index 8 wraps onto ring record 0, still in progress: lost, not waited for.
	if err := rec(18); !errors.Is(err, ErrLost) {
		t.Fatalf("wrap onto in-progress record: %v", err)
	}
	if st, _ := r.Stats(id, 5); st.Lost != 1 || st.Recorded != 9 {
		t.Fatalf("stats %+v", st)
	}
	window([]uint64{15, 16, 17}, []uint64{5, 6, 7})
	// The stalled index 4 fell out of the ring and index 8 is a hole: both
	// counted, 9 indices = 7 delivered + 2 dropped.
	drain([]uint64{15, 16, 17}, 2)
	drain(nil, 0)
}
