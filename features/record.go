package features

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Record protocol (see shm/PROTOCOL.md, "Feature registry area", "Records"): a writer that found the key
// live in generation g reserves record index n with a fetch-add on the
// slot's write index and checks that the slot is still live in g (so n was
// reserved inside generation g; a generation's indices start at its base
// index). It then claims ring record n mod ringLen by CAS-ing its sequence
// from an older complete value (even, < 2n+1) to 2n+1 (in progress),
// stores the payload words, and publishes 2n+2 (complete). If the record is
// still in progress (odd) or already newer, the writer gives up: it marks
// index n as a hole in the record's lost word, counts the sample in the
// slot's lost counter and returns ErrLost. Nothing waits.

func (r *Registry) recOff(s *SchemaInfo, p, n uint64) uint64 {
	return s.ringOff + (p*s.ringLen+(n&(s.ringLen-1)))*s.stride
}

// markHole records that index n will never be written (atomic max).
func (r *Registry) markHole(ro, n uint64) {
	lw := r.u64(ro + recLost)
	for m := atomic.LoadUint64(lw); m < n+1 && !atomic.CompareAndSwapUint64(lw, m, n+1); m = atomic.LoadUint64(lw) {
	}
}

// Record appends a sample for key to schema id. payload must be exactly the
// schema's RecordSize bytes (build it with SchemaInfo.NewRecord and the Set
// methods). A new key is inserted (ErrKeyCapacity when the schema is full).
// Record never blocks; under heavy contention on one key with a short
// history a sample may be lost (ErrLost, counted in Stats.Lost). A Record
// racing with DropKey of the same key lands either in the dropped
// generation or in a fresh one.
func (r *Registry) Record(id SchemaID, key uint64, payload []byte) error {
	s, err := r.schema(id)
	if err != nil {
		return fmt.Errorf("features: record: %w", err)
	}
	if len(payload) != s.recordSize {
		return fmt.Errorf("features: record: %w: schema %q: payload is %d bytes, want %d", ErrWidth, s.name, len(payload), s.recordSize)
	}
	if p, gen, ok := r.fastFind(s, key); ok {
		if done, err := r.recordAt(s, p, gen, key, payload); done {
			return err
		}
	}
	for try := 0; ; try++ {
		p, gen, err := r.findOrInsert(s, key)
		if err != nil {
			return fmt.Errorf("features: record: %w", err)
		}
		if done, err := r.recordAt(s, p, gen, key, payload); done {
			return err
		}
		if try == spinLimit {
			return fmt.Errorf("features: record: %w: key %#x of schema %q keeps being dropped", ErrBusy, key, s.name)
		}
	}
}

// recordAt records payload into slot p if it is still live in generation
// gen. done is false if the slot changed generation (the key was dropped):
// the caller looks the key up again.
func (r *Registry) recordAt(s *SchemaInfo, p, gen, key uint64, payload []byte) (done bool, err error) {
	so := r.slotOff(s, p)
	sw := r.u64(so + slotState)
	if st := atomic.LoadUint64(sw); st&stMask == stOwned && atomic.LoadUint64(r.u64(so+slotKey)) == key {
		return true, fmt.Errorf("features: record: %w: key %#x of schema %q (owner pid %d)", ErrOwned, key, s.name, atomic.LoadUint64(r.u64(so+slotOwner))>>32)
	}
	n := atomic.AddUint64(r.u64(so+slotWriteIdx), 1) - 1
	ro := r.recOff(s, p, n)
	if atomic.LoadUint64(sw) != gen<<genShift|stLive {
		r.markHole(ro, n)
		return false, nil
	}
	seq := r.u64(ro + recSeq)
	for {
		old := atomic.LoadUint64(seq)
		if old&1 != 0 || old >= 2*n+1 {
			r.markHole(ro, n)
			atomic.AddUint64(r.u64(so+slotLost), 1)
			return true, fmt.Errorf("features: record: %w: schema %q key %#x index %d", ErrLost, s.name, key, n)
		}
		if atomic.CompareAndSwapUint64(seq, old, 2*n+1) {
			break
		}
	}
	publishRecord(seq, 2*n+2, unsafe.Pointer(r.u64(ro+recHdrSize)), payloadPtr(payload), uintptr(len(payload)/8))
	return true, nil
}

