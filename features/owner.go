package features

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

// Owned keys (shm/PROTOCOL.md, "Owned keys"). A producer that is the only
// writer of a key (one per device, one per CPU) can own it: Registry.Own
// moves the key's slot from live to owned, and from then on the owner alone
// counts record indices (its own counter, published to readers with a
// plain store of the slot's write index, instead of a fetch-add) and
// writes records (plain stores instead of a CAS on the record's sequence,
// once it has claimed every ring record). On x86-64 an owned write then
// has no locked instruction at all. Readers, drainers and the key's history are the same
// as for a live key; other writers get ErrOwned.
//
// Safety argument, in short:
//   - A writer of the shared protocol checks the slot state before and
//     after its fetch-add, so once the slot is owned it reserves nothing it
//     writes; a fetch-add that slips in is marked a hole and never written.
//   - Writers that passed their check before the slot became owned hold
//     indices below the ownership's base index (their fetch-add came before
//     the owner's CAS, and the owner reads the write index after it). Such a
//     straggler may still CAS a ring record whose sequence is below
//     2*base+1, so the owner uses the CAS itself on those records (the first
//     lap, or a record a straggler holds) and plain stores only on records
//     whose sequence it published itself (>= 2*base+2), which no straggler
//     can CAS any more.
//   - Only the owner changes an owned slot's state, except when its process
//     has exited: then Own (takeover) or DropKey may, after abandoning the
//     records the dead owner left in progress.

// ownerTokenWait is how long a slot may stay owned without a valid owner
// token before it counts as abandoned (its owner died between the state CAS
// and the token store, two instructions apart).
var ownerTokenWait = 50 * time.Millisecond

// ownerToken identifies an owner: its pid and the low 32 bits of the
// owned generation.
func ownerToken(pid int, gen uint64) uint64 { return uint64(uint32(pid))<<32 | gen&0xffffffff }

// Writer records samples of one owned key. It is the fastest way to record:
// no lookup, no locked instruction on x86-64 (after the first pass over the
// key's ring). A Writer is not safe for concurrent use: it is meant for one
// producer goroutine (that is what makes lock-free writes without atomic
// read-modify-writes possible). Close it to give the key back to shared
// writers, or Drop it to remove the key.
type Writer struct {
	hot  ownedHot // what the fast path reads, first
	r    *Registry
	s    *SchemaInfo
	key  uint64
	p    uint64 // slot
	st   uint64 // the owned state word (generation<<3 | stOwned)
	base uint64 // first record index of this ownership
	done bool
}

// ownedHot is what the fast path of Writer.Record (writerRecord) needs; its
// layout is read by publish_amd64.s (offsets in the comments).
type ownedHot struct {
	state    *uint64        // 0: the slot's state word
	widx     *uint64        // 8: the slot's write index
	ring     unsafe.Pointer // 16: the slot's ring
	want     uint64         // 24: the owned state word; 0 after Close/Drop
	mask     uint64         // 32: ring length - 1
	stride   uint64         // 40: record stride
	next     uint64         // 48: the next record index (the owner's own count)
	fastFrom uint64         // 56: from this index on every ring record is the owner's
	words    uintptr        // 64: payload words
	size     int            // 72: payload bytes
}

// Own makes the caller the only writer of key in schema id, inserting the
// key if needed, and returns its Writer. It returns ErrOwned if another
// live Writer (in this or another process) owns the key. A key whose owner
// process has exited is taken over: records the dead owner left half
// written are abandoned (counted as holes), the history stays.
func (r *Registry) Own(id SchemaID, key uint64) (*Writer, error) {
	s, err := r.schema(id)
	if err != nil {
		return nil, fmt.Errorf("features: own: %w", err)
	}
	for try := 0; ; try++ {
		if try == spinLimit {
			return nil, fmt.Errorf("features: own: %w: key %#x of schema %q keeps changing", ErrBusy, key, s.name)
		}
		p, gen, err := r.findOrInsert(s, key)
		if err != nil {
			return nil, fmt.Errorf("features: own: %w", err)
		}
		sw := r.u64(r.slotOff(s, p) + slotState)
		st := atomic.LoadUint64(sw)
		if st>>genShift != gen {
			continue // dropped or reused meanwhile
		}
		switch st & stMask {
		case stLive:
		case stOwned:
			repair, err := r.checkOwnerDead(s, p, st)
			if err != nil {
				return nil, fmt.Errorf("features: own: %w", err)
			}
			if repair {
				r.repairDeadOwner(s, p)
			}
		default:
			continue
		}
		owned := (gen+1)<<genShift | stOwned
		if !atomic.CompareAndSwapUint64(sw, st, owned) {
			continue
		}
		return r.installOwner(s, key, p, owned), nil
	}
}

