package shm

import (
	"math/rand"
	"testing"
)

func TestArenaAllocFree(t *testing.T) {
	a, err := NewArena(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	type blk struct{ off, n uint64 }
	var live []blk
	owner := map[uint64]int{} // 64-byte unit -> block index, to catch overlaps
	for i := 0; i < 5000; i++ {
		if len(live) > 0 && rng.Intn(2) == 0 {
			k := rng.Intn(len(live))
			b := live[k]
			for u := b.off / MinBlock; u < (b.off+b.n+MinBlock-1)/MinBlock; u++ {
				delete(owner, u)
			}
			if err := a.Free(b.off); err != nil {
				t.Fatal(err)
			}
			live = append(live[:k], live[k+1:]...)
			continue
		}
		n := uint64(rng.Intn(8192) + 1)
		off, err := a.Alloc(n)
		if err != nil {
			continue // full is fine; overlap is not
		}
		if off%MinBlock != 0 || off+n > a.Size() {
			t.Fatalf("bad block %d+%d", off, n)
		}
		for u := off / MinBlock; u < (off+n+MinBlock-1)/MinBlock; u++ {
			if _, dup := owner[u]; dup {
				t.Fatalf("block %d+%d overlaps a live block", off, n)
			}
			owner[u] = i
		}
		live = append(live, blk{off, n})
	}
	for _, b := range live {
		if err := a.Free(b.off); err != nil {
			t.Fatal(err)
		}
	}
	if a.InUse() != 0 {
		t.Fatalf("in use after freeing all: %d", a.InUse())
	}
	// Everything coalesced: the whole arena is one block again.
	if off, err := a.Alloc(1 << 20); err != nil || off != 0 {
		t.Fatalf("whole-arena alloc after coalescing: off=%d err=%v", off, err)
	}
	if err := a.Free(12345); err == nil {
		t.Fatal("free of a non-block offset accepted")
	}
	if _, err := a.Alloc(2 << 20); err == nil {
		t.Fatal("alloc bigger than arena accepted")
	}
}

// Small blocks freed are kept for reuse, yet count as free: a double
// free is refused, and an allocation that needs them merged gets them.
func TestArenaSmallBlockCache(t *testing.T) {
	a, err := NewArena(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	var offs []uint64
	for i := 0; i < 3*cachedPerOrder; i++ {
		off, err := a.Alloc(uint64(1 + i%200))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	for _, off := range offs {
		if err := a.Free(off); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Free(offs[0]); err == nil {
		t.Fatal("double free of a cached block accepted")
	}
	if a.InUse() != 0 {
		t.Fatalf("in use after freeing all: %d", a.InUse())
	}
	// A reused small block is a live block again.
	off, err := a.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	if a.InUse() != 128 {
		t.Fatalf("in use %d, want 128", a.InUse())
	}
	if err := a.Free(off); err != nil {
		t.Fatal(err)
	}
	// The whole arena: only possible once the cached blocks are merged.
	if off, err := a.Alloc(1 << 16); err != nil || off != 0 {
		t.Fatalf("whole-arena alloc with small blocks cached: off=%d err=%v", off, err)
	}
}

// BenchmarkArenaStaging is a predict's staging: an input and an output
// block allocated and freed in a 16 MiB arena.
func BenchmarkArenaStaging(b *testing.B) {
	a, err := NewArena(16 << 20)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		x, _ := a.Alloc(124)
		y, _ := a.Alloc(4)
		_ = a.Free(x)
		_ = a.Free(y)
	}
}
