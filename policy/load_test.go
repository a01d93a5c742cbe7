package policy

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestStaticLoad(t *testing.T) {
	var zero StaticLoad
	if l, err := zero.Sample(); err != nil || l != (Load{}) {
		t.Errorf("zero value: %+v %v", l, err)
	}
	s := NewStaticLoad(Load{GPUUtilPct: 42, GPUMemFreeMiB: 8192})
	var src LoadSource = s
	if l, _ := src.Sample(); l != (Load{42, 8192, 0}) {
		t.Errorf("got %+v", l)
	}
	s.Set(Load{GPUUtilPct: 250, GPUMemFreeMiB: ^uint32(0)})
	if l, _ := s.Sample(); l != (Load{100, ^uint32(0), 0}) {
		t.Errorf("capped: got %+v", l)
	}
	var c Context
	Load{7, 9, 3}.Fill(&c)
	if c.GPUUtilPct != 7 || c.GPUMemFreeMiB != 9 || c.GPUOtherProcs != 3 {
		t.Errorf("Fill: %+v", c)
	}
}

// fakeClock is a settable clock for BusyTime.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Unix(1000, 0).Add(d)
}

func newBusy(t *testing.T, window time.Duration) (*BusyTime, *fakeClock, func(time.Duration) time.Time) {
	t.Helper()
	clk := &fakeClock{}
	clk.set(0)
	b, err := NewBusyTime(window, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk, func(d time.Duration) time.Time { return time.Unix(1000, 0).Add(d) }
}

func util(t *testing.T, b *BusyTime) uint32 {
	t.Helper()
	l, err := b.Sample()
	if err != nil {
		t.Fatal(err)
	}
	return l.GPUUtilPct
}

func TestBusyTimeWindow(t *testing.T) {
	ms := time.Millisecond
	b, clk, at := newBusy(t, 100*ms)
	clk.set(1000 * ms)
	if u := util(t, b); u != 0 {
		t.Fatalf("idle: %d", u)
	}
	// 30 ms busy in the last 100 ms, reported as two overlapping intervals.
	if err := b.Busy(at(920*ms), at(940*ms)); err != nil {
		t.Fatal(err)
	}
	if err := b.Busy(at(930*ms), at(950*ms)); err != nil {
		t.Fatal(err)
	}
	if u := util(t, b); u != 30 {
		t.Errorf("overlapping intervals: %d%%, want 30", u)
	}
	// Partly outside the window: only [900, 910) counts.
	if err := b.Busy(at(850*ms), at(910*ms)); err != nil {
		t.Fatal(err)
	}
	if u := util(t, b); u != 40 {
		t.Errorf("clipped interval: %d%%, want 40", u)
	}
	clk.set(1045 * ms) // window [945, 1045): only [945, 950)
	if u := util(t, b); u != 5 {
		t.Errorf("after time passes: %d%%, want 5", u)
	}
	clk.set(2000 * ms)
	if u := util(t, b); u != 0 || len(b.iv) != 0 {
		t.Errorf("long after: %d%%, %d intervals kept", u, len(b.iv))
	}
	if err := b.Busy(at(10*ms), at(5*ms)); !errors.Is(err, ErrBadInterval) {
		t.Errorf("reversed interval: %v", err)
	}
	b.SetMemFreeMiB(2048)
	if l, _ := b.Sample(); l.GPUMemFreeMiB != 2048 {
		t.Errorf("mem %d", l.GPUMemFreeMiB)
	}
}

func TestBusyTimeBeginEnd(t *testing.T) {
	ms := time.Millisecond
	b, clk, at := newBusy(t, 100*ms)
	clk.set(1000 * ms)
	b.Begin(at(950 * ms))
	if u := util(t, b); u != 50 {
		t.Errorf("open work: %d%%, want 50", u)
	}
	b.Begin(at(960 * ms)) // nested: still one busy period
	if err := b.Busy(at(940*ms), at(970*ms)); err != nil {
		t.Fatal(err)
	}
	if u := util(t, b); u != 60 {
		t.Errorf("open work plus overlapping interval: %d%%, want 60", u)
	}
	if err := b.End(at(990 * ms)); err != nil {
		t.Fatal(err)
	}
	if err := b.End(at(995 * ms)); err != nil {
		t.Fatal(err)
	}
	if u := util(t, b); u != 55 { // [940, 995)
		t.Errorf("after End: %d%%, want 55", u)
	}
	if err := b.End(at(999 * ms)); !errors.Is(err, ErrBadInterval) {
		t.Errorf("End without Begin: %v", err)
	}
	clk.set(10 * time.Second)
	b.Begin(at(0)) // open for longer than the window
	if u := util(t, b); u != 100 {
		t.Errorf("saturated: %d%%, want 100", u)
	}
}

func TestBusyTimeBadWindow(t *testing.T) {
	for _, w := range []time.Duration{0, -1, MaxBusyWindow + 1} {
		if _, err := NewBusyTime(w, nil); err == nil {
			t.Errorf("window %v accepted", w)
		}
	}
}

// TestBusyTimeMatchesBitmap checks the interval union against a brute-force
// per-microsecond bitmap on random reports, and the interval list stays
// sorted and disjoint.
func TestBusyTimeMatchesBitmap(t *testing.T) {
	us := time.Microsecond
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		b, clk, at := newBusy(t, 1000*us)
		clk.set(5000 * us)
		busy := make([]bool, 5000)
		for i := 0; i < 50; i++ {
			s := r.IntN(5000)
			e := min(5000, s+r.IntN(200))
			if err := b.Busy(at(time.Duration(s)*us), at(time.Duration(e)*us)); err != nil {
				t.Fatal(err)
			}
			for k := s; k < e; k++ {
				busy[k] = true
			}
			for k := 1; k < len(b.iv); k++ {
				if b.iv[k-1].end >= b.iv[k].start || b.iv[k].start >= b.iv[k].end {
					t.Fatalf("intervals not sorted/disjoint: %v", b.iv)
				}
			}
		}
		n := 0
		for k := 4000; k < 5000; k++ {
			if busy[k] {
				n++
			}
		}
		if u := util(t, b); u != uint32(n*100/1000) {
			t.Fatalf("round %d: %d%%, bitmap says %d%%", round, u, n*100/1000)
		}
	}
}

func TestBusyTimeBounded(t *testing.T) {
	b, clk, at := newBusy(t, time.Hour)
	clk.set(time.Hour)
	for i := 0; i < 2*maxBusyIntervals; i++ {
		s := time.Duration(i) * time.Millisecond
		if err := b.Busy(at(s), at(s+time.Microsecond)); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.iv) > maxBusyIntervals {
		t.Errorf("%d intervals kept", len(b.iv))
	}
}

func TestBusyTimeConcurrent(t *testing.T) {
	b, err := NewBusyTime(50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				now := time.Now()
				b.Begin(now)
				if err := b.Busy(now.Add(-time.Millisecond), now); err != nil {
					t.Error(err)
				}
				if err := b.End(time.Now()); err != nil {
					t.Error(err)
				}
				if l, err := b.Sample(); err != nil || l.GPUUtilPct > 100 {
					t.Errorf("sample %+v %v", l, err)
				}
			}
		}()
	}
	wg.Wait()
}
