//go:build linux

package vecmath

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestNet8QueryAtPageEnd places the input of Query at the very end of a
// page followed by an inaccessible one: the fused kernel reads the input's
// last block through a mask, so it must neither fault nor read past it.
func TestNet8QueryAtPageEnd(t *testing.T) {
	ps := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem[ps:], unix.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	words := unsafe.Slice((*int32)(unsafe.Pointer(&mem[0])), ps/4)
	r := rand.New(rand.NewPCG(41, 42))
	for it := range 100 {
		n, in := randomNet8(t, r, true)
		x := words[len(words)-in:]
		for i := range x {
			x[i] = int32(r.IntN(512) - 256)
		}
		want := net8Ref(n, x, -128, 127)
		forEachLevel(t, func(l Level) {
			got := make([]int32, len(want))
			if n.Query(x, got, -128, 127) && !slices.Equal(got, want) {
				t.Fatalf("net %d at %v: %v, want %v", it, l, got, want)
			}
		})
	}
}
