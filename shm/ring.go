package shm

import (
	"errors"
	"sync/atomic"
	"unsafe"
)

// ErrRingFull is returned by a non-blocking submission when no slot is free.
var ErrRingFull = errors.New("shm: ring full")

// ErrRingCorrupt is returned when the ring's words contradict each other
// (someone scribbled over them); the ring cannot be used any more.
var ErrRingCorrupt = errors.New("shm: ring corrupt")

// SQ is the submission ring: many producers (client threads) and one
// consumer (laked), in the style of a bounded MPMC queue with a sequence
// word per slot (PROTOCOL.md, "Submission ring"):
//
//   - slot i starts with seq = i;
//   - a producer loads tail = t, and may take slot t&mask only when that
//     slot's seq == t; it claims it by CAS(tail, t, t+1), writes the slot
//     body, then publishes with a release store seq = t+1;
//   - the consumer at head h waits for seq == h+1 (acquire), copies the
//     slot, then frees it with a release store seq = h+entries and
//     advances head.
//
// All counters are free-running u32s; compare them by subtraction.
type SQ struct {
	slots []byte
	mask  uint32
	tail  *atomic.Uint32
	head  *atomic.Uint32
	// Bell is the consumer's doorbell: producers ring it after
	// publishing when the consumer may be asleep.
	Bell Bell
	// next is the consumer's private copy of head. The shared head word
	// is informational for producers and tools; the consumer never
	// trusts the shared copy.
	next uint32
	// pos is next for other goroutines (Published): laked's memory, not
	// the region's, so that the client cannot make it lie.
	pos atomic.Uint32
}

// Entries returns the number of slots.
func (q *SQ) Entries() uint32 { return q.mask + 1 }

func (q *SQ) seq(i uint32) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&q.slots[(i&q.mask)*SlotSize+sqeOffSeq]))
}

func (q *SQ) slot(i uint32) []byte {
	o := (i & q.mask) * SlotSize
	return q.slots[o : o+SlotSize : o+SlotSize]
}

// TrySubmit publishes one submission without blocking; it returns
// ErrRingFull when the consumer has not yet freed the slot it would need.
// It is safe for concurrent use by many producers.
func (q *SQ) TrySubmit(e *SQE) error {
	_, err := q.TrySubmitPos(e)
	return err
}

// TrySubmitPos is TrySubmit that also returns the ring position the
// submission took (a client uses it to tell, after a laked restart,
// which of its submissions the old laked had consumed).
func (q *SQ) TrySubmitPos(e *SQE) (uint32, error) {
	t := q.tail.Load()
	for {
		s := q.seq(t).Load()
		switch d := int32(s - t); {
		case d == 0:
			if q.tail.CompareAndSwap(t, t+1) {
				encodeSQE(q.slot(t), e)
				q.seq(t).Store(t + 1) // publish (release)
				return t, nil
			}
			t = q.tail.Load()
		case d < 0:
			return 0, ErrRingFull
		default:
			// Another producer took t: tail must have moved on. If it
			// has not, the words are corrupt; do not spin forever.
			nt := q.tail.Load()
			if nt == t {
				return 0, ErrRingCorrupt
			}
			t = nt
		}
	}
}

// TrySubmitBatch publishes as many of es as fit, in order, claiming
// their positions with a single CAS: the first position is returned with
// the count. Because the consumer frees slots in order, the slot of the
// last position being free means all of them are. It returns ErrRingFull
// (with n == 0) when not even one slot is free.
func (q *SQ) TrySubmitBatch(es []SQE) (first uint32, n int, err error) {
	if len(es) == 0 {
		return 0, 0, nil
	}
	for {
		t := q.tail.Load()
		d := int32(q.seq(t).Load() - t)
		if d < 0 {
			return 0, 0, ErrRingFull
		}
		if d > 0 {
			if q.tail.Load() == t {
				return 0, 0, ErrRingCorrupt
			}
			continue
		}
		// Slot t is free; find how many after it are (binary search
		// would do, but the common case is all or the ring's worth).
		k := uint32(len(es))
		if k > q.mask+1 {
			k = q.mask + 1
		}
		for k > 1 && q.seq(t+k-1).Load() != t+k-1 {
			k /= 2
		}
		if !q.tail.CompareAndSwap(t, t+k) {
			continue
		}
		for i := uint32(0); i < k; i++ {
			encodeSQE(q.slot(t+i), &es[i])
			q.seq(t + i).Store(t + i + 1) // publish (release)
		}
		return t, int(k), nil
	}
}

