package cpu_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/lakeos/lake/laked/backend"
)

func TestAllocZeroedAlignedAndFree(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	var ptrs []backend.DevPtr
	for _, n := range []uint64{1, 7, 256, 1000, 4096} {
		p := mustAlloc(t, c, n)
		if p%256 != 0 {
			t.Errorf("alloc %d: %#x not 256-byte aligned", n, uint64(p))
		}
		got := bytes.Repeat([]byte{0xff}, int(n))
		if err := c.MemcpyDtoH(got, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, make([]byte, n)) {
			t.Errorf("alloc %d not zeroed", n)
		}
		ptrs = append(ptrs, p)
	}
	st := c.Stats()
	if st.Allocations != 5 || st.BytesAllocated != 1+7+256+1000+4096 {
		t.Errorf("stats %+v", st)
	}
	for _, p := range ptrs {
		if err := c.MemFree(p); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Allocations != 0 || st.BytesAllocated != 0 {
		t.Errorf("stats after free %+v", st)
	}
}

func TestAllocErrors(t *testing.T) {
	_, c := newCtx(t, backend.Limits{MaxBytes: 1 << 20})
	_, err := c.MemAlloc(0)
	wantErr(t, err, backend.ErrInvalidValue, "alloc 0")
	_, err = c.MemAlloc(1<<20 + 1)
	wantErr(t, err, backend.ErrOutOfMemory, "alloc over limit")
	_, err = c.MemAlloc(^uint64(0))
	wantErr(t, err, backend.ErrOutOfMemory, "alloc 2^64-1")
}

func TestFreeErrors(t *testing.T) {
	b, c := newCtx(t, backend.Limits{})
	p := mustAlloc(t, c, 512)
	wantErr(t, c.MemFree(p+16), backend.ErrInvalidValue, "free interior pointer")
	wantErr(t, c.MemFree(0), backend.ErrInvalidHandle, "free 0")
	wantErr(t, c.MemFree(p+512), backend.ErrInvalidHandle, "free one past the end")
	wantErr(t, c.MemFree(^backend.DevPtr(0)), backend.ErrInvalidHandle, "free max address")
	if err := c.MemFree(p); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.MemFree(p), backend.ErrInvalidHandle, "double free")
	// A stale pointer is not reused by the next allocation.
	q := mustAlloc(t, c, 512)
	if q == p {
		t.Errorf("freed address %#x handed out again at once", uint64(p))
	}
	wantErr(t, c.MemcpyHtoD(p, []byte{1}), backend.ErrInvalidHandle, "copy to freed pointer")

	c2, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Destroy()
	wantErr(t, c2.MemFree(q), backend.ErrInvalidHandle, "free of another context's pointer")
	wantErr(t, c2.MemcpyDtoH(make([]byte, 4), q), backend.ErrInvalidHandle, "copy from another context's pointer")
}

func TestMemcpyBoundsAndSpanning(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	a := mustAlloc(t, c, 300)
	b := mustAlloc(t, c, 300)
	if err := c.MemcpyHtoD(a, make([]byte, 300)); err != nil {
		t.Fatalf("whole-allocation copy: %v", err)
	}
	wantErr(t, c.MemcpyHtoD(a, make([]byte, 301)), backend.ErrInvalidValue, "copy 1 byte past the end")
	wantErr(t, c.MemcpyDtoH(make([]byte, 2), a+299), backend.ErrInvalidValue, "read across the end")
	wantErr(t, c.MemcpyHtoD(a+300, []byte{1}), backend.ErrInvalidHandle, "copy into padding")
	// A copy starting in a and running through the address of b spans
	// two allocations, whatever lies between them.
	span := make([]byte, uint64(b)-uint64(a)+10)
	wantErr(t, c.MemcpyHtoD(a, span), backend.ErrInvalidValue, "copy spanning two allocations")
	wantErr(t, c.MemcpyDtoH(span, a), backend.ErrInvalidValue, "read spanning two allocations")
	// Zero-length copies are no-ops, even to nowhere.
	if err := c.MemcpyHtoD(12345, nil); err != nil {
		t.Errorf("zero-length copy: %v", err)
	}
	// Failed copies wrote nothing.
	got := make([]byte, 300)
	if err := c.MemcpyDtoH(got, b); err != nil || !bytes.Equal(got, make([]byte, 300)) {
		t.Errorf("b modified by failed copies (err %v)", err)
	}
}

