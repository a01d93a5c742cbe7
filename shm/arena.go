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
}

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
	o := want
	for o <= a.maxOrder && len(a.free[o]) == 0 {
		o++
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
	return nil
}

// InUse returns the bytes held by live blocks (rounded to block sizes).
func (a *Arena) InUse() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse
}

// Size returns the managed size.
func (a *Arena) Size() uint64 { return a.size }
