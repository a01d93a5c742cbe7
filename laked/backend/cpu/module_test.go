package cpu_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

func TestModuleLoadErrors(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	cases := []struct {
		image []byte
		want  error
	}{
		{nil, backend.ErrInvalidValue},
		{[]byte{0, 0, 0}, backend.ErrInvalidValue},
		{[]byte("bad\nname"), backend.ErrInvalidValue},
		{[]byte("nul\x00inside"), backend.ErrInvalidValue},
		{[]byte{0xff, 'a'}, backend.ErrInvalidValue},
		{[]byte(strings.Repeat("a", cpu.MaxNameLen+1)), backend.ErrInvalidValue},
		{[]byte("no_such_module"), backend.ErrNotFound},
	}
	for _, tc := range cases {
		_, err := c.ModuleLoad(tc.image)
		wantErr(t, err, tc.want, "module load "+string(tc.image))
	}
	m, err := c.ModuleLoad([]byte(testModule + "\x00\x00"))
	if err != nil {
		t.Fatalf("NUL-terminated image: %v", err)
	}
	_, err = c.ModuleGetFunction(m, "no_such_kernel")
	wantErr(t, err, backend.ErrNotFound, "unknown kernel")
	_, err = c.ModuleGetFunction(m, "")
	wantErr(t, err, backend.ErrInvalidValue, "empty kernel name")
	_, err = c.ModuleGetFunction(m+1000, "count")
	wantErr(t, err, backend.ErrInvalidHandle, "unknown module")
	f1, err := c.ModuleGetFunction(m, "count")
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := c.ModuleGetFunction(m, "count")
	if f1 != f2 || f1 == 0 || f1 == m {
		t.Errorf("function handles %#x %#x (module %#x)", f1, f2, m)
	}
	// A module handle is not a function handle and vice versa.
	wantErr(t, c.LaunchKernel(m, one, one, 0, 0, nil), backend.ErrInvalidHandle, "launch a module handle")
	wantErr(t, c.ModuleUnload(f1), backend.ErrInvalidHandle, "unload a function handle")
	if c.Stats().Modules != 1 {
		t.Errorf("stats %+v", c.Stats())
	}
	if err := c.ModuleUnload(m); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.ModuleUnload(m), backend.ErrInvalidHandle, "double unload")
	wantErr(t, c.LaunchKernel(f1, one, one, 0, 0, nil), backend.ErrInvalidHandle, "launch after unload")
	if c.Stats().Modules != 0 {
		t.Errorf("stats %+v", c.Stats())
	}
}

var growRuns int

func TestRegisterErrors(t *testing.T) {
	k := func(*cpu.KernelContext) error { return nil }
	wantErr(t, cpu.RegisterModule(testModule, map[string]cpu.KernelFunc{"x": k}), backend.ErrInvalidValue, "duplicate module")
	wantErr(t, cpu.RegisterModule("", map[string]cpu.KernelFunc{"x": k}), backend.ErrInvalidValue, "empty name")
	wantErr(t, cpu.RegisterModule("reg_empty", nil), backend.ErrInvalidValue, "no kernels")
	wantErr(t, cpu.RegisterModule("reg_nil", map[string]cpu.KernelFunc{"x": nil}), backend.ErrInvalidValue, "nil kernel")
	wantErr(t, cpu.RegisterModule("reg_bad", map[string]cpu.KernelFunc{"a\tb": k}), backend.ErrInvalidValue, "bad kernel name")
	wantErr(t, cpu.RegisterKernel(testModule, "count", k), backend.ErrInvalidValue, "duplicate kernel")
	wantErr(t, cpu.RegisterKernel("reg_x", "k", nil), backend.ErrInvalidValue, "nil kernel")

	// The registry is process-wide: a fresh name per run keeps the test
	// repeatable (go test -count=N).
	growRuns++
	grow := fmt.Sprintf("reg_grow_%d", growRuns)

	// RegisterKernel creates a module; a context that loaded it earlier
	// keeps the kernel set it loaded.
	if err := cpu.RegisterKernel(grow, "a", k); err != nil {
		t.Fatal(err)
	}
	_, c := newCtx(t, backend.Limits{})
	m, err := c.ModuleLoad([]byte(grow))
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.RegisterKernel(grow, "b", k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModuleGetFunction(m, "b"); err == nil {
		t.Error("kernel registered after load visible in the loaded module")
	}
	m2, _ := c.ModuleLoad([]byte(grow))
	if _, err := c.ModuleGetFunction(m2, "b"); err != nil {
		t.Errorf("kernel b after reload: %v", err)
	}
	if got := cpu.RegisteredKernels(grow); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("RegisteredKernels = %v", got)
	}
}

