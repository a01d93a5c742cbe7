package cpu_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

// spinModule's "spin" kernel loops until its launch must stop, as a
// runaway kernel that checks KernelContext.Err would; spinning counts the
// spin kernels running now.
const spinModule = "cpu_test_spin"

var spinning atomic.Int32

func init() {
	if err := cpu.RegisterModule(spinModule, map[string]cpu.KernelFunc{
		"spin": func(k *cpu.KernelContext) error {
			spinning.Add(1)
			defer spinning.Add(-1)
			for {
				if err := k.Err(); err != nil {
					return err
				}
				for i := 0; i < 1000; i++ {
					_ = i
				}
			}
		},
	}); err != nil {
		panic(err)
	}
}

func spinFn(t *testing.T, c backend.Context) backend.Handle {
	t.Helper()
	m, err := c.ModuleLoad([]byte(spinModule))
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.ModuleGetFunction(m, "spin")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func waitSpinning(t *testing.T, want int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for spinning.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d spin kernels running, want %d", spinning.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLaunchTimeout: a launch that runs past LaunchTimeout is stopped and
// fails with ErrLaunchFailed saying why.
func TestLaunchTimeout(t *testing.T) {
	_, c := newCtx(t, backend.Limits{LaunchTimeout: 50 * time.Millisecond})
	f := spinFn(t, c)
	start := time.Now()
	err := c.LaunchKernel(f, backend.Dim3{X: 1, Y: 1, Z: 1}, backend.Dim3{X: 1, Y: 1, Z: 1}, 0, 0, nil)
	wantErr(t, err, backend.ErrLaunchFailed, "overlong launch")
	if !strings.Contains(err.Error(), "time budget") {
		t.Fatalf("error does not say why: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("launch stopped after %v, budget 50ms", d)
	}
	waitSpinning(t, 0)
}

// TestAbortStopsRunningAndQueuedLaunches: Abort stops the running kernel
// of every stream at its next check; launches still queued fail without
// running.
func TestAbortStopsRunningAndQueuedLaunches(t *testing.T) {
	_, c := newCtx(t, backend.Limits{LaunchTimeout: time.Hour})
	f := spinFn(t, c)
	one := backend.Dim3{X: 1, Y: 1, Z: 1}
	var streams []backend.Handle
	for i := 0; i < 2; i++ {
		s, err := c.StreamCreate()
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		for j := 0; j < 3; j++ { // one runs, two wait behind it
			if err := c.LaunchKernel(f, one, one, 0, s, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitSpinning(t, 2)
	c.(backend.Aborter).Abort()
	c.(backend.Aborter).Abort() // idempotent
	waitSpinning(t, 0)
	for _, s := range streams {
		err := c.StreamSynchronize(s)
		wantErr(t, err, backend.ErrLaunchFailed, "aborted stream")
		if !errors.Is(err, cpu.ErrLaunchAborted) && !strings.Contains(err.Error(), "aborted") {
			t.Fatalf("error does not say the context was aborted: %v", err)
		}
	}
	// Later launches fail at once too.
	err := c.LaunchKernel(f, one, one, 0, 0, nil)
	wantErr(t, err, backend.ErrLaunchFailed, "launch after abort")
	if spinning.Load() != 0 {
		t.Fatal("a kernel ran after Abort")
	}
}

// TestTotalBytesAcrossContexts: all contexts together hold at most
// TotalBytes; freeing or destroying gives the bytes back.
func TestTotalBytesAcrossContexts(t *testing.T) {
	b := cpu.New(backend.Limits{MaxBytes: 1 << 20, TotalBytes: 1 << 20})
	c1, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Destroy()
	p, err := c1.MemAlloc(768 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.MemAlloc(512 << 10); !errors.Is(err, backend.ErrOutOfMemory) {
		t.Fatalf("second context past the total: %v", err)
	}
	if b.DeviceBytes() != 768<<10 {
		t.Fatalf("backend counts %d bytes, want %d", b.DeviceBytes(), 768<<10)
	}
	if err := c1.MemFree(p); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.MemAlloc(512 << 10); err != nil {
		t.Fatalf("after a free: %v", err)
	}
	if _, err := c1.MemAlloc(512 << 10); err != nil {
		t.Fatal(err)
	}
	if err := c1.Destroy(); err != nil {
		t.Fatal(err)
	}
	if b.DeviceBytes() != 512<<10 {
		t.Fatalf("after destroy the backend counts %d bytes, want %d", b.DeviceBytes(), 512<<10)
	}
}

// TestQueuedWorkBudgets: stream work queued behind a running kernel holds
// host memory (each launch's copied parameters); past the context's
// QueuedBytes, or the backend's TotalQueuedBytes over all contexts, an
// enqueue fails with ErrOutOfMemory; the bytes come back as the work
// runs or is aborted.
func TestQueuedWorkBudgets(t *testing.T) {
	b := cpu.New(backend.Limits{QueuedBytes: 64 << 10, TotalQueuedBytes: 96 << 10, LaunchTimeout: time.Hour})
	one := backend.Dim3{X: 1, Y: 1, Z: 1}
	params := make([]byte, cpu.MaxParamBytes)
	fill := func(c backend.Context) (queued int, err error) {
		f := spinFn(t, c)
		s, err := c.StreamCreate()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.LaunchKernel(f, one, one, 0, s, nil); err != nil { // runs, blocking the stream
			t.Fatal(err)
		}
		for i := 0; i < 1000; i++ {
			if err = c.LaunchKernel(f, one, one, 0, s, params); err != nil {
				return i, err
			}
		}
		return 1000, nil
	}
	c1, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	n1, err := fill(c1)
	if !errors.Is(err, backend.ErrOutOfMemory) || n1 < 8 || n1 > 16 {
		t.Fatalf("first context queued %d launches of 4 KiB, then %v; want ~15 then ErrOutOfMemory", n1, err)
	}
	c2, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	n2, err := fill(c2)
	if !errors.Is(err, backend.ErrOutOfMemory) || n2 >= n1 {
		t.Fatalf("second context queued %d launches (first %d), then %v; want fewer, the total taken", n2, n1, err)
	}
	if q := b.QueuedBytes(); q > 96<<10 {
		t.Fatalf("%d bytes queued, over the total", q)
	}
	for _, c := range []backend.Context{c1, c2} {
		c.(backend.Aborter).Abort()
		if err := c.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
	waitSpinning(t, 0)
	if q := b.QueuedBytes(); q != 0 {
		t.Fatalf("%d bytes still counted after the work ended", q)
	}
}
