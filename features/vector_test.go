package features

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestLinnOSVector(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	l, err := NewLinnOS(r, 8)
	if err != nil {
		t.Fatal(err)
	}
	const dev = 0x800010 // major 8, minor 16
	got, err := l.Features(dev, 42, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int32, LinnOSInputs)
	want[13], want[14] = 4, 2 // pending now, after the (empty) history pending counts
	if !slices.Equal(got, want) {
		t.Fatalf("no history: %v, want %v", got, want)
	}
	pend := []uint32{5, 12, 999, 1500, 7}
	lats := []uint32{100, 25, 12345, 9999, 3}
	for i := range pend {
		if err := l.RecordArrival(dev, pend[i]); err != nil { // not part of the vector
			t.Fatal(err)
		}
		if err := l.RecordCompletion(dev, LinnOSCompletion{LatencyUs: lats[i], Pending: pend[i], ArriveSeq: uint32(i), DoneSeq: uint32(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err = l.Features(dev, 1234, got)
	if err != nil {
		t.Fatal(err)
	}
	want = []int32{
		0, 1, 2, 9, 9, 9, 9, 9, 9, 0, 0, 7, // pending at the last 4 reads' arrivals, oldest first: 12 999 1500→999 7
		9, 9, 9, // current pending 1234 clamped to 999
		0, 0, 2, 5, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 3, // their latencies: 25 12345→9999 9999 3
	}
	if !slices.Equal(got, want) {
		t.Fatalf("features\n got %v\nwant %v", got, want)
	}
	// Another device has its own (empty) history; partial history is
	// zero-filled on the old side.
	if err := l.RecordCompletion(dev+1, LinnOSCompletion{LatencyUs: 3, Pending: 42}); err != nil {
		t.Fatal(err)
	}
	got, _ = l.Features(dev+1, 0, got)
	want = make([]int32, LinnOSInputs)
	want[10], want[11], want[30] = 4, 2, 3
	if !slices.Equal(got, want) {
		t.Fatalf("partial history: %v, want %v", got, want)
	}
	// An owned device records the same history as the shared path.
	od, err := l.Own(dev + 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pend {
		if err := od.RecordArrival(pend[i]); err != nil {
			t.Fatal(err)
		}
		if err := od.RecordCompletion(LinnOSCompletion{LatencyUs: lats[i], Pending: pend[i], ArriveSeq: uint32(i), DoneSeq: uint32(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.RecordArrival(dev+2, 1); !errors.Is(err, ErrOwned) {
		t.Fatalf("shared record of an owned device: %v", err)
	}
	owned, _ := l.Features(dev+2, 1234, nil)
	shared, _ := l.Features(dev, 1234, nil)
	if !slices.Equal(owned, shared) {
		t.Fatalf("owned device features %v, shared %v", owned, shared)
	}
	if err := od.Drop(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Keys(l.Arrivals()); err != nil {
		t.Fatal(err)
	}
	if od2, err := l.Own(dev + 2); err != nil {
		t.Fatalf("own after drop: %v", err)
	} else if err := od2.Close(); err != nil {
		t.Fatal(err)
	}
	// A second NewLinnOS (e.g. another process) attaches to the same schemas.
	l2, err := NewLinnOS(r, 8)
	if err != nil || l2.Arrivals() != l.Arrivals() || l2.Completions() != l.Completions() {
		t.Fatalf("second NewLinnOS: %v", err)
	}
	// An incompatible schema under the LinnOS name is refused.
	r2 := newTestRegistry(t, smallCfg())
	if _, err := r2.Register(Schema{Name: LinnOSArrivalSchema, History: 4, MaxKeys: 4, Fields: []Field{{Name: "pending", Type: U64}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLinnOS(r2, 4); !errors.Is(err, ErrSchema) {
		t.Fatalf("incompatible: %v", err)
	}
	// So is a completion schema of the old one-field layout.
	r3 := newTestRegistry(t, smallCfg())
	if _, err := r3.Register(Schema{Name: LinnOSCompletionSchema, History: 16, MaxKeys: 4, Fields: []Field{{Name: "latency_us", Type: U32}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLinnOS(r3, 4); !errors.Is(err, ErrSchema) {
		t.Fatalf("old completion layout: %v", err)
	}
}

// TestLinnOSCompletionCodec round-trips a completion record and checks
// its byte layout (the C producers write the same five u32 and padding).
func TestLinnOSCompletionCodec(t *testing.T) {
	c := LinnOSCompletion{LatencyUs: 0x01020304, Pending: 5, ArriveSeq: 0xfffffffe, DoneSeq: 7, Stale: 3}
	var b [LinnOSCompletionBytes]byte
	for i := range b {
		b[i] = 0xaa // the padding is written too
	}
	c.Encode(b[:])
	want := []byte{4, 3, 2, 1, 5, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 7, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}
	if !slices.Equal(b[:], want) {
		t.Fatalf("encoded %v, want %v", b, want)
	}
	got, err := DecodeLinnOSCompletion(b[:])
	if err != nil || got != c {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if _, err := DecodeLinnOSCompletion(b[:23]); !errors.Is(err, ErrWidth) {
		t.Fatalf("short record: %v", err)
	}
}

func TestVectorSpec(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "m", History: 3, MaxKeys: 4, Fields: []Field{
		{Name: "a", Type: I32, Count: 2}, {Name: "f", Type: F32}, {Name: "big", Type: U64},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	rec := s.NewRecord()
	for i, vals := range [][3]int64{{-5, 7, 0}, {100, -2, 1}} {
		_ = s.SetInt(rec, 0, 0, vals[0])
		_ = s.SetInt(rec, 0, 1, vals[1])
		_ = s.SetFloat(rec, 1, 0, 2.75*float64(i+1))
		_ = s.SetUint(rec, 2, 0, math.MaxUint64-uint64(vals[2]))
		if err := r.Record(id, 1, rec); err != nil {
			t.Fatal(err)
		}
	}
	v, err := r.CompileVector([]VectorItem{
		{Schema: id, Field: "a", Elem: 1, Age: 1},            // age 1 = the older record: 7
		{Schema: id, Field: "a", Elem: 0, Age: 0},            // 100
		{Schema: id, Field: "a", Elem: 0, Age: 1, Digits: 2}, // -5 clamped to 0 → 0 0
		{Schema: id, Field: "f", Age: 0},                     // 5.5 → 5
		{Schema: id, Field: "big", Age: 0},                   // huge → MaxInt32
		{Schema: id, Field: "a", Age: 2},                     // no such sample → 0
		{FromInput: true, Input: 1, Digits: 4},               // 56 → 0 0 5 6
		{FromInput: true, Input: 0},                          // -9
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 12 || v.Inputs() != 2 {
		t.Fatalf("len %d inputs %d", v.Len(), v.Inputs())
	}
	got, err := v.Build(1, []int64{-9, 56}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{7, 100, 0, 0, 5, math.MaxInt32, 0, 0, 0, 5, 6, -9}
	if !slices.Equal(got, want) {
		t.Fatalf("vector %v, want %v", got, want)
	}
	if _, err := v.Build(1, []int64{1}, nil); !errors.Is(err, ErrWidth) {
		t.Fatalf("missing input: %v", err)
	}
	// Unknown key: all recorded values read as zero.
	if got, err := v.Build(77, []int64{0, 0}, nil); err != nil || slices.ContainsFunc(got, func(x int32) bool { return x != 0 }) {
		t.Fatalf("unknown key: %v %v", got, err)
	}
	bad := []struct {
		it   VectorItem
		want error
	}{
		{VectorItem{Schema: 5, Field: "a"}, ErrUnknownSchema},
		{VectorItem{Schema: id, Field: "zz"}, ErrWidth},
		{VectorItem{Schema: id, Field: "a", Elem: 2}, ErrWidth},
		{VectorItem{Schema: id, Field: "a", Age: 3}, ErrWindow},
		{VectorItem{Schema: id, Field: "a", Age: -1}, ErrWindow},
		{VectorItem{Schema: id, Field: "a", Digits: 10}, ErrWidth},
		{VectorItem{FromInput: true, Input: -1}, ErrWidth},
	}
	for _, b := range bad {
		if _, err := r.CompileVector([]VectorItem{b.it}); !errors.Is(err, b.want) {
			t.Errorf("%+v: err = %v, want %v", b.it, err, b.want)
		}
	}
	if _, err := r.CompileVector(nil); !errors.Is(err, ErrWindow) {
		t.Errorf("empty spec: %v", err)
	}
}

// TestLinnOSMatchesReference drives the registry-backed LinnOS features and
// a plain reference extractor (the LinnOS definition: a shift register of
// the last 4 completed reads' pending counts at arrival and latencies,
// zero-filled) with the same random event sequences on several devices and
// requires identical vectors.
func TestLinnOSMatchesReference(t *testing.T) {
	type ref struct{ pending, lat [4]int64 }
	digits := func(dst []int32, v int64, n int, maxv int64) []int32 {
		v = min(max(v, 0), maxv)
		for d := n - 1; d >= 0; d-- {
			p := int64(1)
			for range d {
				p *= 10
			}
			dst = append(dst, int32(v/p%10))
		}
		return dst
	}
	refFeatures := func(e *ref, pending int64) []int32 {
		var out []int32
		for _, p := range e.pending {
			out = digits(out, p, 3, 999)
		}
		out = digits(out, pending, 3, 999)
		for _, l := range e.lat {
			out = digits(out, l, 4, 9999)
		}
		return out
	}
	r := newTestRegistry(t, smallCfg())
	l, err := NewLinnOS(r, 4)
	if err != nil {
		t.Fatal(err)
	}
	refs := map[uint64]*ref{}
	rng := uint64(12345)
	next := func(n uint64) uint64 { rng = mix64(rng + 0x9e3779b97f4a7c15); return rng % n }
	var got []int32
	for step := 0; step < 3000; step++ {
		dev := next(4)
		e := refs[dev]
		if e == nil {
			e = &ref{}
			refs[dev] = e
		}
		switch next(2) {
		case 0: // arrival: predict, then record
			pending := int64(next(1500))
			if got, err = l.Features(dev, uint32(pending), got); err != nil {
				t.Fatal(err)
			}
			if want := refFeatures(e, pending); !slices.Equal(got, want) {
				t.Fatalf("step %d dev %d: got %v want %v", step, dev, got, want)
			}
			if err := l.RecordArrival(dev, uint32(pending)); err != nil {
				t.Fatal(err)
			}
		default: // a read completes
			pending, lat := int64(next(1500)), int64(next(20000))
			if err := l.RecordCompletion(dev, LinnOSCompletion{LatencyUs: uint32(lat), Pending: uint32(pending)}); err != nil {
				t.Fatal(err)
			}
			copy(e.pending[:], e.pending[1:])
			e.pending[3] = pending
			copy(e.lat[:], e.lat[1:])
			e.lat[3] = lat
		}
	}
}
