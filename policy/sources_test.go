package policy

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGPU is a gpuDevice with settable readings.
type fakeGPU struct {
	util    uint32
	free    uint64
	pids    []uint32
	err     error // returned by Utilization
	procErr error
	closed  int
}

func (f *fakeGPU) Utilization() (uint32, error) { return f.util, f.err }
func (f *fakeGPU) MemoryFree() (uint64, error)  { return f.free, nil }
func (f *fakeGPU) Processes() ([]uint32, error) { return f.pids, f.procErr }
func (f *fakeGPU) Close() error                 { f.closed++; return nil }

func TestNVMLSample(t *testing.T) {
	f := &fakeGPU{util: 37, free: 5<<20 + 123, pids: []uint32{1, 2, 2, uint32(os.Getpid()), 3}}
	n := newNVML(f)
	l, err := n.Sample()
	if err != nil {
		t.Fatal(err)
	}
	// pid 2 counts once, laked itself not at all.
	if l != (Load{GPUUtilPct: 37, GPUMemFreeMiB: 5, GPUOtherProcs: 3}) {
		t.Fatalf("%+v", l)
	}
	f.util, f.free = 250, 1<<60 // out of range readings are clamped
	if l, _ := n.Sample(); l.GPUUtilPct != 100 || l.GPUMemFreeMiB != ^uint32(0) {
		t.Fatalf("%+v", l)
	}
	f.procErr = errors.New("no permission")
	if l, err := n.Sample(); err != nil || l.GPUOtherProcs != 0 {
		t.Fatalf("a failed process query: %+v %v", l, err)
	}
	f.err = errors.New("GPU is lost")
	if _, err := n.Sample(); err == nil {
		t.Fatal("a failed utilisation query is not an error")
	}
	n.Close()
	n.Close()
	if f.closed != 1 {
		t.Fatalf("closed %d times", f.closed)
	}
	if _, err := n.Sample(); err == nil {
		t.Fatal("sample after close")
	}
}

// TestNVMLWithoutDriver runs where there is no NVIDIA driver: OpenNVML
// fails with ErrNVMLUnavailable instead of crashing.
func TestNVMLWithoutDriver(t *testing.T) {
	n, err := OpenNVML(0)
	if err == nil {
		defer n.Close()
		t.Skip("NVML is available here: see TestNVMLOnGPU")
	}
	if !errors.Is(err, ErrNVMLUnavailable) {
		t.Fatalf("OpenNVML: %v", err)
	}
}

// TestNVMLOnGPU reads a real GPU (make gpu-check runs it there).
func TestNVMLOnGPU(t *testing.T) {
	if _, err := os.Stat("/dev/nvidiactl"); err != nil {
		t.Skipf("no GPU: %v", err)
	}
	n, err := OpenNVML(0)
	if err != nil {
		t.Fatalf("a GPU is present but NVML failed: %v", err)
	}
	defer n.Close()
	l, err := n.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if l.GPUUtilPct > 100 || l.GPUMemFreeMiB == 0 {
		t.Fatalf("implausible sample %+v", l)
	}
	t.Logf("NVML: %+v", l)
}

