//go:build cuda

package cuda

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/liteflow/snapshot"
	"github.com/mumax/3/cuda/cu"
)

// TestResultCodesMatchHeader holds the package's CUresult values (which
// the tag-free code and tests use) to the pinned cuda.h.
func TestResultCodesMatchHeader(t *testing.T) {
	if len(headerResults) != len(resultNames) {
		t.Fatalf("%d header codes, %d names", len(headerResults), len(resultNames))
	}
	for r, h := range headerResults {
		if int(r) != int(h) {
			t.Errorf("%v = %d here, %d in cuda.h", r, int(r), int(h))
		}
	}
	if int(cu.ERROR_INVALID_VALUE) != int(ErrorInvalidValue) || int(cu.ERROR_LAUNCH_FAILED) != int(ErrorLaunchFailed) {
		t.Error("mumax/3/cuda/cu disagrees with the header")
	}
}

// TestCallMapsPanics: the wrapper turns the binding's panics into mapped
// errors, and other panics into ErrLaunchFailed, without crashing.
func TestCallMapsPanics(t *testing.T) {
	err := call("cuMemAlloc", func() { panic(cu.ERROR_OUT_OF_MEMORY) })
	if !errors.Is(err, backend.ErrOutOfMemory) || AsResult(err) != ErrorOutOfMemory {
		t.Fatal(err)
	}
	err = call("cuLaunchKernel", func() { panic(cu.ERROR_LAUNCH_FAILED) })
	if !errors.Is(err, backend.ErrLaunchFailed) || !AsResult(err).Sticky() {
		t.Fatal(err)
	}
	err = call("x", func() { panic("not a CUresult") })
	if !errors.Is(err, backend.ErrLaunchFailed) || !Faulted(err) {
		t.Fatal(err)
	}
	if err := call("x", func() {}); err != nil {
		t.Fatal(err)
	}
}

// TestNoDriver runs where there is no GPU (CI links the stub libcuda,
// whose every call returns CUDA_ERROR_STUB_LIBRARY): New fails with
// ErrNoDriver, and a raw driver call is mapped, not a crash.
func TestNoDriver(t *testing.T) {
	if Available() == nil {
		t.Skip("a GPU is available: the no-driver path is not reachable here")
	}
	if _, err := New(0, backend.Limits{}); !errors.Is(err, ErrNoDriver) {
		t.Fatalf("New without a driver: %v", err)
	}
	err := call("cuInit", func() { cu.Init(0) })
	if err == nil {
		t.Fatal("cuInit succeeded without a GPU")
	}
	if !errors.Is(err, backend.ErrNotSupported) {
		t.Fatalf("cuInit: %v (want ErrNotSupported, e.g. CUDA_ERROR_STUB_LIBRARY or NO_DEVICE)", err)
	}
}

