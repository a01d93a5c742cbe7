package features

import (
	"encoding/binary"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// fuzzCfg keeps fuzz inputs small.
var fuzzCfg = Config{MaxSchemas: 2, MaxKeys: 4, MaxHistory: 4, MaxRecordBytes: 32, ArenaBytes: 2048}

// fuzzSeed returns a valid registry image with one schema and a few
// records, for the fuzzer to mutate.
func fuzzSeed(tb testing.TB, records int) []byte {
	r := newTestRegistry(tb, fuzzCfg)
	id, err := r.Register(Schema{Name: "seed", History: 3, MaxKeys: 3, Fields: []Field{{Name: "a", Type: U16, Count: 3}, {Name: "b", Type: F64}}})
	if err != nil {
		tb.Fatal(err)
	}
	s, _ := r.Schema(id)
	for i := range records {
		rec := s.NewRecord()
		_ = s.SetUint(rec, 0, i%3, uint64(i))
		if err := r.Record(id, uint64(i%2), rec); err != nil {
			tb.Fatal(err)
		}
	}
	return append([]byte(nil), r.mem[:r.size]...)
}

// fuzzSeedOwned is fuzzSeed with key 0 owned (by pid, as Own records it)
// after a few owned records.
func fuzzSeedOwned(tb testing.TB, pid int) []byte {
	r, err := Attach(aligned(fuzzSeed(tb, 7)))
	if err != nil {
		tb.Fatal(err)
	}
	s, _ := r.Schema(0)
	w, err := r.Own(0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for range 5 {
		if err := w.Record(s.NewRecord()); err != nil {
			tb.Fatal(err)
		}
	}
	so := r.slotOff(s, w.p)
	atomic.StoreUint64(r.u64(so+slotOwner), ownerToken(pid, w.st>>genShift))
	return append([]byte(nil), r.mem[:r.size]...)
}

// aligned copies data into 8-byte-aligned memory.
func aligned(data []byte) []byte {
	if len(data) == 0 {
		return nil
	}
	words := make([]uint64, (len(data)+7)/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(data))
	copy(b, data)
	return b
}

// exercise runs every read and write path on an attached registry; the
// memory may be arbitrarily corrupt, so only panics (and out-of-bounds
// accesses, which panic or fault) are failures.
func exercise(r *Registry) {
	schemas, _ := r.Schemas()
	for _, s := range schemas {
		keys, _ := r.Keys(s.ID())
		var w Window
		for _, k := range keys {
			_ = r.ReadWindow(s.ID(), k, s.History(), &w)
			for i := 0; i < w.Len(); i++ {
				_ = w.Record(i)
			}
			_, _ = r.Stats(s.ID(), k)
		}
		if d, err := r.NewDrainer(s.ID(), false); err == nil {
			var b Batch
			for range 3 {
				_ = d.Drain(8, &b)
			}
		}
		_ = r.Record(s.ID(), 99, s.NewRecord())
		_ = r.Record(s.ID(), 0, s.NewRecord())
		_ = r.ReadWindow(s.ID(), 0, 1, &w)
		if v, err := r.CompileVector([]VectorItem{{Schema: s.ID(), Field: s.Fields()[0].Name, Digits: 3}}); err == nil {
			_, _ = v.Build(0, nil, nil)
		}
		for _, k := range []uint64{0, 2} { // 0: owned in some seeds (takeover)
			if w, err := r.Own(s.ID(), k); err == nil {
				for range 6 {
					_ = w.Record(s.NewRecord())
				}
				_ = w.Close()
			}
		}
		_ = r.DropKey(s.ID(), 1)
	}
	_, _ = r.Lookup("seed")
	_, _ = r.Register(Schema{Name: "new", History: 2, MaxKeys: 2, Fields: []Field{{Name: "x", Type: U8}}})
}

func FuzzAttach(f *testing.F) {
	defer func(a, b, c time.Duration) { regLockWait, ownerTokenWait, claimWait = a, b, c }(regLockWait, ownerTokenWait, claimWait)
	regLockWait = time.Millisecond    // corrupt images often hold a stale registration lock
	ownerTokenWait = time.Millisecond // and owned slots without a valid owner token
	claimWait = time.Millisecond      // and slots stuck mid-insertion
	f.Add(fuzzSeed(f, 0))
	f.Add(fuzzSeed(f, 7))
	f.Add(fuzzSeedOwned(f, os.Getpid())) // owned by a live process
	f.Add(fuzzSeedOwned(f, 1<<30))       // owned by a pid that does not exist
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := aligned(data)
		r, err := Attach(mem)
		if err != nil {
			return
		}
		if uint64(r.Size()) > uint64(len(mem)) {
			t.Fatalf("attached size %d > area %d", r.Size(), len(mem))
		}
		exercise(r)
	})
}

