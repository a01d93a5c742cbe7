package cpu_test

import (
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

func TestStreamOrdering(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	f := fn(t, c, "append")
	const n = 200
	streams := make([]backend.Handle, 4)
	arrs := make([]backend.DevPtr, len(streams))
	for i := range streams {
		s, err := c.StreamCreate()
		if err != nil {
			t.Fatal(err)
		}
		streams[i] = s
		arrs[i] = mustAlloc(t, c, 4*(n+1))
	}
	// Interleave launches over the streams; each stream must see its own
	// launches in order.
	for v := 0; v < n; v++ {
		for i, s := range streams {
			if err := c.LaunchKernel(f, one, one, 0, s, pack(uint64(arrs[i]), uint64(v*10+i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An async copy queued after the launches sees all of them.
	outs := make([][]byte, len(streams))
	for i, s := range streams {
		outs[i] = make([]byte, 4*(n+1))
		if err := c.MemcpyDtoHAsync(outs[i], arrs[i], s); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Synchronize(); err != nil {
		t.Fatal(err)
	}
	for i := range streams {
		got := i32s(outs[i])
		if got[0] != n {
			t.Fatalf("stream %d: count %d want %d", i, got[0], n)
		}
		for v := 0; v < n; v++ {
			if got[v+1] != int32(v*10+i) {
				t.Fatalf("stream %d: element %d is %d want %d", i, v, got[v+1], v*10+i)
			}
		}
	}
}

func TestAsyncHtoDThenKernelThenDtoH(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	f := fn(t, c, "scale")
	s, _ := c.StreamCreate()
	const n = 1000
	p := mustAlloc(t, c, 4*n)
	src := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(float32(i)))
	}
	dst := make([]byte, 4*n)
	if err := c.MemcpyHtoDAsync(p, src, s); err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 3; r++ { // ((x*2+1)*2+1)*2+1 = 8x+7
		if err := c.LaunchKernel(f, one, one, 0, s, pack(uint64(p), n, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.MemcpyDtoHAsync(dst, p, s); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(dst[4*i:])); got != float32(8*i+7) {
			t.Fatalf("x[%d]=%v want %v", i, got, 8*i+7)
		}
	}
}

func TestAsyncErrorReportedAtSync(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	fail := fn(t, c, "fail")
	app := fn(t, c, "append")
	s, _ := c.StreamCreate()
	other, _ := c.StreamCreate()
	arr := mustAlloc(t, c, 64)

	if err := c.LaunchKernel(fail, one, one, 0, s, nil); err != nil {
		t.Fatalf("async launch returned the kernel's error early: %v", err)
	}
	// Work queued after the failure is skipped until the error is taken.
	if err := c.LaunchKernel(app, one, one, 0, s, pack(uint64(arr), 7)); err != nil {
		t.Fatal(err)
	}
	// Other streams and the default stream are unaffected.
	if err := c.StreamSynchronize(other); err != nil {
		t.Errorf("other stream: %v", err)
	}
	err := c.StreamSynchronize(s)
	wantErr(t, err, backend.ErrLaunchFailed, "sync after failed kernel")
	if !strings.Contains(err.Error(), "deliberate failure") {
		t.Errorf("error text lost: %v", err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Errorf("error not cleared by sync: %v", err)
	}
	buf := make([]byte, 8)
	if err := c.MemcpyDtoH(buf, arr); err != nil {
		t.Fatal(err)
	}
	if got := i32s(buf); got[0] != 0 {
		t.Errorf("launch after the failure ran: %v", got)
	}
	// After the sync the stream works again.
	if err := c.LaunchKernel(app, one, one, 0, s, pack(uint64(arr), 7)); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	if err := c.MemcpyDtoH(buf, arr); err != nil {
		t.Fatal(err)
	}
	if got := i32s(buf); got[0] != 1 || got[1] != 7 {
		t.Errorf("after recovery: %v", got)
	}

	// Synchronize reports a stream error too, once.
	if err := c.LaunchKernel(fail, one, one, 0, other, nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.Synchronize(), backend.ErrLaunchFailed, "context synchronize")
	if err := c.Synchronize(); err != nil {
		t.Errorf("second synchronize: %v", err)
	}
	// Stream 0 synchronizes the context.
	if err := c.LaunchKernel(fail, one, one, 0, other, nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.StreamSynchronize(0), backend.ErrLaunchFailed, "stream 0 synchronize")
}

func TestAsyncCopyToFreedPointer(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	gate := fn(t, c, "gate")
	s, _ := c.StreamCreate()
	p := mustAlloc(t, c, 16)
	id, open := newGate()
	defer open()
	if err := c.LaunchKernel(gate, one, one, 0, s, pack(id, 0)); err != nil {
		t.Fatal(err)
	}
	if err := c.MemcpyHtoDAsync(p, make([]byte, 16), s); err != nil {
		t.Fatal(err)
	}
	if err := c.MemFree(p); err != nil {
		t.Fatal(err)
	}
	open()
	wantErr(t, c.StreamSynchronize(s), backend.ErrInvalidHandle, "queued copy to freed memory")
	// Validation at enqueue time.
	wantErr(t, c.MemcpyHtoDAsync(p, make([]byte, 16), s), backend.ErrInvalidHandle, "enqueue copy to freed memory")
}

func TestDefaultStreamWaitsForOtherStreams(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	gate := fn(t, c, "gate")
	s, _ := c.StreamCreate()
	p := mustAlloc(t, c, 4)
	id, open := newGate()
	if err := c.LaunchKernel(gate, one, one, 0, s, pack(id, uint64(p))); err != nil {
		t.Fatal(err)
	}
	// The gate opens only later; a default-stream copy that did not wait
	// for stream s would read 0.
	go func() {
		time.Sleep(20 * time.Millisecond)
		open()
	}()
	buf := make([]byte, 4)
	if err := c.MemcpyDtoH(buf, p); err != nil {
		t.Fatal(err)
	}
	if got := i32s(buf)[0]; got != 42 {
		t.Fatalf("default-stream copy read %d before stream work finished", got)
	}
	// A default-stream launch waits the same way: append reads the count
	// the gate kernel stores (42) and appends after it.
	id2, open2 := newGate()
	q := mustAlloc(t, c, 4*50)
	if err := c.LaunchKernel(gate, one, one, 0, s, pack(id2, uint64(q))); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		open2()
	}()
	app := fn(t, c, "append")
	if err := c.LaunchKernel(app, one, one, 0, 0, pack(uint64(q), 5)); err != nil {
		t.Fatal(err)
	}
	if err := c.Synchronize(); err != nil {
		t.Fatal(err)
	}
	arr := make([]byte, 4*50)
	if err := c.MemcpyDtoH(arr, q); err != nil {
		t.Fatal(err)
	}
	if got := i32s(arr); got[0] != 43 || got[43] != 5 {
		t.Fatalf("default-stream launch ran before stream work: count %d, [43]=%d", got[0], got[43])
	}
}

func TestKernelPanicRecovered(t *testing.T) {
	b, c := newCtx(t, backend.Limits{})
	for _, name := range []string{"panic", "nilderef"} {
		f := fn(t, c, name)
		err := c.LaunchKernel(f, one, one, 0, 0, nil)
		wantErr(t, err, backend.ErrLaunchFailed, name+" on default stream")
		if !strings.Contains(err.Error(), "panicked") {
			t.Errorf("%s: message %q does not mention the panic", name, err)
		}
		s, _ := c.StreamCreate()
		if err := c.LaunchKernel(f, one, one, 0, s, nil); err != nil {
			t.Fatal(err)
		}
		wantErr(t, c.StreamSynchronize(s), backend.ErrLaunchFailed, name+" on a stream")
		if err := c.StreamDestroy(s); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(errorOf(c, t), "deliberate panic") {
		t.Error("panic value not in the error")
	}
	// The context still works.
	p := mustAlloc(t, c, 8)
	if err := c.MemcpyHtoD(p, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if b.BusyNanos() == 0 {
		t.Error("busy time not accounted")
	}
}

func errorOf(c backend.Context, t *testing.T) string {
	err := c.LaunchKernel(fn(t, c, "panic"), one, one, 0, 0, nil)
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestBusyNanosAccumulates(t *testing.T) {
	b, c := newCtx(t, backend.Limits{})
	f := fn(t, c, "scale")
	p := mustAlloc(t, c, 4<<20)
	before := b.BusyNanos()
	for i := 0; i < 5; i++ {
		if err := c.LaunchKernel(f, one, one, 0, 0, pack(uint64(p), 1<<20, 3)); err != nil {
			t.Fatal(err)
		}
	}
	after := b.BusyNanos()
	if after <= before {
		t.Errorf("busy nanos %d -> %d after 5M float updates", before, after)
	}
	s, _ := c.StreamCreate()
	if err := c.MemcpyHtoDAsync(p, make([]byte, 4<<20), s); err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	if b.BusyNanos() <= after {
		t.Error("stream work not accounted")
	}
}

func TestStreamDestroy(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	app := fn(t, c, "append")
	s, _ := c.StreamCreate()
	arr := mustAlloc(t, c, 4*101)
	for i := 0; i < 100; i++ {
		if err := c.LaunchKernel(app, one, one, 0, s, pack(uint64(arr), uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StreamDestroy(s); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if err := c.MemcpyDtoH(buf, arr); err != nil {
		t.Fatal(err)
	}
	if got := i32s(buf)[0]; got != 100 {
		t.Errorf("stream destroy did not wait: %d of 100 ran", got)
	}
	wantErr(t, c.StreamDestroy(s), backend.ErrInvalidHandle, "double stream destroy")
	wantErr(t, c.StreamDestroy(0), backend.ErrInvalidHandle, "destroy default stream")
	wantErr(t, c.LaunchKernel(app, one, one, 0, s, pack(uint64(arr), 1)), backend.ErrInvalidHandle, "launch on destroyed stream")
	if c.Stats().Streams != 0 {
		t.Errorf("stats %+v", c.Stats())
	}
}

func TestFullQueueBlocksThenDrains(t *testing.T) {
	_, c := newCtx(t, backend.Limits{})
	gate := fn(t, c, "gate")
	app := fn(t, c, "append")
	s, _ := c.StreamCreate()
	const n = cpu.MaxQueueDepth + 100
	arr := mustAlloc(t, c, 4*(n+1))
	id, open := newGate()
	if err := c.LaunchKernel(gate, one, one, 0, s, pack(id, 0)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := c.LaunchKernel(app, one, one, 0, s, pack(uint64(arr), uint64(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(10 * time.Millisecond)
	open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.StreamSynchronize(s); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4*(n+1))
	if err := c.MemcpyDtoH(buf, arr); err != nil {
		t.Fatal(err)
	}
	got := i32s(buf)
	if got[0] != n {
		t.Fatalf("count %d want %d", got[0], n)
	}
	for i := 0; i < n; i++ {
		if got[i+1] != int32(i) {
			t.Fatalf("element %d = %d", i, got[i+1])
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	b := cpu.New(backend.Limits{})
	shared, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	scaleShared := fn(t, shared, "scale")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	worker := func(c backend.Context, f backend.Handle, seed int) {
		defer wg.Done()
		s, err := c.StreamCreate()
		if err != nil {
			errs <- err
			return
		}
		defer c.StreamDestroy(s)
		for r := 0; r < 20; r++ {
			n := 64 + seed + r
			p, err := c.MemAlloc(uint64(4 * n))
			if err != nil {
				errs <- err
				return
			}
			src := make([]byte, 4*n)
			for i := 0; i < n; i++ {
				binary.LittleEndian.PutUint32(src[4*i:], math.Float32bits(float32(i+seed)))
			}
			dst := make([]byte, 4*n)
			stream := s
			if r%3 == 0 {
				stream = 0
			}
			if err := c.MemcpyHtoDAsync(p, src, stream); err != nil {
				errs <- err
				return
			}
			if err := c.LaunchKernel(f, one, one, 0, stream, pack(uint64(p), uint64(n), 3)); err != nil {
				errs <- err
				return
			}
			if err := c.MemcpyDtoHAsync(dst, p, stream); err != nil {
				errs <- err
				return
			}
			if err := c.StreamSynchronize(stream); err != nil {
				errs <- err
				return
			}
			for i := 0; i < n; i++ {
				if got := math.Float32frombits(binary.LittleEndian.Uint32(dst[4*i:])); got != float32(i+seed)*3+1 {
					errs <- errors.New("wrong result")
					return
				}
			}
			if err := c.MemFree(p); err != nil {
				errs <- err
				return
			}
		}
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go worker(shared, scaleShared, g)
	}
	// Separate contexts at the same time.
	var own []backend.Context
	for g := 0; g < 4; g++ {
		c, err := b.NewContext()
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, c)
		wg.Add(1)
		go worker(c, fn(t, c, "scale"), 100+g)
	}
	// Stats and Synchronize concurrently with everything else.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 50; i++ {
			_ = shared.Stats()
			if err := shared.Synchronize(); err != nil {
				errs <- err
				return
			}
			runtime.Gosched()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range append(own, shared) {
		if st := c.Stats(); st.Allocations != 0 || st.Streams != 0 {
			t.Errorf("leftover %+v", st)
		}
		if err := c.Destroy(); err != nil {
			t.Error(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

func TestDestroyDrainsQueuedWork(t *testing.T) {
	base := runtime.NumGoroutine()
	b := cpu.New(backend.Limits{})
	c, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	gate := fn(t, c, "gate")
	count := fn(t, c, "count")
	id, open := newGate()
	start := runCount.Load()
	const perStream = 50
	var streams []backend.Handle
	for i := 0; i < 4; i++ {
		s, err := c.StreamCreate()
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		if err := c.LaunchKernel(gate, one, one, 0, s, pack(id, 0)); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < perStream; j++ {
			if err := c.LaunchKernel(count, one, one, 0, s, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := mustAlloc(t, c, 1024)
	destroyed := make(chan error, 1)
	go func() { destroyed <- c.Destroy() }()
	time.Sleep(10 * time.Millisecond)
	open()
	if err := <-destroyed; err != nil {
		t.Fatal(err)
	}
	if got := runCount.Load() - start; got != 4*perStream {
		t.Errorf("destroy drained %d of %d queued launches", got, 4*perStream)
	}
	// Every later call fails with ErrContextDestroyed.
	calls := map[string]error{
		"MemAlloc":          func() error { _, err := c.MemAlloc(8); return err }(),
		"MemFree":           c.MemFree(p),
		"MemcpyHtoD":        c.MemcpyHtoD(p, []byte{1}),
		"MemcpyDtoH":        c.MemcpyDtoH([]byte{1}, p),
		"MemcpyHtoDAsync":   c.MemcpyHtoDAsync(p, []byte{1}, streams[0]),
		"MemcpyDtoHAsync":   c.MemcpyDtoHAsync([]byte{1}, p, streams[0]),
		"ModuleLoad":        func() error { _, err := c.ModuleLoad([]byte(testModule)); return err }(),
		"ModuleUnload":      c.ModuleUnload(1),
		"ModuleGetFunction": func() error { _, err := c.ModuleGetFunction(1, "count"); return err }(),
		"LaunchKernel":      c.LaunchKernel(count, one, one, 0, 0, nil),
		"StreamCreate":      func() error { _, err := c.StreamCreate(); return err }(),
		"StreamDestroy":     c.StreamDestroy(streams[0]),
		"StreamSynchronize": c.StreamSynchronize(streams[1]),
		"Synchronize":       c.Synchronize(),
		"Destroy":           c.Destroy(),
	}
	for name, err := range calls {
		wantErr(t, err, backend.ErrContextDestroyed, name+" after destroy")
	}
	if st := c.Stats(); st != (backend.ContextStats{}) {
		t.Errorf("destroyed context holds %+v", st)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	if n := waitGoroutines(base); n > base {
		t.Errorf("goroutines: %d before, %d after destroy", base, n)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	b := cpu.New(backend.Limits{})
	for i := 0; i < 5; i++ {
		c, err := b.NewContext()
		if err != nil {
			t.Fatal(err)
		}
		f := fn(t, c, "scale")
		p := mustAlloc(t, c, 4096)
		for j := 0; j < 8; j++ { // each stream scales its own 64 bytes
			s, err := c.StreamCreate()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.LaunchKernel(f, one, one, 0, s, pack(uint64(p)+uint64(64*j), 16, 2)); err != nil {
				t.Fatal(err)
			}
			if j%2 == 0 {
				if err := c.StreamDestroy(s); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
	if n := waitGoroutines(base); n > base {
		t.Errorf("goroutines: %d before, %d after", base, n)
	}
}