// KeyHandle records into one key without looking it up every time (for a
// producer with a fixed set of keys, such as one per device). It stays
// valid across DropKey (it re-resolves the key). Safe for concurrent use.
type KeyHandle struct {
	r   *Registry
	s   *SchemaInfo
	key uint64
	pg  atomic.Uint64 // packSlot(slot, generation)
}

// Key returns a handle for recording samples of key in schema id, inserting
// the key if needed.
func (r *Registry) Key(id SchemaID, key uint64) (*KeyHandle, error) {
	s, err := r.schema(id)
	if err != nil {
		return nil, fmt.Errorf("features: key: %w", err)
	}
	h := &KeyHandle{r: r, s: s, key: key}
	if err := h.resolve(); err != nil {
		return nil, err
	}
	return h, nil
}

// packSlot packs a slot index (< 2^24) and a generation (< 2^40) for
// KeyHandle; a generation beyond 2^40 just makes the handle re-resolve.
func packSlot(p, gen uint64) uint64 { return p<<40 | gen&(1<<40-1) }

func (h *KeyHandle) resolve() error {
	p, gen, err := h.r.findOrInsert(h.s, h.key)
	if err != nil {
		return fmt.Errorf("features: key %#x: %w", h.key, err)
	}
	h.pg.Store(packSlot(p, gen))
	return nil
}

// Record appends a sample (RecordSize bytes) for the handle's key; see
// Registry.Record.
func (h *KeyHandle) Record(payload []byte) error {
	s := h.s
	if len(payload) != s.recordSize {
		return fmt.Errorf("features: record: %w: schema %q: payload is %d bytes, want %d", ErrWidth, s.name, len(payload), s.recordSize)
	}
	for try := 0; ; try++ {
		pg := h.pg.Load()
		p := pg >> 40
		st := atomic.LoadUint64(h.r.u64(h.r.slotOff(s, p) + slotState))
		gen := st >> genShift
		if t := st & stMask; (t == stLive || t == stOwned) && gen&(1<<40-1) == pg&(1<<40-1) {
			// (recordAt reports ErrOwned for an owned key.)
			if done, err := h.r.recordAt(s, p, gen, h.key, payload); done {
				return err
			}
		}
		if try == spinLimit {
			return fmt.Errorf("features: record: %w: key %#x of schema %q keeps being dropped", ErrBusy, h.key, s.name)
		}
		if err := h.resolve(); err != nil {
			return fmt.Errorf("features: record: %w", err)
		}
	}
}

// Results of readRec.
const (
	rdOK      = iota // dst holds the record
	rdNewer          // overwritten (before or during the copy) by a newer index: n is gone
	rdHole           // n will never be readable: its writer gave up or abandoned it
	rdPending        // reserved but not complete yet (a writer is at work)
)

// readRec copies record index n of slot p into dst (len RecordSize) if it
// is complete.
func (r *Registry) readRec(s *SchemaInfo, p, n uint64, dst []byte) int {
	ro := r.recOff(s, p, n)
	seq := r.u64(ro + recSeq)
	want := 2*n + 2
	s1 := atomic.LoadUint64(seq)
	if s1 != want {
		if s1 > want {
			return rdNewer
		}
		if s1 != want-1 && atomic.LoadUint64(r.u64(ro+recLost)) >= n+1 {
			return rdHole
		}
		return rdPending
	}
	copyWords(dst, unsafe.Pointer(r.u64(ro+recHdrSize)))
	if atomic.LoadUint64(seq) != want {
		return rdNewer
	}
	return rdOK
}

// copyWords copies len(dst) bytes (a multiple of 8) from the area at src
// with atomic 8-byte loads into dst (private memory; the layout and the
// machine are little-endian, so the words are stored as they are).
func copyWords(dst []byte, src unsafe.Pointer) {
	if len(dst) < 8 {
		return
	}
	d := unsafe.Pointer(unsafe.SliceData(dst))
	for i := 0; i+8 <= len(dst); i += 8 {
		*(*uint64)(unsafe.Add(d, i)) = atomic.LoadUint64((*uint64)(unsafe.Add(src, i)))
	}
}

// slotSpan returns a consistent (state, key, base, end) of slot p: all
// read while the state word did not change. ok is false if it changed.
func (r *Registry) slotSpan(s *SchemaInfo, p uint64) (st, key, base, end uint64, ok bool) {
	so := r.slotOff(s, p)
	sw := r.u64(so + slotState)
	st = atomic.LoadUint64(sw)
	key = atomic.LoadUint64(r.u64(so + slotKey))
	base = atomic.LoadUint64(r.u64(so + slotBaseIdx))
	end = atomic.LoadUint64(r.u64(so + slotWriteIdx))
	return st, key, base, end, atomic.LoadUint64(sw) == st
}

