package policy

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Load is one sample of the GPU's load.
type Load struct {
	GPUUtilPct    uint32 // utilisation over the source's window, 0..100
	GPUMemFreeMiB uint32 // free GPU memory in MiB
	GPUOtherProcs uint32 // other processes using the GPU (0: none or unknown)
}

// Fill copies the sample into the matching Context fields.
func (l Load) Fill(c *Context) {
	c.GPUUtilPct = l.GPUUtilPct
	c.GPUMemFreeMiB = l.GPUMemFreeMiB
	c.GPUOtherProcs = l.GPUOtherProcs
}

// LoadSource reports GPU load for the policy context. Implementations are
// safe for concurrent use.
type LoadSource interface {
	Sample() (Load, error)
}

// StaticLoad is a LoadSource whose value is set by hand: for tests,
// simulations and CPU-only hosts. The zero value reports an idle GPU with
// no memory.
type StaticLoad struct {
	v atomic.Pointer[Load]
}

// NewStaticLoad returns a StaticLoad reporting l.
func NewStaticLoad(l Load) *StaticLoad {
	s := &StaticLoad{}
	s.Set(l)
	return s
}

// Set changes the reported load; utilisation is capped at 100.
func (s *StaticLoad) Set(l Load) {
	l.GPUUtilPct = min(l.GPUUtilPct, 100)
	s.v.Store(&l)
}

// Sample returns the last value set.
func (s *StaticLoad) Sample() (Load, error) {
	if v := s.v.Load(); v != nil {
		return *v, nil
	}
	return Load{}, nil
}

// Limits of BusyTime.
const (
	// MaxBusyWindow is the longest accepted BusyTime window.
	MaxBusyWindow = time.Hour
	// maxBusyIntervals bounds the disjoint intervals a BusyTime keeps; past
	// it the two oldest are merged (over-estimating by the gap between).
	maxBusyIntervals = 4096
)

type busyInterval struct{ start, end time.Duration } // since epoch

// BusyTime is a LoadSource computed from a backend's own busy-time
// accounting. The backend reports when the GPU was busy, either as finished
// intervals (Busy) or by bracketing work with Begin/End; utilisation is the
// share of the last window during which the GPU was busy with at least one
// piece of work (overlapping reports count once, as with NVML).
type BusyTime struct {
	window time.Duration
	now    func() time.Time
	epoch  time.Time

	mu        sync.Mutex
	iv        []busyInterval // sorted, disjoint, not touching
	inFlight  int
	openSince time.Duration
	memFree   atomic.Uint32
}

// ErrBadInterval is wrapped when a backend reports an impossible interval.
var ErrBadInterval = errors.New("invalid busy interval")

// NewBusyTime returns a BusyTime measuring utilisation over window. now is
// the clock (nil: time.Now).
func NewBusyTime(window time.Duration, now func() time.Time) (*BusyTime, error) {
	if window <= 0 || window > MaxBusyWindow {
		return nil, fmt.Errorf("policy: busy-time window %v outside (0, %v]", window, MaxBusyWindow)
	}
	if now == nil {
		now = time.Now
	}
	return &BusyTime{window: window, now: now, epoch: now()}, nil
}

// SetMemFreeMiB records the free GPU memory the backend knows of.
func (b *BusyTime) SetMemFreeMiB(mib uint32) { b.memFree.Store(mib) }

// Busy records that the GPU was busy from start to end.
func (b *BusyTime) Busy(start, end time.Time) error {
	if end.Before(start) {
		return fmt.Errorf("%w: end %v before start %v", ErrBadInterval, end, start)
	}
	s, e := start.Sub(b.epoch), end.Sub(b.epoch)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(b.now().Sub(b.epoch) - b.window)
	b.add(s, e)
	return nil
}

// Begin records that a piece of work started on the GPU at t.
func (b *BusyTime) Begin(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight == 0 {
		b.openSince = t.Sub(b.epoch)
	}
	b.inFlight++
}

// End records that a piece of work started with Begin finished at t.
func (b *BusyTime) End(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight == 0 {
		return fmt.Errorf("%w: End without Begin", ErrBadInterval)
	}
	b.inFlight--
	if b.inFlight == 0 {
		e := t.Sub(b.epoch)
		if e < b.openSince {
			e = b.openSince
		}
		b.prune(b.now().Sub(b.epoch) - b.window)
		b.add(b.openSince, e)
	}
	return nil
}

// add merges [s, e) into the interval list. Callers hold b.mu.
func (b *BusyTime) add(s, e time.Duration) {
	if e <= s {
		return
	}
	i := sort.Search(len(b.iv), func(i int) bool { return b.iv[i].end >= s })
	j := i
	for j < len(b.iv) && b.iv[j].start <= e {
		s, e = min(s, b.iv[j].start), max(e, b.iv[j].end)
		j++
	}
	if i == j {
		b.iv = append(b.iv, busyInterval{})
		copy(b.iv[i+1:], b.iv[i:])
		b.iv[i] = busyInterval{s, e}
	} else {
		b.iv[i] = busyInterval{s, e}
		b.iv = append(b.iv[:i+1], b.iv[j:]...)
	}
	if len(b.iv) > maxBusyIntervals {
		b.iv[1].start = b.iv[0].start
		b.iv = b.iv[1:]
	}
}

// prune drops intervals that ended before lo. Callers hold b.mu.
func (b *BusyTime) prune(lo time.Duration) {
	n := sort.Search(len(b.iv), func(i int) bool { return b.iv[i].end > lo })
	if n > 0 {
		b.iv = append(b.iv[:0], b.iv[n:]...)
	}
}

func overlap(s1, e1, s2, e2 time.Duration) time.Duration {
	if d := min(e1, e2) - max(s1, s2); d > 0 {
		return d
	}
	return 0
}

// Sample returns utilisation over the last window and the free memory.
func (b *BusyTime) Sample() (Load, error) {
	now := b.now().Sub(b.epoch)
	lo := now - b.window
	b.mu.Lock()
	b.prune(lo)
	var busy time.Duration
	for _, v := range b.iv {
		busy += overlap(v.start, v.end, lo, now)
	}
	if b.inFlight > 0 && b.openSince < now {
		// Union with the open interval: add it, minus what it shares.
		from := max(b.openSince, lo)
		busy += now - from
		for _, v := range b.iv {
			busy -= overlap(v.start, v.end, from, now)
		}
	}
	b.mu.Unlock()
	util := uint32(min(100, max(0, busy*100/b.window)))
	return Load{GPUUtilPct: util, GPUMemFreeMiB: b.memFree.Load()}, nil
}