// installOwner completes Own after the state CAS: it records the base
// index and the owner token (token last: a token whose generation matches
// the state says the base is set).
func (r *Registry) installOwner(s *SchemaInfo, key, p, owned uint64) *Writer {
	so := r.slotOff(s, p)
	widx := r.u64(so + slotWriteIdx)
	base := atomic.LoadUint64(widx)
	// A dead owner may have published its last record without advancing
	// the write index: step over it instead of losing the next sample.
	if seq := r.u64(r.recOff(s, p, base) + recSeq); atomic.LoadUint64(seq) == 2*base+2 {
		base++
		atomic.StoreUint64(widx, base)
	}
	atomic.StoreUint64(r.u64(so+slotOwnBase), base)
	atomic.StoreUint64(r.u64(so+slotOwner), ownerToken(os.Getpid(), owned>>genShift))
	w := &Writer{r: r, s: s, key: key, p: p, st: owned, base: base}
	w.hot = ownedHot{
		state: r.u64(so + slotState), widx: widx, ring: unsafe.Add(r.base, s.ringOff+p*s.ringLen*s.stride),
		want: owned, mask: s.ringLen - 1, stride: s.stride, next: base, fastFrom: base + s.ringLen,
		words: uintptr(s.recordSize / 8), size: s.recordSize,
	}
	return w
}

// checkOwnerDead returns nil if the owner of slot p (state st, owned) is
// gone: its process has exited (repair: it may have left records half
// written), or it never installed its token (it wrote nothing). Otherwise
// it returns ErrOwned naming the owner's pid. An owner with pid 0 (a C
// owner in the kernel) is never gone.
func (r *Registry) checkOwnerDead(s *SchemaInfo, p, st uint64) (repair bool, err error) {
	so := r.slotOff(s, p)
	key := atomic.LoadUint64(r.u64(so + slotKey))
	deadline := time.Now().Add(ownerTokenWait)
	for {
		tok := atomic.LoadUint64(r.u64(so + slotOwner))
		if atomic.LoadUint64(r.u64(so+slotState)) != st {
			return false, fmt.Errorf("%w: key %#x of schema %q changed owner", ErrOwned, key, s.name)
		}
		if tok&0xffffffff == (st>>genShift)&0xffffffff {
			pid := int(tok >> 32)
			if pid == 0 {
				return false, fmt.Errorf("%w: key %#x of schema %q is owned by the kernel", ErrOwned, key, s.name)
			}
			if pid == os.Getpid() || processAlive(pid) {
				return false, fmt.Errorf("%w: key %#x of schema %q is owned by pid %d", ErrOwned, key, s.name, pid)
			}
			return true, nil
		}
		// No token for this generation yet: its owner is between the state
		// CAS and the token store, or died there.
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(time.Millisecond)
	}
}

// repairDeadOwner abandons the records of slot p that its dead owner left
// in progress (an odd sequence for an index at or above the owner's base):
// each becomes a hole with an even sequence, so later writers can reuse the
// ring record and readers skip it. Records of indices below the base belong
// to shared writers that may still be running and are left alone.
func (r *Registry) repairDeadOwner(s *SchemaInfo, p uint64) {
	so := r.slotOff(s, p)
	base := atomic.LoadUint64(r.u64(so + slotOwnBase))
	for i := uint64(0); i < s.ringLen; i++ {
		ro := s.ringOff + (p*s.ringLen+i)*s.stride
		seq := r.u64(ro + recSeq)
		old := atomic.LoadUint64(seq)
		if old&1 == 0 || (old-1)/2 < base {
			continue
		}
		k := (old - 1) / 2
		r.markHole(ro, k)
		atomic.CompareAndSwapUint64(seq, old, 2*k)
	}
}

// Key returns the key the Writer owns.
func (w *Writer) Key() uint64 { return w.key }