// Window is the result of ReadWindow: up to N records of one key, oldest
// first. Reuse a Window across calls to avoid allocation.
type Window struct {
	// Key is the key read.
	Key uint64
	// Index holds the records' free-running indices, strictly increasing.
	Index []uint64
	// Data holds the payloads back to back, RecordSize bytes each.
	Data       []byte
	recordSize int
}

// Len returns the number of records in the window.
func (w *Window) Len() int { return len(w.Index) }

// Record returns the payload of record i (0 = oldest).
func (w *Window) Record(i int) []byte {
	return w.Data[i*w.recordSize : (i+1)*w.recordSize : (i+1)*w.recordSize]
}

// windowRetries is how often ReadWindow restarts after a record was
// overwritten during the read before returning the shorter window it has.
const windowRetries = 8

// ReadWindow fills w with the latest n (1..History) complete records of key
// in schema id, oldest first. Every returned record was complete and
// unchanged while it was copied and records are in strictly increasing
// index order (reservation order); indices that were in progress or lost
// when the reader passed them are skipped. Fewer than n records are
// returned if the key has fewer, or if writers keep overwriting the oldest
// records during the read (after a few restarts the newest consistent
// suffix is returned).
func (r *Registry) ReadWindow(id SchemaID, key uint64, n int, w *Window) error {
	s, err := r.schema(id)
	if err != nil {
		return fmt.Errorf("features: read window: %w", err)
	}
	if n < 1 || n > s.history {
		return fmt.Errorf("features: read window: %w: n = %d, schema %q keeps 1..%d", ErrWindow, n, s.name, s.history)
	}
	for try := 0; ; try++ {
		p, gen, err := r.find(s, key)
		if err != nil {
			return fmt.Errorf("features: read window: %w", err)
		}
		if r.readWindow(s, p, gen, key, n, w) {
			return nil
		}
		if try == spinLimit {
			return fmt.Errorf("features: read window: %w: key %#x of schema %q keeps being dropped", ErrBusy, key, s.name)
		}
	}
}

// readWindow reads the window of slot p in generation gen; false if the
// slot left that generation before the read started.
func (r *Registry) readWindow(s *SchemaInfo, p, gen, key uint64, n int, w *Window) bool {
	rs := s.recordSize
	w.Key, w.recordSize = key, rs
	if cap(w.Data) < n*rs {
		w.Data = make([]byte, n*rs)
	}
	if cap(w.Index) < n {
		w.Index = make([]uint64, n)
	}
	var got int
	for try := 0; try <= windowRetries; try++ {
		w.Data, w.Index = w.Data[:n*rs], w.Index[:n]
		st, _, lo, end, ok := r.slotSpan(s, p)
		if t := st & stMask; !ok || st>>genShift != gen || (t != stLive && t != stOwned) {
			return false
		}
		if end > s.ringLen && end-s.ringLen > lo {
			lo = end - s.ringLen
		}
		torn := false
		got = 0
		// Fill from the back (newest at n-1) so the result is oldest first.
		ring := unsafe.Add(r.base, s.ringOff+p*s.ringLen*s.stride)
		mask := s.ringLen - 1
		for i := end; i > lo && got < n; {
			i--
			slot := n - 1 - got
			rec := unsafe.Add(ring, (i&mask)*s.stride)
			seq := (*uint64)(rec)
			want := 2*i + 2
			if s1 := atomic.LoadUint64(seq); s1 != want {
				if s1 > want {
					torn = true
					break
				}
				continue // in progress or a hole
			}
			copyWords(w.Data[slot*rs:(slot+1)*rs], unsafe.Add(rec, recHdrSize))
			if atomic.LoadUint64(seq) != want {
				torn = true
				break
			}
			w.Index[slot] = i
			got++
		}
		if !torn || got == n {
			break
		}
	}
	if got < n { // move the newest got records to the front
		copy(w.Data, w.Data[(n-got)*rs:n*rs])
		copy(w.Index, w.Index[n-got:n])
	}
	w.Data, w.Index = w.Data[:got*rs], w.Index[:got]
	return true
}
