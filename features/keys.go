package features

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// Key table: open addressing with linear probing over tableSize slots.
// A slot's state word holds generation<<3 | state. Insertion claims a free
// slot (empty or dead) with a CAS to busy, writes the key, moves to claimed,
// checks the probe chain for a concurrent claim of the same key (the claim
// nearer the home slot wins; a live slot always wins) and finally CASes
// claimed -> live. Slots never return to empty, so a probe chain only grows
// and a later claimer always sees an earlier claim of the same key. See
// shm/PROTOCOL.md ("Feature registry area", "Key slots").

// spinLimit bounds retry loops that make progress only when another
// writer does (a key dropped again and again, a claim lost again and
// again) before they give up with ErrBusy.
const spinLimit = 1 << 16

// claimSpins is how many times a lookup yields while a slot is in the
// middle of an insertion (a few stores in a running inserter) before it
// starts sleeping between looks.
const claimSpins = 1 << 10

// claimWait bounds how long a lookup waits for a slot in the middle of an
// insertion whose claimer is alive (a descheduled thread can hold it for
// milliseconds) before giving up with ErrBusy. A claim whose process has
// exited is cleared instead (reclaimStuck).
var claimWait = time.Second

// slotWaiter paces a lookup's wait for a slot in the middle of an
// insertion: yield claimSpins times, then sleep briefly between looks,
// clearing the claim if its process has exited, until claimWait.
type slotWaiter struct {
	spins    int
	deadline time.Time
}

// wait is called each time slot q of s is still mid-insertion (state w).
// It returns false when the lookup should give up (ErrBusy).
func (r *Registry) waitSlot(sw *slotWaiter, s *SchemaInfo, q, w uint64) bool {
	if sw.spins++; sw.spins <= claimSpins {
		runtime.Gosched()
		return true
	}
	if r.reclaimStuck(s, q, w) {
		sw.spins = 0
		return true
	}
	now := time.Now()
	if sw.deadline.IsZero() {
		sw.deadline = now.Add(claimWait)
	}
	if now.After(sw.deadline) {
		return false
	}
	time.Sleep(50 * time.Microsecond)
	return true
}

// capacityWait bounds how long an insertion that finds the schema full
// keeps looking again while other claims are in flight (one of them may be
// abandoned and release its reservation a moment later).
const capacityWait = 50 * time.Millisecond

func (r *Registry) slotOff(s *SchemaInfo, p uint64) uint64 { return s.tableOff + p*keySlotSize }

// lookup finds key in s. It returns the slot, the state word (live or
// owned) and true when found; otherwise the first free (empty or dead) slot on the chain and
// its state word (free=false if none).
func (r *Registry) lookup(s *SchemaInfo, key uint64) (p, st uint64, found bool, free bool, fp, fst uint64, err error) {
	mask := s.tableSize - 1
	h := mix64(key) & mask
	var waiter slotWaiter
	for i := uint64(0); i < s.tableSize; i++ {
		q := (h + i) & mask
		so := r.slotOff(s, q)
		w := atomic.LoadUint64(r.u64(so + slotState))
		switch w & stMask {
		case stEmpty:
			if !free {
				free, fp, fst = true, q, w
			}
			return 0, 0, false, free, fp, fst, nil
		case stLive, stOwned:
			if atomic.LoadUint64(r.u64(so+slotKey)) == key {
				return q, w, true, false, 0, 0, nil
			}
		case stClaimed, stBusy:
			if w&stMask == stClaimed && atomic.LoadUint64(r.u64(so+slotKey)) != key {
				continue
			}
			// Busy (key unknown yet) or a claim of this key in progress:
			// wait for it to settle, then look at the slot again.
			if !r.waitSlot(&waiter, s, q, w) {
				return 0, 0, false, false, 0, 0, fmt.Errorf("%w: key slot %d of schema %q stuck mid-insertion for %v", ErrBusy, q, s.name, claimWait)
			}
			i--
		default: // dead (or garbage state values): skip, remember as free
			if w&stMask == stDead && !free {
				free, fp, fst = true, q, w
			}
		}
	}
	return 0, 0, false, free, fp, fst, nil
}

// fastFind checks the key's home slot only (the common case at moderate
// load); ok is false if the key is not live there.
func (r *Registry) fastFind(s *SchemaInfo, key uint64) (p, gen uint64, ok bool) {
	p = mix64(key) & (s.tableSize - 1)
	so := r.slotOff(s, p)
	st := atomic.LoadUint64(r.u64(so + slotState))
	if st&stMask == stLive && atomic.LoadUint64(r.u64(so+slotKey)) == key {
		return p, st >> genShift, true
	}
	return 0, 0, false
}

// find returns the slot of key (live or owned) and its generation.
func (r *Registry) find(s *SchemaInfo, key uint64) (p, gen uint64, err error) {
	if p, gen, ok := r.fastFind(s, key); ok {
		return p, gen, nil
	}
	p, st, found, _, _, _, err := r.lookup(s, key)
	if err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, fmt.Errorf("%w: key %#x in schema %q", ErrUnknownKey, key, s.name)
	}
	return p, st >> genShift, nil
}