// Record appends a sample (RecordSize bytes) to the owned key. It returns
// ErrLost only while a writer from before the ownership still holds a ring
// record (counted in Stats.Lost, as for Record).
//
// The owner keeps its own record count (the slot's write index is only
// published for readers) and knows which ring records it has claimed: once
// it has written every record of the ring since it took the key, no other
// writer can touch them (see the safety argument above), and a record is
// written with no check of its old sequence at all (writerRecord). Until
// then, and after a record it could not claim, writerRecordSlow checks and
// claims each record.
func (w *Writer) Record(payload []byte) error { return writerRecord(w, payload) }

// writerRecordSlow is Writer.Record when the fast path declined: a bad
// payload, a closed Writer, or an index before hot.fastFrom.
func writerRecordSlow(w *Writer, payload []byte) error {
	s, r, h := w.s, w.r, &w.hot
	if len(payload) != s.recordSize {
		return fmt.Errorf("features: writer record: %w: schema %q: payload is %d bytes, want %d", ErrWidth, s.name, len(payload), s.recordSize)
	}
	if w.done || atomic.LoadUint64(h.state) != w.st {
		return fmt.Errorf("features: writer record: %w: key %#x of schema %q", ErrNotOwner, w.key, s.name)
	}
	n := h.next
	ro := r.recOff(s, w.p, n)
	seq := r.u64(ro + recSeq)
	dst := unsafe.Pointer(r.u64(ro + recHdrSize))
	old := atomic.LoadUint64(seq)
	h.next = n + 1
	if old&1 == 0 && old >= 2*w.base+2 && old < 2*n+1 {
		// Last published by this ownership: no other writer can touch it.
		atomic.StoreUint64(seq, 2*n+1)
	} else if old&1 != 0 || old >= 2*n+1 || !atomic.CompareAndSwapUint64(seq, old, 2*n+1) {
		// Not claimed by this ownership yet (first pass), or held by a
		// straggler: it must be claimed with a CAS, as a shared writer
		// does, and that failed.
		r.markHole(ro, n)
		atomic.AddUint64(r.u64(r.slotOff(s, w.p)+slotLost), 1)
		atomic.StoreUint64(h.widx, n+1)
		// This record is not the owner's: check every record again for a
		// full lap past it.
		h.fastFrom = max(h.fastFrom, n+s.ringLen+1)
		return fmt.Errorf("features: writer record: %w: schema %q key %#x index %d", ErrLost, s.name, w.key, n)
	}
	publishRecord(seq, 2*n+2, dst, payloadPtr(payload), h.words)
	atomic.StoreUint64(h.widx, n+1)
	return nil
}

// Close gives the key back to shared writers (Record, KeyHandle, C
// producers); its history stays. Using the Writer afterwards returns
// ErrNotOwner.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done, w.hot.want = true, 0
	sw := w.r.u64(w.r.slotOff(w.s, w.p) + slotState)
	if !atomic.CompareAndSwapUint64(sw, w.st, (w.st>>genShift+1)<<genShift|stLive) {
		return fmt.Errorf("features: writer close: %w: key %#x of schema %q", ErrNotOwner, w.key, w.s.name)
	}
	return nil
}

// Drop removes the owned key, as DropKey does for a shared one.
func (w *Writer) Drop() error {
	if w.done {
		return fmt.Errorf("features: writer drop: %w: key %#x of schema %q", ErrNotOwner, w.key, w.s.name)
	}
	w.done, w.hot.want = true, 0
	sw := w.r.u64(w.r.slotOff(w.s, w.p) + slotState)
	if !atomic.CompareAndSwapUint64(sw, w.st, (w.st&^stMask)|stDead) {
		return fmt.Errorf("features: writer drop: %w: key %#x of schema %q", ErrNotOwner, w.key, w.s.name)
	}
	atomic.AddUint32(w.r.u32(w.s.entryOff+schLiveKeys), ^uint32(0))
	return nil
}

// publish_amd64.s reads ownedHot at fixed offsets: each line fails to
// compile if its field moved.
var (
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.state)-0]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.widx)-8]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.ring)-16]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.want)-24]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.mask)-32]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.stride)-40]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.next)-48]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.fastFrom)-56]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.words)-64]
	_ = [1]int{}[unsafe.Offsetof(ownedHot{}.size)-72]
	_ = [1]int{}[unsafe.Offsetof(Writer{}.hot)-0]
)
