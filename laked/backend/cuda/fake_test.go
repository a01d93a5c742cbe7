//go:build cuda

package cuda

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/linnos"
)

// The tests here need the fake CUDA driver's fault injection
// (fake/fakecuda.c, set through FakeDriverControl), so they run only in
// make cuda-check; on a GPU the same
// paths are reached by TestGPUFaultIsolated and TestGPULaunchTimeout.

// newFake is newGPU on the fake driver, or a skip.
func newFake(t *testing.T, l backend.Limits) *Backend {
	t.Helper()
	if !fakeDriver() {
		t.Skipf("needs the fake CUDA driver's fault injection (make cuda-check sets %s=1)", FakeDriverEnv)
	}
	b := newGPU(t, l)
	if !onFake(b) {
		t.Skipf("%s=1 but the driver is %q, not the fake", FakeDriverEnv, b.DeviceName())
	}
	return b
}

// inject sets one of the fake driver's injections (FakeDriverControl)
// until clearInjection or the end of the test.
func inject(t *testing.T, key, val string) {
	t.Helper()
	if err := FakeDriverControl(key, val); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { FakeDriverControl(key, "") })
}

// clearInjection ends an injection before the test does.
func clearInjection(t *testing.T, key string) {
	t.Helper()
	if err := FakeDriverControl(key, ""); err != nil {
		t.Fatal(err)
	}
}

// TestFakeDriverOutOfMemory: the driver's own CUDA_ERROR_OUT_OF_MEMORY
// (the device is full, below every backend limit) is ErrOutOfMemory, is
// not a fault (nothing rebuilt, the context's other memory intact), and
// gives the bytes it reserved back to the backend's budget.
func TestFakeDriverOutOfMemory(t *testing.T) {
	b := newFake(t, backend.Limits{})
	inject(t, "mem", "1048576")
	c := newCtx(t, b, false)
	p := mustAlloc(t, c, 768<<10)
	if err := c.MemcpyHtoD(p, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	_, err := c.MemAlloc(512 << 10)
	if !errors.Is(err, backend.ErrOutOfMemory) || AsResult(err) != ErrorOutOfMemory {
		t.Fatalf("allocation past the device's memory: %v", err)
	}
	if c.Rebuilds() != 0 {
		t.Fatal("out of memory rebuilt the context")
	}
	if got := b.bytes.Load(); got != 768<<10 {
		t.Fatalf("backend holds %d bytes, want %d", got, 768<<10)
	}
	out := make([]byte, 3)
	if err := c.MemcpyDtoH(out, p); err != nil || out[2] != 3 {
		t.Fatalf("the context's memory after OOM: %v %v", out, err)
	}
	if free, total, err := b.MemInfo(); err != nil || total != 1<<20 || free != 256<<10 {
		t.Fatalf("MemInfo %d/%d %v", free, total, err)
	}
	if err := c.MemFree(p); err != nil {
		t.Fatal(err)
	}
	mustAlloc(t, c, 1<<20)
}

// TestFakeDriverModelFault: a GPU model's kernel faults in the driver
// (not through a bad pointer the backend could see): the batch fails
// with ErrLaunchFailed, its context alone is rebuilt, no output run is
// written, and the model's next batches are right again.
func TestFakeDriverModelFault(t *testing.T) {
	b := newFake(t, backend.Limits{})
	mem := registeredMapping(t, b, 1<<16)
	_, q := linnosModels(t, 0)
	g, err := NewLinnOSInt(b, q)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	bystander := newCtx(t, b, false)
	const n = 40
	feat := linnosInputs(n, 7)
	copy(mem, i32bytes(feat))
	in, out := mem[:n*4*linnos.NumInputs], mem[30000:30000+4*n]
	for i := range out {
		out[i] = 0xee
	}
	inject(t, "fault", "lake_linnos_int0")
	err = g.PredictRuns([][]byte{in}, [][]byte{out}, n)
	if !errors.Is(err, backend.ErrLaunchFailed) || AsResult(err) != ErrorIllegalAddress {
		t.Fatalf("faulting batch: %v", err)
	}
	if g.r.ctx.Rebuilds() != 1 || bystander.Rebuilds() != 0 {
		t.Fatalf("rebuilds: model %d, bystander %d", g.r.ctx.Rebuilds(), bystander.Rebuilds())
	}
	for i, v := range out {
		if v != 0xee {
			t.Fatalf("output byte %d written by a faulted batch", i)
		}
	}
	clearInjection(t, "fault")
	want := make([]int32, n)
	if err := q.PredictBatch(feat, want); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if err := g.PredictRuns([][]byte{in}, [][]byte{out}, n); err != nil {
			t.Fatalf("after the fault: %v", err)
		}
		for i, w := range want {
			if got := int32(binary.LittleEndian.Uint32(out[4*i:])); got != w {
				t.Fatalf("round %d item %d: %d, want %d", round, i, got, w)
			}
		}
	}
	if _, err := bystander.MemAlloc(64); err != nil {
		t.Fatal(err)
	}
}

