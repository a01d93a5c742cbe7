package shm

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// ErrArenaFull is returned when the arena has no free block big enough.
var ErrArenaFull = errors.New("shm: arena full")

// MinBlock is the smallest arena block; every block is 64-byte aligned.
const MinBlock = 64

// Arena is a buddy allocator over the region's data arena, run by the
// client (the producer of offsets). Its bookkeeping lives in the
// client's own memory, never in the region: laked does not trust or read
// it, it only bounds-checks the offsets it is given. Safe for concurrent
// use.
type Arena struct {
	mu       sync.Mutex
	size     uint64
	maxOrder int
	free     []map[uint64]struct{} // free block offsets per order
	used     map[uint64]int        // allocated block offset -> order
	inUse    uint64
	// cached holds recently freed small blocks per order, not merged
	// with their buddies, so that the staging buffers of small calls
	// (a predict's records) are reused without splitting a block down
	// from the top order and merging it back on every call. They are
	// free (not counted in inUse); Alloc merges them all back before it
	// reports the arena full.
	cached [cachedOrders][]uint64
}

// cachedOrders are the block orders (64, 128, 256 bytes) Free keeps
// unmerged for reuse, at most cachedPerOrder blocks each.
const (
	cachedOrders   = 3
	cachedPerOrder = 32
)

// NewArena manages an arena of size bytes (a power-of-two multiple of
// MinBlock is used in full; any rest beyond the largest power of two is
// carved into smaller top-level blocks).
func NewArena(size uint64) (*Arena, error) {
	if size < MinBlock {
		return nil, fmt.Errorf("shm: arena of %d bytes is smaller than one block", size)
	}
	size &^= MinBlock - 1
	a := &Arena{size: size, used: make(map[uint64]int)}
	a.maxOrder = bits.Len64(size/MinBlock) - 1
	a.free = make([]map[uint64]struct{}, a.maxOrder+1)
	for i := range a.free {
		a.free[i] = make(map[uint64]struct{})
	}
	// Carve size into descending power-of-two top-level blocks.
	off := uint64(0)
	for o := a.maxOrder; o >= 0; o-- {
		bs := uint64(MinBlock) << o
		if size-off >= bs {
			a.free[o][off] = struct{}{}
			off += bs
		}
	}
	return a, nil
}

func orderFor(n uint64) int {
	if n <= MinBlock {
		return 0
	}
	return bits.Len64((n - 1) / MinBlock)
}

// Alloc returns the offset of a free block of at least n bytes.
func (a *Arena) Alloc(n uint64) (uint64, error) {
	if n == 0 {
		n = 1
	}
	if n > a.size {
		return 0, fmt.Errorf("%w: %d bytes asked, arena is %d", ErrArenaFull, n, a.size)
	}
	want := orderFor(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if want < cachedOrders {
		if c := a.cached[want]; len(c) > 0 {
			off := c[len(c)-1]
			a.cached[want] = c[:len(c)-1]
			a.used[off] = want
			a.inUse += uint64(MinBlock) << want
			return off, nil
		}
	}
	o := want
	for o <= a.maxOrder && len(a.free[o]) == 0 {
		o++
	}
	if o > a.maxOrder && a.flushCachedLocked() {
		o = want
		for o <= a.maxOrder && len(a.free[o]) == 0 {
			o++
		}
	}
	if o > a.maxOrder {
		return 0, fmt.Errorf("%w: no free block of %d bytes (%d of %d in use)", ErrArenaFull, n, a.inUse, a.size)
	}
	var off uint64
	for k := range a.free[o] {
		off = k
		break
	}
	delete(a.free[o], off)
	for o > want { // split, keeping the lower half
		o--
		a.free[o][off+(uint64(MinBlock)<<o)] = struct{}{}
	}
	a.used[off] = want
	a.inUse += uint64(MinBlock) << want
	return off, nil
}

// Free returns a block by the offset Alloc gave.
func (a *Arena) Free(off uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	o, ok := a.used[off]
	if !ok {
		return fmt.Errorf("shm: arena free of %d: not an allocated block", off)
	}
	delete(a.used, off)
	a.inUse -= uint64(MinBlock) << o
	if o < cachedOrders && len(a.cached[o]) < cachedPerOrder {
		a.cached[o] = append(a.cached[o], off)
		return nil
	}
	a.mergeLocked(off, o)
	return nil
}

// flushCachedLocked merges every cached block back into the free lists;
// it reports whether there were any.
func (a *Arena) flushCachedLocked() bool {
	had := false
	for o := range a.cached {
		for _, off := range a.cached[o] {
			a.mergeLocked(off, o)
			had = true
		}
		a.cached[o] = a.cached[o][:0]
	}
	return had
}

// mergeLocked returns the free block off of order o to the free lists,
// coalescing it with its free buddies.
func (a *Arena) mergeLocked(off uint64, o int) {
	for o < a.maxOrder {
		buddy := off ^ (uint64(MinBlock) << o)
		if _, free := a.free[o][buddy]; !free {
			break
		}
		delete(a.free[o], buddy)
		off &^= uint64(MinBlock) << o
		o++
	}
	a.free[o][off] = struct{}{}
}

// InUse returns the bytes held by live blocks (rounded to block sizes).
func (a *Arena) InUse() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse
}

// Size returns the managed size.
func (a *Arena) Size() uint64 { return a.size }
