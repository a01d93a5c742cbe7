package cpu

import (
	"errors"
	"testing"

	"github.com/lakeos/lake/laked/backend"
)

// smallWindow returns a context whose address window holds n slots of
// one minimal allocation (256 bytes + 256 guard).
func smallWindow(t *testing.T, n uint64) *Context {
	t.Helper()
	b := New(backend.Limits{})
	c, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	ctx := c.(*Context)
	ctx.end = ctx.base + n*(allocAlign+guardGap)
	t.Cleanup(func() { ctx.Destroy() })
	return ctx
}

func TestPlacementCursorAndWrap(t *testing.T) {
	c := smallWindow(t, 4)
	var ps []backend.DevPtr
	for i := 0; i < 4; i++ {
		p, err := c.MemAlloc(100)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if _, err := c.MemAlloc(1); !errors.Is(err, backend.ErrOutOfMemory) {
		t.Fatalf("full window: %v", err)
	}
	// Free slot 1; the next allocation wraps around and finds it.
	if err := c.MemFree(ps[1]); err != nil {
		t.Fatal(err)
	}
	p, err := c.MemAlloc(200)
	if err != nil {
		t.Fatal(err)
	}
	if p != ps[1] {
		t.Errorf("wrapped allocation at %#x, want the only free slot %#x", uint64(p), uint64(ps[1]))
	}
	// Free slots 0 and 2: a 2-slot request fits nowhere contiguous
	// (slot 1 is live between them) ...
	c.MemFree(ps[0])
	c.MemFree(ps[2])
	if _, err := c.MemAlloc(700); !errors.Is(err, backend.ErrOutOfMemory) {
		t.Fatalf("fragmented window: %v", err)
	}
	// ... but after freeing slot 1 too, it fits at the start.
	c.MemFree(p)
	q, err := c.MemAlloc(700)
	if err != nil {
		t.Fatal(err)
	}
	checkSorted(t, c)
	if q != ps[0] {
		t.Errorf("2-slot allocation at %#x want %#x", uint64(q), uint64(ps[0]))
	}
}

func TestPlacementNoQuickReuse(t *testing.T) {
	c := smallWindow(t, 1000)
	seen := map[backend.DevPtr]bool{}
	for i := 0; i < 500; i++ {
		p, err := c.MemAlloc(64)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("address %#x reused after only %d allocations", uint64(p), i)
		}
		seen[p] = true
		if err := c.MemFree(p); err != nil {
			t.Fatal(err)
		}
	}
}

func checkSorted(t *testing.T, c *Context) {
	t.Helper()
	for i := 1; i < len(c.allocs); i++ {
		a, b := c.allocs[i-1], c.allocs[i]
		if a.base+a.span > b.base {
			t.Fatalf("allocations %#x+%d and %#x overlap", a.base, a.span, b.base)
		}
	}
	for _, a := range c.allocs {
		if a.base < c.base || a.base+a.span > c.end || a.base%allocAlign != 0 {
			t.Fatalf("allocation %#x+%d outside window or misaligned", a.base, a.span)
		}
	}
}

func TestFindEdges(t *testing.T) {
	c := smallWindow(t, 8)
	p, _ := c.MemAlloc(10)
	q, _ := c.MemAlloc(10)
	for _, tc := range []struct {
		addr uint64
		want uint64 // base, 0 for none
	}{
		{0, 0}, {uint64(p) - 1, 0}, {uint64(p), uint64(p)}, {uint64(p) + 9, uint64(p)},
		{uint64(p) + 10, 0}, {uint64(q), uint64(q)}, {uint64(q) + 9, uint64(q)}, {^uint64(0), 0},
	} {
		c.mu.RLock()
		a := c.find(tc.addr)
		c.mu.RUnlock()
		got := uint64(0)
		if a != nil {
			got = a.base
		}
		if got != tc.want {
			t.Errorf("find(%#x) = %#x want %#x", tc.addr, got, tc.want)
		}
	}
}

func TestContextTagsDistinct(t *testing.T) {
	b := New(backend.Limits{})
	seen := map[uint64]bool{}
	for i := 0; i < 16; i++ {
		c, err := b.NewContext()
		if err != nil {
			t.Fatal(err)
		}
		ctx := c.(*Context)
		if seen[ctx.base] || ctx.base < addrBase {
			t.Fatalf("context %d window %#x", i, ctx.base)
		}
		seen[ctx.base] = true
		c.Destroy()
	}
}