// TestFakeDriverModelHang: a model's kernel that never finishes (on the
// fake, until its context is destroyed) fails its batch within about
// the launch timeout with CUDA_ERROR_LAUNCH_TIMEOUT, through both output
// paths (registered runs queued behind the kernel, and a pageable
// buffer whose copy waits for it first); the model then recovers.
func TestFakeDriverModelHang(t *testing.T) {
	const timeout = 200 * time.Millisecond
	b := newFake(t, backend.Limits{LaunchTimeout: timeout})
	mem := registeredMapping(t, b, 1<<16)
	_, q := linnosModels(t, 0)
	g, err := NewLinnOSInt(b, q)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const n = 16
	feat := linnosInputs(n, 9)
	copy(mem, i32bytes(feat))
	in := mem[:n*4*linnos.NumInputs]
	pinnedOut, pageableOut := mem[40000:40000+4*n], make([]byte, 4*n)
	inject(t, "hang", "lake_linnos_int0")
	for i, out := range [][]byte{pinnedOut, pageableOut} {
		start := time.Now()
		err := g.PredictRuns([][]byte{in}, [][]byte{out}, n)
		took := time.Since(start)
		if !errors.Is(err, backend.ErrLaunchFailed) || AsResult(err) != ErrorLaunchTimeout {
			t.Fatalf("path %d: hung batch after %v: %v", i, took, err)
		}
		if took < timeout || took > timeout+5*time.Second {
			t.Fatalf("path %d: the hung batch returned after %v (timeout %v)", i, took, timeout)
		}
		if g.r.ctx.Rebuilds() != i+1 {
			t.Fatalf("path %d: rebuilds %d", i, g.r.ctx.Rebuilds())
		}
	}
	clearInjection(t, "hang")
	want := make([]int32, n)
	if err := q.PredictBatch(feat, want); err != nil {
		t.Fatal(err)
	}
	for _, out := range [][]byte{pinnedOut, pageableOut} {
		if err := g.PredictRuns([][]byte{in}, [][]byte{out}, n); err != nil {
			t.Fatalf("after the hang: %v", err)
		}
		for i, w := range want {
			if got := int32(binary.LittleEndian.Uint32(out[4*i:])); got != w {
				t.Fatalf("item %d: %d, want %d", i, got, w)
			}
		}
	}
}

// TestFakeDriverRegisterRefused: a driver that refuses to page-lock a
// region (cuMemHostRegister fails: a kernel without the pin, a locked
// memory limit) makes RegisterHost fail with the mapped error and
// remember nothing; copies from the region still work (staged), and a
// later registration succeeds.
func TestFakeDriverRegisterRefused(t *testing.T) {
	b := newFake(t, backend.Limits{})
	mem := testMapping(t, 1<<16)
	inject(t, "refuse_register", "1")
	if _, err := b.RegisterHost(mem); !errors.Is(err, backend.ErrNotSupported) || AsResult(err) != ErrorNotPermitted {
		t.Fatalf("refused registration: %v", err)
	}
	if b.pinnedHost(mem) || len(b.regs) != 0 {
		t.Fatal("a refused registration was recorded")
	}
	c := newCtx(t, b, false)
	p := mustAlloc(t, c, 4096)
	s, err := c.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	for i := range mem[:4096] {
		mem[i] = byte(i * 3)
	}
	if err := c.MemcpyHtoDAsync(p, mem[:4096], s); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 4096)
	if err := c.MemcpyDtoHAsync(back, p, s); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	for i, v := range back {
		if v != byte(i*3) {
			t.Fatalf("byte %d", i)
		}
	}
	clearInjection(t, "refuse_register")
	unreg, err := b.RegisterHost(mem)
	if err != nil {
		t.Fatal(err)
	}
	if !b.pinnedHost(mem) {
		t.Fatal("registered region not known as pinned")
	}
	if err := unreg(); err != nil {
		t.Fatal(err)
	}
}