// findOrInsert returns the slot of key (live or owned), inserting it (live)
// if needed.
func (r *Registry) findOrInsert(s *SchemaInfo, key uint64) (p, gen uint64, err error) {
	if p, gen, ok := r.fastFind(s, key); ok {
		return p, gen, nil
	}
	live := r.u32(s.entryOff + schLiveKeys)
	var fullSince time.Time
	for attempt := 0; ; attempt++ {
		if attempt > spinLimit {
			return 0, 0, fmt.Errorf("%w: could not insert key %#x in schema %q", ErrBusy, key, s.name)
		}
		p, st, found, free, fp, fst, err := r.lookup(s, key)
		if err != nil {
			return 0, 0, err
		}
		if found {
			return p, st >> genShift, nil
		}
		if !free {
			return 0, 0, fmt.Errorf("%w: schema %q: no free slot among %d for key %#x", ErrKeyCapacity, s.name, s.tableSize, key)
		}
		gen := (fst >> genShift) + 1
		so := r.slotOff(s, fp)
		sw := r.u64(so + slotState)
		busy := gen<<genShift | stBusy
		if !atomic.CompareAndSwapUint64(sw, fst, busy) {
			continue
		}
		// The claimer's token lets others clear the claim if this process
		// dies before finishing it (reclaimStuck).
		atomic.StoreUint64(r.u64(so+slotOwner), ownerToken(os.Getpid(), gen))
		atomic.StoreUint64(r.u64(so+slotKey), key)
		atomic.StoreUint64(r.u64(so+slotBaseIdx), atomic.LoadUint64(r.u64(so+slotWriteIdx)))
		claimed := gen<<genShift | stClaimed
		if !atomic.CompareAndSwapUint64(sw, busy, claimed) {
			continue // cleared as abandoned: start again
		}
		if !r.resolveClaim(s, key, fp) {
			// Another claim of the same key wins.
			atomic.CompareAndSwapUint64(sw, claimed, gen<<genShift|stDead)
			continue
		}
		// Only a claim that won the duplicate check reserves capacity, so
		// the live count overshoots only while a winner that is killed by
		// a nearer claim has not yet released it (a few instructions).
		if n := atomic.AddUint32(live, 1); n > s.keyCap {
			atomic.AddUint32(live, ^uint32(0))
			atomic.CompareAndSwapUint64(sw, claimed, gen<<genShift|stDead)
			if fullSince.IsZero() {
				fullSince = time.Now()
			}
			// While other claims are in flight the count may drop a moment
			// later: look again (bounded) before calling the schema full.
			if r.claimsInFlight(s) && time.Since(fullSince) < capacityWait {
				runtime.Gosched()
				continue
			}
			return 0, 0, fmt.Errorf("%w: schema %q holds %d keys (capacity %d), cannot add %#x", ErrKeyCapacity, s.name, n-1, s.keyCap, key)
		}
		if atomic.CompareAndSwapUint64(sw, claimed, gen<<genShift|stLive) {
			return fp, gen, nil
		}
		// Killed by a nearer claim of the same key: release and look again.
		atomic.AddUint32(live, ^uint32(0))
	}
}

// reclaimStuck is called when slot q of s stayed busy or claimed (state
// word w) for a whole spin budget. If the process that claimed it has
// exited (the claim's token names a dead pid), the claim is abandoned:
// the slot becomes dead, and reclaimStuck returns true (look at the slot
// again). It also returns true if the slot changed meanwhile. A claim
// without a token for its generation (claimer died between the state CAS
// and the token store, or a C producer in the kernel, pid 0) is never
// cleared. A process that died after counting the claim in live_keys
// leaves that count one too high (the claim cannot tell).
func (r *Registry) reclaimStuck(s *SchemaInfo, q, w uint64) bool {
	so := r.slotOff(s, q)
	sw := r.u64(so + slotState)
	tok := atomic.LoadUint64(r.u64(so + slotOwner))
	if atomic.LoadUint64(sw) != w {
		return true
	}
	if tok&0xffffffff != (w>>genShift)&0xffffffff {
		return false
	}
	pid := int(tok >> 32)
	if pid == 0 || pid == os.Getpid() || processAlive(pid) {
		return false
	}
	return atomic.CompareAndSwapUint64(sw, w, (w&^stMask)|stDead)
}

// claimsInFlight reports whether any slot of s is being claimed.
func (r *Registry) claimsInFlight(s *SchemaInfo) bool {
	for p := uint64(0); p < s.tableSize; p++ {
		if t := atomic.LoadUint64(r.u64(r.slotOff(s, p)+slotState)) & stMask; t == stBusy || t == stClaimed {
			return true
		}
	}
	return false
}