func TestCrossContextHandles(t *testing.T) {
	b, c1 := newCtx(t, backend.Limits{})
	c2, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Destroy()
	// Give both contexts the same history so equal sequence numbers exist.
	var hs [2][3]backend.Handle
	var ps [2]backend.DevPtr
	for i, c := range []backend.Context{c1, c2} {
		m, err := c.ModuleLoad([]byte(testModule))
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.ModuleGetFunction(m, "count")
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.StreamCreate()
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = [3]backend.Handle{m, f, s}
		ps[i] = mustAlloc(t, c, 64)
	}
	m1, f1, s1 := hs[0][0], hs[0][1], hs[0][2]
	if ps[0] == ps[1] || m1 == hs[1][0] || f1 == hs[1][1] || s1 == hs[1][2] {
		t.Fatalf("contexts share handle values: %v %v %v", ps, hs[0], hs[1])
	}
	wantErr(t, c2.MemcpyHtoD(ps[0], []byte{1}), backend.ErrInvalidHandle, "foreign pointer")
	wantErr(t, c2.MemFree(ps[0]), backend.ErrInvalidHandle, "foreign free")
	_, err = c2.ModuleGetFunction(m1, "count")
	wantErr(t, err, backend.ErrInvalidHandle, "foreign module")
	wantErr(t, c2.ModuleUnload(m1), backend.ErrInvalidHandle, "foreign unload")
	wantErr(t, c2.LaunchKernel(f1, one, one, 0, 0, nil), backend.ErrInvalidHandle, "foreign function")
	wantErr(t, c2.LaunchKernel(hs[1][1], one, one, 0, s1, nil), backend.ErrInvalidHandle, "foreign stream")
	wantErr(t, c2.StreamSynchronize(s1), backend.ErrInvalidHandle, "foreign stream sync")
	wantErr(t, c2.StreamDestroy(s1), backend.ErrInvalidHandle, "foreign stream destroy")
	wantErr(t, c2.MemcpyHtoDAsync(ps[1], []byte{1}, s1), backend.ErrInvalidHandle, "foreign stream copy")
	// c1 is unaffected.
	if err := c1.StreamSynchronize(s1); err != nil {
		t.Error(err)
	}
}

func TestLaunchValidation(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	f := fn(t, c, "count")
	zero := backend.Dim3{X: 1, Y: 0, Z: 1}
	wantErr(t, c.LaunchKernel(f, zero, one, 0, 0, nil), backend.ErrInvalidValue, "zero grid dim")
	wantErr(t, c.LaunchKernel(f, one, zero, 0, 0, nil), backend.ErrInvalidValue, "zero block dim")
	wantErr(t, c.LaunchKernel(f, one, one, 0, 0, make([]byte, 7)), backend.ErrInvalidValue, "ragged params")
	wantErr(t, c.LaunchKernel(f, one, one, 0, 0, make([]byte, cpu.MaxParamBytes+8)), backend.ErrInvalidValue, "params too long")
	wantErr(t, c.LaunchKernel(f, one, one, cpu.MaxSharedMem+1, 0, nil), backend.ErrInvalidValue, "shared mem")
	wantErr(t, c.LaunchKernel(0, one, one, 0, 0, nil), backend.ErrInvalidHandle, "function 0")
	wantErr(t, c.LaunchKernel(f, one, one, 0, 12345, nil), backend.ErrInvalidHandle, "unknown stream")
	// A kernel checking its parameter count rejects a wrong one.
	a := fn(t, c, "append")
	wantErr(t, c.LaunchKernel(a, one, one, 0, 0, pack(1)), backend.ErrLaunchFailed, "wrong param count")
}

func TestBackendLifecycle(t *testing.T) {
	b := cpu.New(backend.Limits{})
	if b.Name() != "cpu" {
		t.Errorf("name %q", b.Name())
	}
	c, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Close(), backend.ErrInvalidValue, "close with a live context")
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.Destroy(), backend.ErrContextDestroyed, "double destroy")
	if b.LiveContexts() != 0 {
		t.Errorf("live contexts %d", b.LiveContexts())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = b.NewContext()
	wantErr(t, err, backend.ErrContextDestroyed, "new context after close")
}