// newGPU skips unless a GPU and its driver are usable.
func newGPU(t testing.TB, l backend.Limits) *Backend {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("no GPU: %v", err)
	}
	b, err := New(0, l)
	if err != nil {
		t.Fatalf("GPU present but New failed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// onFake reports whether b runs on the fake CUDA driver (fake/fakecuda.c,
// make cuda-check): the kernels run on the host CPU there, so the tests
// that size their work for a GPU take smaller batches.
func onFake(b *Backend) bool {
	return fakeDriver() && strings.Contains(b.DeviceName(), "fake")
}

func newCtx(t testing.TB, b *Backend, trusted bool) *Context {
	t.Helper()
	c, err := b.newContext(trusted)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	return c
}

func mustFn(t testing.TB, c *Context, name string) backend.Handle {
	t.Helper()
	m, err := c.ModuleLoad([]byte(BuiltinModule))
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.ModuleGetFunction(m, name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustAlloc(t testing.TB, c *Context, n uint64) backend.DevPtr {
	t.Helper()
	p, err := c.MemAlloc(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGPUVectorAdd(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	t.Logf("GPU: %s", b.DeviceName())
	c := newCtx(t, b, false)
	f := mustFn(t, c, "lake_vector_add")
	const n = 100003
	a, bb := make([]float32, n), make([]float32, n)
	for i := range a {
		a[i], bb[i] = float32(i)*0.5, float32(n-i)
	}
	pa, pb, pc := mustAlloc(t, c, 4*n), mustAlloc(t, c, 4*n), mustAlloc(t, c, 4*n)
	s, err := c.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MemcpyHtoDAsync(pa, f32bytes(a), s); err != nil {
		t.Fatal(err)
	}
	if err := c.MemcpyHtoDAsync(pb, f32bytes(bb), s); err != nil {
		t.Fatal(err)
	}
	if err := c.LaunchKernel(f, backend.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, backend.Dim3{X: 256, Y: 1, Z: 1}, 0, s, Pack(uint64(pa), uint64(pb), uint64(pc), n)); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4*n)
	if err := c.MemcpyDtoHAsync(out, pc, s); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:])); got != a[i]+bb[i] {
			t.Fatalf("c[%d] = %v, want %v", i, got, a[i]+bb[i])
		}
	}
	if err := c.StreamDestroy(s); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Allocations != 3 || st.BytesAllocated != 12*n || st.Modules != 1 || st.Streams != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestGPUTotalBytes: all contexts together hold at most TotalBytes;
// freeing and destroying give the bytes back.
func TestGPUTotalBytes(t *testing.T) {
	b := newGPU(t, backend.Limits{MaxBytes: 1 << 20, TotalBytes: 3 << 19})
	c1, c2 := newCtx(t, b, false), newCtx(t, b, false)
	p1 := mustAlloc(t, c1, 1<<20)
	if _, err := c2.MemAlloc(1 << 20); !errors.Is(err, backend.ErrOutOfMemory) {
		t.Fatalf("over the total: %v", err)
	}
	mustAlloc(t, c2, 1<<19)
	if err := c1.MemFree(p1); err != nil {
		t.Fatal(err)
	}
	mustAlloc(t, c2, 1<<19)
	if err := c2.Destroy(); err != nil {
		t.Fatal(err)
	}
	mustAlloc(t, c1, 1<<20)
}

func TestGPUMemoryZeroedAndBounded(t *testing.T) {
	b := newGPU(t, backend.Limits{MaxBytes: 1 << 20, MaxAllocations: 4, MaxStreams: 2})
	c := newCtx(t, b, false)
	p := mustAlloc(t, c, 4096)
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = 0xff
	}
	if err := c.MemcpyDtoH(buf, p); err != nil {
		t.Fatal(err)
	}
	for i, v := range buf {
		if v != 0 {
			t.Fatalf("byte %d of a new allocation is %#x", i, v)
		}
	}
	cases := map[string]error{}
	_, cases["over MaxBytes"] = c.MemAlloc(1 << 20)
	_, cases["zero size"] = c.MemAlloc(0)
	cases["copy past the end"] = c.MemcpyHtoD(p+1, make([]byte, 4096))
	cases["copy from unknown"] = c.MemcpyDtoH(buf, 0x10)
	cases["free interior"] = c.MemFree(p + 8)
	cases["async on unknown stream"] = c.MemcpyHtoDAsync(p, buf[:8], 77)
	for i := 0; i < 3; i++ {
		mustAlloc(t, c, 16)
	}
	_, cases["over MaxAllocations"] = c.MemAlloc(16)
	want := map[string]error{
		"over MaxBytes": backend.ErrOutOfMemory, "zero size": backend.ErrOutOfMemory,
		"copy past the end": backend.ErrInvalidValue, "copy from unknown": backend.ErrInvalidValue,
		"free interior": backend.ErrInvalidValue, "async on unknown stream": backend.ErrInvalidHandle,
		"over MaxAllocations": backend.ErrOutOfMemory,
	}
	for k, err := range cases {
		if !errors.Is(err, want[k]) {
			t.Errorf("%s: %v, want %v", k, err, want[k])
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := c.StreamCreate(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.StreamCreate(); !errors.Is(err, backend.ErrOutOfMemory) {
		t.Errorf("third stream: %v", err)
	}
	if err := c.MemFree(p); err != nil {
		t.Fatal(err)
	}
	if err := c.MemFree(p); !errors.Is(err, backend.ErrInvalidValue) {
		t.Errorf("double free: %v", err)
	}
}

// TestGPUHostileLaunches: launches a client could send to break out of
// its allocations are refused before the driver sees them.
func TestGPUHostileLaunches(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	c := newCtx(t, b, false)
	va := mustFn(t, c, "lake_vector_add")
	lin := mustFn(t, c, "lake_linnos_int0")
	fault := mustFn(t, c, "lake_fault")
	p := mustAlloc(t, c, 4096)
	other := newCtx(t, b, false)
	q := mustAlloc(t, other, 4096)
	g, bl := backend.Dim3{X: 1, Y: 1, Z: 1}, backend.Dim3{X: 256, Y: 1, Z: 1}
	type launch struct {
		f           backend.Handle
		grid, block backend.Dim3
		shared      uint32
		params      []byte
		want        error
	}
	cases := map[string]launch{
		"overrun":               {va, g, bl, 0, Pack(uint64(p), uint64(p), uint64(p), 1025), backend.ErrInvalidValue},
		"other client's memory": {va, g, bl, 0, Pack(uint64(p), uint64(p), uint64(q), 16), backend.ErrInvalidValue},
		"wild pointer":          {va, g, bl, 0, Pack(0xdead0000, uint64(p), uint64(p), 16), backend.ErrInvalidValue},
		"too few params":        {va, g, bl, 0, Pack(uint64(p), uint64(p), uint64(p)), backend.ErrInvalidValue},
		"ragged params":         {va, g, bl, 0, []byte{1, 2, 3}, backend.ErrInvalidValue},
		"huge count":            {va, g, bl, 0, Pack(uint64(p), uint64(p), uint64(p), math.MaxUint64), backend.ErrInvalidValue},
		"empty grid":            {va, backend.Dim3{}, bl, 0, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidValue},
		"too many threads":      {va, backend.Dim3{X: 1 << 31, Y: 1 << 31, Z: 2}, bl, 0, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidValue},
		"block too big":         {va, g, backend.Dim3{X: 4096, Y: 1, Z: 1}, 0, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidValue},
		"too much shared":       {va, g, bl, 1 << 30, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidValue},
		"linnos wrong block":    {lin, g, backend.Dim3{X: 32, Y: 1, Z: 1}, 0, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidValue},
		"linnos short params":   {lin, g, bl, 0, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidValue},
		"trusted kernel":        {fault, g, bl, 0, Pack(0, 0), backend.ErrNotSupported},
		"unknown function":      {999, g, bl, 0, Pack(uint64(p), uint64(p), uint64(p), 1), backend.ErrInvalidHandle},
		"function of another":   {mustFn(t, other, "lake_vector_add") + 100, g, bl, 0, nil, backend.ErrInvalidHandle},
	}
	for name, l := range cases {
		err := c.LaunchKernel(l.f, l.grid, l.block, l.shared, 0, l.params)
		if !errors.Is(err, l.want) {
			t.Errorf("%s: %v, want %v", name, err, l.want)
		}
	}
	if _, err := c.ModuleLoad([]byte(".version 7.0\n.target sm_80\n.address_size 64\n")); !errors.Is(err, backend.ErrNotSupported) {
		t.Errorf("untrusted arbitrary image: %v", err)
	}
	if _, err := c.ModuleGetFunction(1, "no_such_kernel"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("unknown kernel: %v", err)
	}
	// The context still works and nothing was rebuilt.
	if err := c.LaunchKernel(va, g, bl, 0, 0, Pack(uint64(p), uint64(p), uint64(p), 16)); err != nil {
		t.Fatal(err)
	}
	if c.Rebuilds() != 0 {
		t.Fatal("a refused launch rebuilt the context")
	}
}

// TestGPUFaultIsolated: a kernel that faults (trusted lake_fault writing
// to an unmapped address) fails its own client's call, rebuilds only
// that client's context, and another client's work goes on.
func TestGPUFaultIsolated(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	bad := newCtx(t, b, true)
	good := newCtx(t, b, false)
	va := mustFn(t, good, "lake_vector_add")
	pg := mustAlloc(t, good, 4*256)
	ones := make([]float32, 256)
	for i := range ones {
		ones[i] = 1
	}
	if err := good.MemcpyHtoD(pg, f32bytes(ones)); err != nil {
		t.Fatal(err)
	}
	fault := mustFn(t, bad, "lake_fault")
	pb := mustAlloc(t, bad, 64)
	g, bl := backend.Dim3{X: 1, Y: 1, Z: 1}, backend.Dim3{X: 32, Y: 1, Z: 1}
	err := bad.LaunchKernel(fault, g, bl, 0, 0, Pack(0x10, 1))
	if !errors.Is(err, backend.ErrLaunchFailed) {
		t.Fatalf("faulting kernel: %v", err)
	}
	if bad.Rebuilds() != 1 {
		t.Fatalf("rebuilds = %d", bad.Rebuilds())
	}
	if err := bad.MemcpyHtoD(pb, []byte{1}); !errors.Is(err, backend.ErrInvalidValue) {
		t.Fatalf("old allocation after the rebuild: %v", err)
	}
	if st := bad.Stats(); st.Allocations != 0 || st.Modules != 0 {
		t.Fatalf("rebuilt context holds %+v", st)
	}
	// The rebuilt context works.
	f2 := mustFn(t, bad, "lake_vector_add")
	p2 := mustAlloc(t, bad, 16)
	if err := bad.LaunchKernel(f2, g, bl, 0, 0, Pack(uint64(p2), uint64(p2), uint64(p2), 4)); err != nil {
		t.Fatalf("after rebuild: %v", err)
	}
	// The other client never noticed.
	if err := good.LaunchKernel(va, g, backend.Dim3{X: 256, Y: 1, Z: 1}, 0, 0, Pack(uint64(pg), uint64(pg), uint64(pg), 256)); err != nil {
		t.Fatalf("other client: %v", err)
	}
	out := make([]byte, 4*256)
	if err := good.MemcpyDtoH(out, pg); err != nil {
		t.Fatal(err)
	}
	if v := math.Float32frombits(binary.LittleEndian.Uint32(out[1020:])); v != 2 {
		t.Fatalf("other client's result %v", v)
	}
	if good.Rebuilds() != 0 {
		t.Fatal("the other client was rebuilt")
	}
}

// TestGPUTrustedImage: a trusted context loads an arbitrary PTX image;
// a garbage image is an error, not a crash.
func TestGPUTrustedImage(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	c := newCtx(t, b, true)
	m, err := c.ModuleLoad(BuiltinPTX)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModuleGetFunction(m, "lake_vector_add"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModuleGetFunction(m, "missing"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("missing symbol: %v", err)
	}
	if _, err := c.ModuleLoad([]byte("this is not PTX")); err == nil || AsResult(err) == Success {
		t.Fatalf("garbage image: %v", err)
	}
	if err := c.ModuleUnload(m); err != nil {
		t.Fatal(err)
	}
	if err := c.ModuleUnload(m); !errors.Is(err, backend.ErrInvalidHandle) {
		t.Fatal(err)
	}
}

func TestGPURegisterHost(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	const n = 1 << 20
	mem := testMapping(t, n)
	unreg, err := b.RegisterHost(mem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.RegisterHost(mem); err == nil {
		t.Fatal("registered twice")
	}
	c := newCtx(t, b, false)
	p := mustAlloc(t, c, n)
	s, _ := c.StreamCreate()
	for i := range mem {
		mem[i] = byte(i * 7)
	}
	if err := c.MemcpyHtoDAsync(p, mem, s); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	clear(mem)
	if err := c.MemcpyDtoHAsync(mem, p, s); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	for i := range mem {
		if mem[i] != byte(i*7) {
			t.Fatalf("byte %d", i)
		}
	}
	if err := unreg(); err != nil {
		t.Fatal(err)
	}
	if err := unreg(); err != nil {
		t.Fatal("second unregister", err)
	}
}

// TestGPULinnOSBitExact: the GPU LinnOS kernels give the CPU models'
// classes bit for bit (integer, and float in the same order), for the
// base model and the +1/+2 variants, at several batch sizes.
func TestGPULinnOSBitExact(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	for extra := 0; extra <= linnos.MaxExtra; extra++ {
		f, q := linnosModels(t, extra)
		gi, err := NewLinnOSInt(b, q)
		if err != nil {
			t.Fatal(err)
		}
		gf, err := NewLinnOSFloat(b, f)
		if err != nil {
			t.Fatal(err)
		}
		sizes := []int{1, 7, 256, 4096, 70000}
		if onFake(b) {
			// Host kernels: smaller batches; one past maxGrid (blocks
			// stride over the items) for the base model only.
			sizes = []int{1, 7, 256, 1500}
			if extra == 0 {
				sizes = append(sizes, maxGrid+300)
			}
		}
		for _, n := range sizes {
			in := linnosInputs(n, uint64(n))
			wantI, wantF := make([]int32, n), make([]int32, n)
			if err := q.PredictBatch(in, wantI); err != nil {
				t.Fatal(err)
			}
			if err := f.PredictBatch(in, wantF); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, 4*n)
			if err := gi.Predict(i32bytes(in), out, n); err != nil {
				t.Fatal(err)
			}
			slow := 0
			for i := 0; i < n; i++ {
				if g := int32(binary.LittleEndian.Uint32(out[4*i:])); g != wantI[i] {
					t.Fatalf("int extra=%d n=%d item %d: GPU %d CPU %d", extra, n, i, g, wantI[i])
				}
				slow += int(wantI[i])
			}
			if err := gf.Predict(i32bytes(in), out, n); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				if g := int32(binary.LittleEndian.Uint32(out[4*i:])); g != wantF[i] {
					t.Fatalf("float extra=%d n=%d item %d: GPU %d CPU %d", extra, n, i, g, wantF[i])
				}
			}
			if n >= 256 && (slow == 0 || slow == n) {
				t.Fatalf("extra=%d n=%d: every class is %d, the test data decides nothing", extra, n, wantI[0])
			}
		}
		gi.Close()
		gf.Close()
	}
}

// TestGPUConcurrentClients: contexts used from many goroutines at once.
func TestGPUConcurrentClients(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	_, q := linnosModels(t, 0)
	g, err := NewLinnOSInt(b, q)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	in := linnosInputs(64, 5)
	want := make([]int32, 64)
	q.PredictBatch(in, want)
	rounds := 50
	if onFake(b) {
		rounds = 10
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]byte, 4*64)
			for k := 0; k < rounds; k++ {
				if err := g.Predict(i32bytes(in), out, 64); err != nil {
					t.Error(err)
					return
				}
				for i := range want {
					if int32(binary.LittleEndian.Uint32(out[4*i:])) != want[i] {
						t.Error("mismatch")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestGPUMLPBitExact: lake_mlp on the GPU equals kernels.MLP.Forward bit
// for bit, with ReLU, tanh and sigmoid layers.
func TestGPUMLPBitExact(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	r := rand.New(rand.NewPCG(8, 8))
	for _, tc := range []struct {
		sh   []int
		acts []kernels.Activation
	}{
		{[]int{8, 16, 2}, []kernels.Activation{kernels.ActReLU}},
		{[]int{31, 256, 256, 2}, []kernels.Activation{kernels.ActReLU}},
		{[]int{5, 1000, 3}, []kernels.Activation{kernels.ActReLU}},
		{[]int{6, 64, 64, 3}, []kernels.Activation{kernels.ActTanh}},
		{[]int{6, 64, 64, 3}, []kernels.Activation{kernels.ActSigmoid}},
		{[]int{9, 64, 33, 17, 4}, []kernels.Activation{kernels.ActTanh, kernels.ActSigmoid, kernels.ActReLU}},
	} {
		sh := tc.sh
		m := actMLP(t, r, sh, tc.acts...)
		g, err := NewMLP(b, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 100, 5000} {
			in := normals(r, n*m.InDim())
			for i := range in[:m.InDim()] {
				in[i] *= 200 // saturate the activations
			}
			want := make([]float32, n*m.OutDim())
			if err := m.Forward(in, want, n); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, 4*len(want))
			if err := g.Predict(f32bytes(in), out, n); err != nil {
				t.Fatal(err)
			}
			for i, w := range want {
				if got := binary.LittleEndian.Uint32(out[4*i:]); got != math.Float32bits(w) {
					t.Fatalf("%v n=%d output %d: GPU %v CPU %v", sh, n, i, math.Float32frombits(got), w)
				}
			}
		}
		g.Close()
	}
}

// TestGPUModelRecoversFromFault: a fault in a GPU model's context
// (here lake_fault, launched into it) rebuilds the context empty; the
// model uploads itself again and its next batch is right.
func TestGPUModelRecoversFromFault(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	_, q := linnosModels(t, 1)
	g, err := NewLinnOSInt(b, q)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	feat := linnosInputs(300, 2)
	want := make([]int32, 300)
	q.PredictBatch(feat, want)
	check := func() {
		t.Helper()
		out := make([]byte, 4*300)
		if err := g.Predict(i32bytes(feat), out, 300); err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if int32(binary.LittleEndian.Uint32(out[4*i:])) != w {
				t.Fatalf("item %d", i)
			}
		}
	}
	check()
	c := g.r.ctx
	c.trusted = true // so that this test may launch lake_fault into it
	f := mustFn(t, c, "lake_fault")
	if err := c.LaunchKernel(f, backend.Dim3{X: 1, Y: 1, Z: 1}, backend.Dim3{X: 1, Y: 1, Z: 1}, 0, 0, Pack(0x10, 1)); !errors.Is(err, backend.ErrLaunchFailed) {
		t.Fatalf("fault: %v", err)
	}
	if c.Rebuilds() != 1 {
		t.Fatalf("rebuilds %d", c.Rebuilds())
	}
	check()
	check()
}

// TestGPUSnapshotBitExact: every golden LiteFlow snapshot, built and run
// on the GPU by the shared C engine, equals snapshot.RunQuantized bit for
// bit; a corrupted image is refused by the device-side validation too.
func TestGPUSnapshotBitExact(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	for name, img := range goldenSnapshots(t) {
		s, err := snapshot.Decode(img)
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewSnapshot(b, img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, n := range []int{1, 1000} {
			in := snapshotInputs(s, n, uint64(n))
			out := make([]byte, 4*n*s.OutputDim())
			if err := g.RunQuantized(i32bytes(in), out, n); err != nil {
				t.Fatal(err)
			}
			want := make([]int32, s.OutputDim())
			for i := 0; i < n; i++ {
				if err := s.RunQuantized(in[i*s.InputDim():(i+1)*s.InputDim()], want); err != nil {
					t.Fatal(err)
				}
				for o, w := range want {
					if got := int32(binary.LittleEndian.Uint32(out[4*(i*s.OutputDim()+o):])); got != w {
						t.Fatalf("%s n=%d item %d output %d: GPU %d Go %d", name, n, i, o, got, w)
					}
				}
			}
		}
		g.Close()
	}
}

// TestGPULaunchTimeout: a kernel that outlasts the backend's launch
// timeout (lake_spin, ~3 s at 2 GHz, against a 300 ms bound) fails its
// launch with ErrLaunchFailed (CUDA_ERROR_LAUNCH_TIMEOUT) within about the
// bound, its context is rebuilt for that client alone, the rebuilt
// context works, and another client's context never notices.
func TestGPULaunchTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	b := newGPU(t, backend.Limits{LaunchTimeout: timeout})
	slow := newCtx(t, b, true)
	other := newCtx(t, b, false)
	va := mustFn(t, other, "lake_vector_add")
	po := mustAlloc(t, other, 64)
	spin := mustFn(t, slow, "lake_spin")
	done := mustAlloc(t, slow, 8)
	one := backend.Dim3{X: 1, Y: 1, Z: 1}
	start := time.Now()
	err := slow.LaunchKernel(spin, one, one, 0, 0, Pack(uint64(done), 6_000_000_000))
	took := time.Since(start)
	if !errors.Is(err, backend.ErrLaunchFailed) || AsResult(err) != ErrorLaunchTimeout {
		t.Fatalf("spinning kernel after %v: %v", took, err)
	}
	t.Logf("timed out after %v (bound %v; the rest is tearing the context down): %v", took, timeout, err)
	if took > 10*time.Second {
		t.Fatalf("the timeout took %v", took)
	}
	if slow.Rebuilds() != 1 {
		t.Fatalf("rebuilds = %d", slow.Rebuilds())
	}
	// A short spin in the rebuilt context finishes within the bound.
	spin = mustFn(t, slow, "lake_spin")
	done = mustAlloc(t, slow, 8)
	if err := slow.LaunchKernel(spin, one, one, 0, 0, Pack(uint64(done), 1000)); err != nil {
		t.Fatalf("after the rebuild: %v", err)
	}
	flag := make([]byte, 8)
	if err := slow.MemcpyDtoH(flag, done); err != nil || flag[0] != 1 {
		t.Fatalf("short spin: %v %v", flag, err)
	}
	if err := other.LaunchKernel(va, one, backend.Dim3{X: 16, Y: 1, Z: 1}, 0, 0, Pack(uint64(po), uint64(po), uint64(po), 16)); err != nil {
		t.Fatalf("other client: %v", err)
	}
	if other.Rebuilds() != 0 {
		t.Fatal("the other client was rebuilt")
	}
}

// TestGPURunsFromRegisteredHost: the models' runs paths (what laked
// uses for a client's registered arena) copy inputs from, and outputs
// to, scattered runs of a registered mapping, one copy per run, and give
// the CPU models' answers bit for bit; runs that do not hold the batch
// are refused before anything is copied.
func TestGPURunsFromRegisteredHost(t *testing.T) {
	b := newGPU(t, backend.Limits{})
	const size = 1 << 20
	mem := registeredMapping(t, b, size)
	// LinnOS: 50 items as runs of 7, 30 and 13 records at scattered
	// offsets, classes to runs of 20 and 30.
	_, q := linnosModels(t, 1)
	g, err := NewLinnOSInt(b, q)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const n, rec = 50, 4 * linnos.NumInputs
	feat := linnosInputs(n, 3)
	raw := i32bytes(feat)
	offs, cnts := []int{1000, 40000, 9000}, []int{7, 30, 13}
	var ins [][]byte
	k := 0
	for i, o := range offs {
		r := mem[o : o+cnts[i]*rec]
		copy(r, raw[k*rec:])
		k += cnts[i]
		ins = append(ins, r)
	}
	outs := [][]byte{mem[200000 : 200000+20*4], mem[300000 : 300000+30*4]}
	if err := g.PredictRuns(ins, outs, n); err != nil {
		t.Fatal(err)
	}
	want := make([]int32, n)
	if err := q.PredictBatch(feat, want); err != nil {
		t.Fatal(err)
	}
	got := append(append([]byte(nil), outs[0]...), outs[1]...)
	for i := range want {
		if c := int32(binary.LittleEndian.Uint32(got[4*i:])); c != want[i] {
			t.Fatalf("item %d: GPU %d, CPU %d", i, c, want[i])
		}
	}
	if err := g.PredictRuns(ins[:2], outs, n); !errors.Is(err, backend.ErrInvalidValue) {
		t.Fatalf("runs one short: %v", err)
	}
	// A tanh/sigmoid MLP through runs.
	r := rand.New(rand.NewPCG(5, 5))
	m := actMLP(t, r, []int{6, 32, 32, 3}, kernels.ActTanh, kernels.ActSigmoid)
	gm, err := NewMLP(b, m)
	if err != nil {
		t.Fatal(err)
	}
	defer gm.Close()
	const mn = 40
	in := normals(r, mn*6)
	wantF := make([]float32, mn*3)
	if err := m.Forward(in, wantF, mn); err != nil {
		t.Fatal(err)
	}
	inb := f32bytes(in)
	copy(mem[500000:], inb[:24*15])
	copy(mem[600000:], inb[24*15:])
	mins := [][]byte{mem[500000 : 500000+24*15], mem[600000 : 600000+24*25]}
	mouts := [][]byte{mem[700000 : 700000+12*mn]}
	if err := gm.PredictRuns(mins, mouts, mn); err != nil {
		t.Fatal(err)
	}
	for i, w := range wantF {
		if gb := binary.LittleEndian.Uint32(mouts[0][4*i:]); gb != math.Float32bits(w) {
			t.Fatalf("MLP output %d: GPU %v, CPU %v", i, math.Float32frombits(gb), w)
		}
	}
}