// Consume copies at most len(out) published submissions into out, frees
// their slots and returns how many it copied. Only the single consumer
// may call it. A slot whose sequence word holds anything but the
// expected value is treated as not yet published, whatever the producer
// wrote: a broken producer can stall its own ring but nothing else.
func (q *SQ) Consume(out []SQE) int {
	n := 0
	for n < len(out) {
		h := q.next
		if q.seq(h).Load() != h+1 { // acquire
			break
		}
		var buf [SlotSize]byte
		copy(buf[:], q.slot(h)) // copy before decoding or validating
		DecodeSQE(buf[:], &out[n])
		q.seq(h).Store(h + q.mask + 1) // free the slot for the producer at h+entries
		q.next = h + 1
		n++
	}
	if n > 0 {
		q.head.Store(q.next)
		q.pos.Store(q.next)
	}
	return n
}

// Pending reports whether the next slot is published (consumer only).
func (q *SQ) Pending() bool { return q.seq(q.next).Load() == q.next+1 }

// Published reports whether the slot at the consumer's position holds a
// submission. Unlike Pending, any goroutine may call it while the
// consumer runs (it may lag the consumer by one Consume: a wake-up hint).
// It reads the position from laked's own copy, never from the shared
// head word: a client that wrote its head word and the sequence word of
// the slot it names would otherwise make it report a submission that
// Consume does not see, for as long as it liked.
func (q *SQ) Published() bool {
	h := q.pos.Load()
	return q.seq(h).Load() == h+1
}

// ResumeConsumer sets the consumer's position when a laked (re)attaches
// to a region: from the shared head word, then past every slot a previous
// consumer already freed (seq == pos+entries) but whose head update it did
// not live to publish. It returns the position, which it also publishes:
// every submission before it was consumed by an earlier laked.
func (q *SQ) ResumeConsumer() uint32 {
	h := q.head.Load()
	for i := uint32(0); i <= q.mask; i++ {
		if q.seq(h).Load() != h+q.mask+1 {
			break
		}
		h++
	}
	q.next = h
	q.head.Store(h)
	q.pos.Store(h)
	return h
}

// Head returns the consumer position published in the region.
func (q *SQ) Head() uint32 { return q.head.Load() }

// CQ is the completion ring: one producer (laked, which serialises its
// writers) and one consumer (the client, which serialises its reapers),
// exactly as io_uring's CQ: the producer writes slot tail&mask and
// publishes with a release store of tail+1; the consumer reads slots
// [head, tail) after an acquire load of tail and frees them with a
// release store of head.
type CQ struct {
	slots []byte
	mask  uint32
	tail  *atomic.Uint32
	head  *atomic.Uint32
	// Bell is the consumer's doorbell: the producer rings it after
	// publishing when a consumer may be asleep.
	Bell Bell
}

// Entries returns the number of slots.
func (q *CQ) Entries() uint32 { return q.mask + 1 }

func (q *CQ) slot(i uint32) []byte {
	o := (i & q.mask) * SlotSize
	return q.slots[o : o+SlotSize : o+SlotSize]
}

// Space returns how many completions can be posted now. The consumer's
// head is untrusted: a head that is ahead of tail or more than a ring
// behind reads as "no space", so a broken consumer can only stop its own
// completions.
func (q *CQ) Space() uint32 {
	used := q.tail.Load() - q.head.Load()
	if used > q.mask+1 {
		return 0
	}
	return q.mask + 1 - used
}

// Post writes as many of cs as fit and publishes them with one release
// store; it returns how many it posted. Producer only (callers serialise).
func (q *CQ) Post(cs []CQE) int {
	space := q.Space()
	n := uint32(len(cs))
	if n > space {
		n = space
	}
	t := q.tail.Load()
	for i := uint32(0); i < n; i++ {
		encodeCQE(q.slot(t+i), &cs[i])
	}
	if n > 0 {
		q.tail.Store(t + n) // publish (release)
	}
	return int(n)
}

// Reap copies at most len(out) completions into out and frees their
// slots. Consumer only (callers serialise). A tail that claims more
// than a ring of completions is clamped to one ring.
func (q *CQ) Reap(out []CQE) int {
	h := q.head.Load()
	avail := q.tail.Load() - h // acquire
	if avail > q.mask+1 {
		avail = q.mask + 1
	}
	n := uint32(len(out))
	if n > avail {
		n = avail
	}
	for i := uint32(0); i < n; i++ {
		decodeCQE(q.slot(h+i), &out[i])
	}
	if n > 0 {
		q.head.Store(h + n) // free (release)
	}
	return int(n)
}

// Ready reports whether a completion is waiting (consumer side).
func (q *CQ) Ready() bool { return q.tail.Load() != q.head.Load() }