func TestPointerArithmetic(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	p := mustAlloc(t, c, 64)
	if err := c.MemcpyHtoD(p+10, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.MemcpyHtoD(p+63, []byte{9}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64)
	if err := c.MemcpyDtoH(got, p); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	copy(want[10:], []byte{1, 2, 3})
	want[63] = 9
	if !bytes.Equal(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
	two := make([]byte, 2)
	if err := c.MemcpyDtoH(two, p+11); err != nil || two[0] != 2 || two[1] != 3 {
		t.Errorf("interior read %v %v", two, err)
	}

	// Kernels see interior pointers too: scale x[4:8] only.
	x := mustAlloc(t, c, 32)
	f := fn(t, c, "scale")
	if err := c.LaunchKernel(f, one, one, 0, 0, pack(uint64(x)+16, 4, 2)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	if err := c.MemcpyDtoH(buf, x); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		v := binary.LittleEndian.Uint32(buf[4*i:])
		want := uint32(0)
		if i >= 4 {
			want = 0x3f800000 // 1.0: 0*2+1
		}
		if v != want {
			t.Errorf("x[%d] bits %#x want %#x", i, v, want)
		}
	}
	// Misaligned typed view fails inside the kernel.
	err := c.LaunchKernel(f, one, one, 0, 0, pack(uint64(x)+2, 1, 2))
	wantErr(t, err, backend.ErrLaunchFailed, "misaligned float32 view")
}

func TestLimits(t *testing.T) {
	lim := backend.Limits{MaxBytes: 4096, MaxAllocations: 3, MaxStreams: 2, MaxThreads: 1024}
	_, c := newCtx(t, lim)

	p1 := mustAlloc(t, c, 2048)
	p2 := mustAlloc(t, c, 2048)
	_, err := c.MemAlloc(1)
	wantErr(t, err, backend.ErrOutOfMemory, "byte limit")
	if err := c.MemFree(p2); err != nil {
		t.Fatal(err)
	}
	mustAlloc(t, c, 1)
	mustAlloc(t, c, 1)
	_, err = c.MemAlloc(1)
	wantErr(t, err, backend.ErrOutOfMemory, "allocation count limit")
	_ = p1

	s1, err := c.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StreamCreate(); err != nil {
		t.Fatal(err)
	}
	_, err = c.StreamCreate()
	wantErr(t, err, backend.ErrOutOfMemory, "stream limit")
	if err := c.StreamDestroy(s1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StreamCreate(); err != nil {
		t.Errorf("stream after destroy: %v", err)
	}

	f := fn(t, c, "count")
	if err := c.LaunchKernel(f, backend.Dim3{X: 4, Y: 1, Z: 1}, backend.Dim3{X: 256, Y: 1, Z: 1}, 0, 0, nil); err != nil {
		t.Errorf("launch of exactly the thread limit: %v", err)
	}
	err = c.LaunchKernel(f, backend.Dim3{X: 5, Y: 1, Z: 1}, backend.Dim3{X: 256, Y: 1, Z: 1}, 0, 0, nil)
	wantErr(t, err, backend.ErrInvalidValue, "thread limit")
	huge := backend.Dim3{X: ^uint32(0), Y: ^uint32(0), Z: ^uint32(0)}
	err = c.LaunchKernel(f, huge, huge, 0, 0, nil)
	wantErr(t, err, backend.ErrInvalidValue, "saturating thread count")
}

func TestDefaultLimits(t *testing.T) {
	l := newBackendLimits()
	if l.MaxBytes != 1<<30 || l.MaxAllocations != 65536 || l.MaxStreams != 64 || l.MaxThreads != 1<<26 {
		t.Errorf("defaults %+v", l)
	}
}