func writeStat(t *testing.T, path, line string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(line+"\ncpu0 1 2 3 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProcStat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	writeStat(t, path, "cpu  100 0 100 700 100 0 0 0 0 0")
	p, err := NewProcStat(path, 100*time.Millisecond, clock)
	if err != nil {
		t.Fatal(err)
	}
	// 300 more jiffies busy, 100 idle: 75 %.
	writeStat(t, path, "cpu  300 0 200 750 150 0 0 0 0 0")
	if u := p.Util(); u != 0 {
		t.Fatalf("re-read before the interval: %d", u)
	}
	now = now.Add(100 * time.Millisecond)
	if u := p.Util(); u != 75 {
		t.Fatalf("util %d, want 75", u)
	}
	// Counters going backwards keep the last value.
	writeStat(t, path, "cpu  1 0 1 1 1 0 0 0 0 0")
	now = now.Add(time.Second)
	if u := p.Util(); u != 75 {
		t.Fatalf("after a reset %d", u)
	}
	// A malformed file keeps the last value and reports the error.
	writeStat(t, path, "cpu  x y z")
	now = now.Add(time.Second)
	if u := p.Util(); u != 75 || p.Err() == nil {
		t.Fatalf("malformed: %d %v", u, p.Err())
	}
	writeStat(t, path, "cpu  2 0 1 1 1 0 0 0 0 0")
	now = now.Add(time.Second)
	if u := p.Util(); u != 100 || p.Err() != nil {
		t.Fatalf("all busy: %d %v", u, p.Err())
	}
	if _, err := NewProcStat(filepath.Join(t.TempDir(), "none"), time.Second, nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestProcStatRealFile(t *testing.T) {
	p, err := NewProcStat("/proc/stat", 0, nil)
	if err != nil {
		t.Skipf("no /proc/stat: %v", err)
	}
	for i := 0; i < 3; i++ {
		if u := p.Util(); u > 100 {
			t.Fatal(u)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
}

func TestParseCPULine(t *testing.T) {
	bad := []string{"", "cpu", "cpu 1 2 3", "cpux 1 2 3 4", "intr 1 2 3 4", "cpu 1 2 3 -4",
		"cpu 18446744073709551615 1 0 0", "cpu 1 2 3 99999999999999999999"}
	for _, l := range bad {
		if _, _, err := parseCPULine([]byte(l)); !errors.Is(err, errProcStat) {
			t.Errorf("%q: %v", l, err)
		}
	}
	busy, total, err := parseCPULine([]byte("cpu 1 2 3 4 5 6 7 8 9 10"))
	if err != nil || total != 36 || busy != 27 {
		t.Fatalf("busy %d total %d %v", busy, total, err)
	}
	// Old kernels print only four fields.
	if busy, total, err := parseCPULine([]byte("cpu 1 2 3 4")); err != nil || busy != 6 || total != 10 {
		t.Fatalf("four fields: %d %d %v", busy, total, err)
	}
}

func FuzzParseCPULine(f *testing.F) {
	f.Add([]byte("cpu  100 0 100 700 100 0 0 0 0 0"))
	f.Add([]byte("cpu 18446744073709551615 18446744073709551615 0 0"))
	f.Fuzz(func(t *testing.T, line []byte) {
		busy, total, err := parseCPULine(line)
		if err == nil && busy > total {
			t.Fatalf("busy %d > total %d", busy, total)
		}
	})
}

// countingSource counts samples.
type countingSource struct{ n int }

func (c *countingSource) Sample() (Load, error) {
	c.n++
	if c.n == 2 {
		return Load{}, errors.New("flaky")
	}
	return Load{GPUUtilPct: uint32(c.n)}, nil
}

func TestCached(t *testing.T) {
	src := &countingSource{}
	now := time.Unix(0, 0)
	c := NewCached(src, time.Second, func() time.Time { return now })
	for i := 0; i < 5; i++ {
		if l, err := c.Sample(); err != nil || l.GPUUtilPct != 1 {
			t.Fatalf("%+v %v", l, err)
		}
	}
	now = now.Add(time.Second)
	if _, err := c.Sample(); err == nil {
		t.Fatal("the failed sample's error is not returned")
	}
	now = now.Add(time.Second)
	if l, err := c.Sample(); err != nil || l.GPUUtilPct != 3 || src.n != 3 {
		t.Fatalf("%+v %v after %d samples", l, err, src.n)
	}
}

// slowSource blocks in Sample until released.
type slowSource struct {
	release chan struct{}
	n       atomic.Int32
}

func (s *slowSource) Sample() (Load, error) {
	s.n.Add(1)
	<-s.release
	return Load{GPUUtilPct: uint32(s.n.Load())}, nil
}

// TestCachedNeverWaitsForARefresh: while one caller refreshes a slow
// source, the others get the last sample at once.
func TestCachedNeverWaitsForARefresh(t *testing.T) {
	src := &slowSource{release: make(chan struct{})}
	var mu sync.Mutex
	now := time.Unix(0, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := NewCached(src, time.Second, clock)
	close(src.release)
	if l, _ := c.Sample(); l.GPUUtilPct != 1 {
		t.Fatal(l)
	}
	src.release = make(chan struct{})
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	done := make(chan struct{})
	go func() { c.Sample(); close(done) }() // refreshes, blocked in the source
	for src.n.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 10; i++ {
		if l, _ := c.Sample(); l.GPUUtilPct != 1 {
			t.Fatalf("got %+v while refreshing", l)
		}
	}
	close(src.release)
	<-done
	if l, _ := c.Sample(); l.GPUUtilPct != 2 || src.n.Load() != 2 {
		t.Fatalf("after the refresh: %+v, %d samples", l, src.n.Load())
	}
}