// TestFakeDriverStickyContext: after a fault, the driver answers every
// call in that CUDA context with the fault until it is destroyed; the
// backend's next call on the client's Context goes to the rebuilt one.
func TestFakeDriverStickyContext(t *testing.T) {
	b := newFake(t, backend.Limits{})
	c := newCtx(t, b, true)
	f := mustFn(t, c, "lake_vector_add")
	p := mustAlloc(t, c, 64)
	s, err := c.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	inject(t, "fault", "lake_vector_add")
	one := backend.Dim3{X: 1, Y: 1, Z: 1}
	// On a stream the launch itself is queued; the fault shows at the wait.
	if err := c.LaunchKernel(f, one, backend.Dim3{X: 16, Y: 1, Z: 1}, 0, s, Pack(uint64(p), uint64(p), uint64(p), 16)); err != nil {
		t.Fatalf("queued launch: %v", err)
	}
	old := c.ctx
	if err := c.StreamSynchronize(s); !errors.Is(err, backend.ErrLaunchFailed) || AsResult(err) != ErrorIllegalAddress {
		t.Fatalf("wait on the faulted stream: %v", err)
	}
	if c.Rebuilds() != 1 || c.ctx == old {
		t.Fatalf("rebuilds %d", c.Rebuilds())
	}
	clearInjection(t, "fault")
	// The old CUDA context is gone in the driver too.
	if r := ctxSetCurrent(old); r == Success {
		t.Fatal("the faulted CUDA context can still be made current")
	}
	if _, err := c.MemAlloc(64); err != nil {
		t.Fatalf("rebuilt context: %v", err)
	}
}

// TestFakeDriverAllocBehindHungKernel: a client's kernel on one of its
// streams never finishes, and the client allocates. The allocation's
// zeroing (cuMemsetD8, queued on the legacy default stream behind that
// kernel) returns at once, as the driver documents for device memory, so
// the allocation does not wait for the kernel; the client's next copy
// from it waits at most the launch timeout (then the context is
// rebuilt), and once the kernel can finish, a new allocation reads back
// zero.
func TestFakeDriverAllocBehindHungKernel(t *testing.T) {
	const timeout = 200 * time.Millisecond
	b := newFake(t, backend.Limits{LaunchTimeout: timeout})
	c := newCtx(t, b, false)
	f := mustFn(t, c, "lake_vector_add")
	p := mustAlloc(t, c, 64)
	s, err := c.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	inject(t, "hang", "lake_vector_add")
	launch := func() {
		t.Helper()
		if err := c.LaunchKernel(f, backend.Dim3{X: 1, Y: 1, Z: 1}, backend.Dim3{X: 16, Y: 1, Z: 1}, 0, s, Pack(uint64(p), uint64(p), uint64(p), 16)); err != nil {
			t.Fatal(err)
		}
	}
	launch()
	start := time.Now()
	q, err := c.MemAlloc(4096)
	if err != nil || time.Since(start) > timeout {
		t.Fatalf("allocation behind a hung kernel: %v after %v", err, time.Since(start))
	}
	buf := make([]byte, 4096)
	if err := c.MemcpyDtoH(buf, q); !errors.Is(err, backend.ErrLaunchFailed) || AsResult(err) != ErrorLaunchTimeout {
		t.Fatalf("copy behind a hung kernel: %v", err)
	}
	if c.Rebuilds() != 1 {
		t.Fatalf("rebuilds %d", c.Rebuilds())
	}
	// In the rebuilt context: a kernel that finishes late.
	f = mustFn(t, c, "lake_vector_add")
	p = mustAlloc(t, c, 64)
	if s, err = c.StreamCreate(); err != nil {
		t.Fatal(err)
	}
	launch()
	q, err = c.MemAlloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	clearInjection(t, "hang") // the kernel runs, then the zeroing queued behind it
	for i := range buf {
		buf[i] = 0xff
	}
	if err := c.MemcpyDtoH(buf, q); err != nil {
		t.Fatal(err)
	}
	for i, v := range buf {
		if v != 0 {
			t.Fatalf("byte %d of the new allocation is %#x", i, v)
		}
	}
}