// resolveClaim scans the probe chain of key after this inserter claimed
// slot mine. It returns false if this claim must be abandoned (a live slot
// holds key, or a claim nearer the home slot exists); claims of key farther
// from home are killed (claimed -> dead).
func (r *Registry) resolveClaim(s *SchemaInfo, key, mine uint64) bool {
	mask := s.tableSize - 1
	h := mix64(key) & mask
	myDist := (mine - h) & mask
	spins := 0
	var waiter slotWaiter
	for i := uint64(0); i < s.tableSize; i++ {
		q := (h + i) & mask
		if q == mine {
			continue
		}
		so := r.slotOff(s, q)
		sw := r.u64(so + slotState)
		w := atomic.LoadUint64(sw)
		switch w & stMask {
		case stEmpty:
			return true
		case stBusy:
			if !r.waitSlot(&waiter, s, q, w) {
				return false
			}
			i--
			continue
		case stLive, stOwned, stClaimed:
			if atomic.LoadUint64(r.u64(so+slotKey)) != key {
				continue
			}
			if atomic.LoadUint64(sw) != w { // changed under us: look again
				if spins++; spins > spinLimit {
					return false
				}
				i--
				continue
			}
			if w&stMask != stClaimed || i < myDist {
				return false
			}
			if !atomic.CompareAndSwapUint64(sw, w, (w&^stMask)|stDead) {
				if spins++; spins > spinLimit {
					return false
				}
				i-- // it went live or dead meanwhile: look again
			}
		}
	}
	return true
}

// Keys returns the keys currently live in schema id (in table order).
func (r *Registry) Keys(id SchemaID) ([]uint64, error) {
	s, err := r.schema(id)
	if err != nil {
		return nil, fmt.Errorf("features: keys: %w", err)
	}
	var out []uint64
	for p := uint64(0); p < s.tableSize; p++ {
		so := r.slotOff(s, p)
		w := atomic.LoadUint64(r.u64(so + slotState))
		if t := w & stMask; t != stLive && t != stOwned {
			continue
		}
		k := atomic.LoadUint64(r.u64(so + slotKey))
		if atomic.LoadUint64(r.u64(so+slotState)) == w {
			out = append(out, k)
		}
	}
	return out, nil
}

// DropKey removes key from schema id: its slot becomes dead (reusable) and
// its history is no longer readable through ReadWindow. A writer that
// looked the key up before the drop may still complete its record into the
// dropped generation; such records are never visible under the key's next
// generation (records carry the generation). The next Record of the key
// starts a fresh, empty history. Drainers still deliver the dropped
// generation's remaining records until the slot is reused, and count the
// rest as dropped. A key owned by a Writer is dropped with Writer.Drop;
// DropKey returns ErrOwned for it unless its owner process has exited.
func (r *Registry) DropKey(id SchemaID, key uint64) error {
	s, err := r.schema(id)
	if err != nil {
		return fmt.Errorf("features: drop key: %w", err)
	}
	for {
		p, st, found, _, _, _, err := r.lookup(s, key)
		if err != nil {
			return fmt.Errorf("features: drop key: %w", err)
		}
		if !found {
			return fmt.Errorf("features: drop key: %w: key %#x in schema %q", ErrUnknownKey, key, s.name)
		}
		if st&stMask == stOwned {
			// Only the owner drops an owned key, unless the owner is dead.
			repair, err := r.checkOwnerDead(s, p, st)
			if err != nil {
				return fmt.Errorf("features: drop key: %w", err)
			}
			if repair {
				r.repairDeadOwner(s, p)
			}
		}
		if atomic.CompareAndSwapUint64(r.u64(r.slotOff(s, p)+slotState), st, (st&^stMask)|stDead) {
			atomic.AddUint32(r.u32(s.entryOff+schLiveKeys), ^uint32(0))
			return nil
		}
	}
}

// KeyStats reports counters of one key.
type KeyStats struct {
	// Recorded is the number of records reserved in the key's current
	// generation (including lost ones).
	Recorded uint64
	// Lost counts samples (over the slot's whole life) that writers gave up
	// because the ring record was still being written by an older writer.
	Lost uint64
	// Owned reports a key owned by a Writer (Registry.Own) or a C owner;
	// OwnerPID is the owner's pid (0 for an owner in the kernel, or while
	// the owner is still installing itself).
	Owned    bool
	OwnerPID int
}

// Stats returns the counters of key in schema id.
func (r *Registry) Stats(id SchemaID, key uint64) (KeyStats, error) {
	s, err := r.schema(id)
	if err != nil {
		return KeyStats{}, fmt.Errorf("features: stats: %w", err)
	}
	p, gen, err := r.find(s, key)
	if err != nil {
		return KeyStats{}, fmt.Errorf("features: stats: %w", err)
	}
	so := r.slotOff(s, p)
	st := KeyStats{
		Recorded: atomic.LoadUint64(r.u64(so+slotWriteIdx)) - atomic.LoadUint64(r.u64(so+slotBaseIdx)),
		Lost:     atomic.LoadUint64(r.u64(so + slotLost)),
	}
	if atomic.LoadUint64(r.u64(so+slotState)) == gen<<genShift|stOwned {
		st.Owned = true
		if tok := atomic.LoadUint64(r.u64(so + slotOwner)); tok&0xffffffff == gen&0xffffffff {
			st.OwnerPID = int(tok >> 32)
		}
	}
	return st, nil
}
