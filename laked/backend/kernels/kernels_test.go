package kernels

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

func pack(words ...uint64) []byte {
	b := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func bytesf32(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// setup returns a fresh context with the builtin module loaded and the
// handles of its two kernels.
func setup(t testing.TB) (backend.Context, backend.Handle, backend.Handle) {
	t.Helper()
	if err := Register(); err != nil {
		t.Fatal(err)
	}
	c, err := cpu.New(backend.Limits{}).NewContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	m, err := c.ModuleLoad([]byte(ModuleName))
	if err != nil {
		t.Fatal(err)
	}
	va, err := c.ModuleGetFunction(m, KernelVectorAdd)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := c.ModuleGetFunction(m, KernelMLPForward)
	if err != nil {
		t.Fatal(err)
	}
	return c, va, mf
}

func upload(t testing.TB, c backend.Context, b []byte) backend.DevPtr {
	t.Helper()
	p, err := c.MemAlloc(uint64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MemcpyHtoD(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

func download(t testing.TB, c backend.Context, p backend.DevPtr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := c.MemcpyDtoH(b, p); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRegisterIdempotent(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Register(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := cpu.RegisteredKernels(ModuleName)
	if len(got) != 2 || got[0] != KernelMLPForward || got[1] != KernelVectorAdd {
		t.Errorf("registered kernels %v", got)
	}
}

func TestVectorAdd(t *testing.T) {
	c, va, _ := setup(t)
	const n = 1000
	a := randomInputs(1, n)
	b := randomInputs(2, n)
	pa, pb := upload(t, c, f32bytes(a)), upload(t, c, f32bytes(b))
	pc, err := c.MemAlloc(4 * (n + 1))
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the launch shape, every i < n is covered (grid-stride),
	// and nothing at or past n is written.
	shapes := [][2]backend.Dim3{
		{{X: 1, Y: 1, Z: 1}, {X: 1, Y: 1, Z: 1}},
		{{X: 4, Y: 1, Z: 1}, {X: 256, Y: 1, Z: 1}},
		{{X: 2, Y: 3, Z: 1}, {X: 8, Y: 2, Z: 2}},
	}
	for _, sh := range shapes {
		if err := c.MemcpyHtoD(pc, make([]byte, 4*(n+1))); err != nil {
			t.Fatal(err)
		}
		if err := c.LaunchKernel(va, sh[0], sh[1], 0, 0, pack(uint64(pa), uint64(pb), uint64(pc), n)); err != nil {
			t.Fatal(err)
		}
		got := bytesf32(download(t, c, pc, 4*(n+1)))
		for i := 0; i < n; i++ {
			if got[i] != a[i]+b[i] {
				t.Fatalf("shape %v: c[%d]=%v want %v", sh, i, got[i], a[i]+b[i])
			}
		}
		if got[n] != 0 {
			t.Errorf("shape %v: wrote c[n]", sh)
		}
	}
	// In place (c aliases a), on an interior pointer, on a stream.
	s, _ := c.StreamCreate()
	off := uint64(4 * 10)
	if err := c.LaunchKernel(va, one, one, 0, s, pack(uint64(pa)+off, uint64(pb)+off, uint64(pa)+off, 5)); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	got := bytesf32(download(t, c, pa, 4*n))
	for i := 0; i < n; i++ {
		want := a[i]
		if i >= 10 && i < 15 {
			want = a[i] + b[i]
		}
		if got[i] != want {
			t.Fatalf("in-place a[%d]=%v want %v", i, got[i], want)
		}
	}
	// n = 0 is a no-op.
	if err := c.LaunchKernel(va, one, one, 0, 0, pack(0, 0, 0, 0)); err != nil {
		t.Errorf("n=0: %v", err)
	}
}

var one = backend.Dim3{X: 1, Y: 1, Z: 1}

func TestVectorAddErrors(t *testing.T) {
	c, va, _ := setup(t)
	pa := upload(t, c, make([]byte, 400))
	for name, params := range map[string][]byte{
		"n past the end":   pack(uint64(pa), uint64(pa), uint64(pa), 101),
		"huge n":           pack(uint64(pa), uint64(pa), uint64(pa), math.MaxUint64),
		"misaligned":       pack(uint64(pa)+1, uint64(pa), uint64(pa), 2),
		"bad pointer":      pack(uint64(pa), 0x1000, uint64(pa), 2),
		"three parameters": pack(uint64(pa), uint64(pa), uint64(pa)),
	} {
		err := c.LaunchKernel(va, one, one, 0, 0, params)
		if !errors.Is(err, backend.ErrLaunchFailed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMLPForwardKernel(t *testing.T) {
	c, _, mf := setup(t)
	for ci, tc := range []struct {
		in   int
		outs []int
		acts []Activation
	}{
		{31, []int{256, 2}, []Activation{ActReLU, ActNone}},
		{6, []int{11, 7, 3, 2}, allActs},
	} {
		layers := randomModel(uint64(10+ci), tc.in, tc.outs, tc.acts)
		blob, err := EncodeMLP(tc.in, layers)
		if err != nil {
			t.Fatal(err)
		}
		const n = 37
		od := tc.outs[len(tc.outs)-1]
		x := randomInputs(uint64(20+ci), n*tc.in)
		// The blob sits at an interior, 4-aligned offset of a larger
		// allocation: the kernel must use only the header's length.
		pm := upload(t, c, append(make([]byte, 8), append(blob, 0xde, 0xad, 0xbe, 0xef)...))
		px := upload(t, c, f32bytes(x))
		po, err := c.MemAlloc(uint64(4 * n * od))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.LaunchKernel(mf, backend.Dim3{X: 2, Y: 1, Z: 1}, backend.Dim3{X: 32, Y: 1, Z: 1}, 0, 0,
			pack(uint64(pm)+8, uint64(px), uint64(po), n)); err != nil {
			t.Fatal(err)
		}
		got := bytesf32(download(t, c, po, 4*n*od))
		closeEnough(t, got, naiveForward(tc.in, layers, x, n))

		// Launch and the Go-level predict path agree bit for bit.
		m, err := ParseMLP(blob)
		if err != nil {
			t.Fatal(err)
		}
		direct := make([]float32, n*od)
		if err := m.Forward(x, direct, n); err != nil {
			t.Fatal(err)
		}
		for i := range direct {
			if math.Float32bits(direct[i]) != math.Float32bits(got[i]) {
				t.Fatalf("case %d: launch and Forward differ at %d: %v vs %v", ci, i, got[i], direct[i])
			}
		}
	}
}

func TestMLPForwardKernelErrors(t *testing.T) {
	c, _, mf := setup(t)
	blob, _ := EncodeMLP(4, randomModel(7, 4, []int{3, 2}, []Activation{ActReLU, ActNone}))
	pm := upload(t, c, blob)
	px := upload(t, c, make([]byte, 4*4*10))
	po := upload(t, c, make([]byte, 4*2*10))
	bad := append([]byte(nil), blob...)
	bad[0] = 'X'
	pbad := upload(t, c, bad)
	ptrunc := upload(t, c, blob[:len(blob)-4])
	nanBlob := append([]byte(nil), blob...)
	binary.LittleEndian.PutUint32(nanBlob[headerLen+16:], math.Float32bits(float32(math.NaN())))
	pnan := upload(t, c, nanBlob)
	hugeLayers := append([]byte(nil), blob...)
	binary.LittleEndian.PutUint32(hugeLayers[8:], 1<<31)
	phuge := upload(t, c, hugeLayers)

	for name, tc := range map[string]struct {
		params []byte
		text   string
	}{
		"bad magic":       {pack(uint64(pbad), uint64(px), uint64(po), 10), "magic"},
		"truncated blob":  {pack(uint64(ptrunc), uint64(px), uint64(po), 10), "overrun"},
		"huge layers":     {pack(uint64(phuge), uint64(px), uint64(po), 10), "layer count"},
		"too many items":  {pack(uint64(pm), uint64(px), uint64(po), 11), "overrun"},
		"absurd items":    {pack(uint64(pm), uint64(px), uint64(po), 1<<62), "too large"},
		"misaligned":      {pack(uint64(pm)+2, uint64(px), uint64(po), 1), "misaligned"},
		"model not there": {pack(0x10, uint64(px), uint64(po), 1), "no live allocation"},
	} {
		err := c.LaunchKernel(mf, one, one, 0, 0, tc.params)
		if !errors.Is(err, backend.ErrLaunchFailed) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %v, want launch failure mentioning %q", name, err, tc.text)
		}
	}
	if err := c.LaunchKernel(mf, one, one, 0, 0, pack(uint64(pm), uint64(px), uint64(po), 10)); err != nil {
		t.Errorf("valid launch after failures: %v", err)
	}
	// A NaN weight is not rejected by a launch; it propagates.
	if err := c.LaunchKernel(mf, one, one, 0, 0, pack(uint64(pnan), uint64(px), uint64(po), 1)); err != nil {
		t.Fatalf("NaN-weight launch: %v", err)
	}
	if got := bytesf32(download(t, c, po, 8)); !math.IsNaN(float64(got[0])) && !math.IsNaN(float64(got[1])) {
		t.Errorf("NaN weight did not propagate: %v", got)
	}
}