// TestAttachRejectsCorruptHeaders flips each header field of a valid image
// to an out-of-range value and checks Attach refuses it.
func TestAttachRejectsCorruptHeaders(t *testing.T) {
	good := fuzzSeed(t, 3)
	if _, err := Attach(aligned(good)); err != nil {
		t.Fatalf("valid image: %v", err)
	}
	le := binary.LittleEndian
	cases := map[string]func(b []byte){
		"magic":        func(b []byte) { b[0] ^= 1 },
		"version":      func(b []byte) { le.PutUint32(b[hdrVersion:], Version+1) },
		"old version":  func(b []byte) { le.PutUint32(b[hdrVersion:], Version-1) },
		"header size":  func(b []byte) { le.PutUint32(b[hdrHeaderSize:], 64) },
		"total size":   func(b []byte) { le.PutUint64(b[hdrTotalSize:], uint64(len(b))+1) },
		"tiny total":   func(b []byte) { le.PutUint64(b[hdrTotalSize:], 8) },
		"max schemas":  func(b []byte) { le.PutUint32(b[hdrMaxSchemas:], 0) },
		"huge schemas": func(b []byte) { le.PutUint32(b[hdrMaxSchemas:], limitSchemas) },
		"max fields":   func(b []byte) { le.PutUint32(b[hdrMaxFields:], 8) },
		"max keys":     func(b []byte) { le.PutUint32(b[hdrMaxKeys:], 0) },
		"max history":  func(b []byte) { le.PutUint32(b[hdrMaxHistory:], limitHistory+1) },
		"max record":   func(b []byte) { le.PutUint32(b[hdrMaxRecord:], 0) },
		"entry size":   func(b []byte) { le.PutUint32(b[hdrSchemaEntrySize:], 64) },
		"table off":    func(b []byte) { le.PutUint64(b[hdrSchemaTableOff:], 64) },
		"table far":    func(b []byte) { le.PutUint64(b[hdrSchemaTableOff:], 1<<62) },
		"arena off":    func(b []byte) { le.PutUint64(b[hdrArenaOff:], 1<<63) },
		"arena size":   func(b []byte) { le.PutUint64(b[hdrArenaSize:], ^uint64(0)) },
		"arena used":   func(b []byte) { le.PutUint64(b[hdrArenaUsed:], 1<<40) },
		"count":        func(b []byte) { le.PutUint32(b[hdrSchemaCount:], 9) },
		"truncated":    nil,
	}
	for name, mutate := range cases {
		b := append([]byte(nil), good...)
		if mutate == nil {
			b = b[:len(b)-8]
		} else {
			mutate(b)
		}
		if _, err := Attach(aligned(b)); err == nil {
			t.Errorf("%s: Attach accepted a corrupt header", name)
		}
	}
	if _, err := Attach(aligned(good[:HeaderSize-1])); err == nil {
		t.Error("short area accepted")
	}
	// Corrupt schema entries are reported, not used.
	entryCases := map[string]func(b []byte){
		"record size": func(b []byte) { le.PutUint32(b[HeaderSize+schRecordSize:], 12) },
		"ring len":    func(b []byte) { le.PutUint32(b[HeaderSize+schRingLen:], 3) },
		"table size":  func(b []byte) { le.PutUint32(b[HeaderSize+schTableSize:], 1<<30) },
		"table off":   func(b []byte) { le.PutUint64(b[HeaderSize+schKeyTableOff:], 1<<63) },
		"ring off":    func(b []byte) { le.PutUint64(b[HeaderSize+schRingOff:], uint64(len(good))-8) },
		"field type":  func(b []byte) { b[HeaderSize+schFields+fdType] = 0 },
		"field off":   func(b []byte) { le.PutUint32(b[HeaderSize+schFields+fdOffset:], 30) },
		"field count": func(b []byte) { le.PutUint16(b[HeaderSize+schFields+fdCount:], 900) },
		"name":        func(b []byte) { b[HeaderSize+schName] = 0 },
		"id":          func(b []byte) { le.PutUint32(b[HeaderSize+schID:], 1) },
		"nfields":     func(b []byte) { le.PutUint32(b[HeaderSize+schNFields:], 17) },
	}
	for name, mutate := range entryCases {
		b := append([]byte(nil), good...)
		mutate(b)
		r, err := Attach(aligned(b))
		if err != nil {
			t.Fatalf("%s: header rejected: %v", name, err)
		}
		if _, err := r.Schema(0); err == nil {
			t.Errorf("%s: corrupt schema entry accepted", name)
		}
		exercise(r)
	}
}
