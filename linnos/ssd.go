package linnos

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SSDParams configures the simulated SSD. The model is deliberately simple
// and deterministic for a seed:
//
//   - Channels flash channels serve reads first-come first-served; a read
//     takes the channel that frees up first, and its service time is
//     (ReadBaseUs + pages×ReadPerPageUs) × slowdown × jitter, where jitter is
//     a deterministic hash of the I/O in [1-JitterFrac, 1+JitterFrac].
//   - Writes are acknowledged after WriteAckUs × slowdown into a write buffer. When the
//     buffer holds WriteBufPages pages (jittered per flush by ±BufJitterFrac)
//     it is flushed: for pages×FlushUsPerPage µs every read runs
//     FlushSlowdown× slower (program operations share the channels).
//   - Every GCEveryPages written pages (jittered by ±GCJitterFrac) garbage
//     collection runs for GCDurUs µs (jittered likewise), during which reads
//     run GCSlowdown× slower.
//
// Each slowdown ramps up linearly from 1× over its first RampUs µs (GC
// escalates from background to foreground as free blocks run out). Slowdowns
// multiply when a flush and GC overlap. None of this is visible from
// the outside, but it shows up in the queue length (reads pile up when the
// device slows down) and in the latencies of the reads that just completed,
// which is exactly what LinnOS's features capture.
type SSDParams struct {
	Channels       int     // independent channels serving reads (8)
	ReadBaseUs     float64 // fixed read service time (80 µs)
	ReadPerPageUs  float64 // extra service per 4 KiB page (2 µs)
	JitterFrac     float64 // ± multiplicative service jitter (0.1)
	WriteAckUs     float64 // write latency into the buffer (10 µs)
	WriteBufPages  int     // buffer size that triggers a flush (2048 pages)
	BufJitterFrac  float64 // ± jitter of the flush trigger (0.3)
	FlushUsPerPage float64 // flush duration per buffered page (1.5 µs)
	FlushSlowdown  float64 // read slowdown during a flush (3)
	GCEveryPages   int     // written pages between GC runs (8192)
	GCJitterFrac   float64 // ± jitter of GC trigger and duration (0.3)
	GCDurUs        float64 // GC duration (8000 µs)
	GCSlowdown     float64 // read slowdown during GC (5)
	RampUs         float64 // flush and GC slowdowns ramp up linearly over this long (1000 µs)
}

// DefaultSSDParams returns the parameters used by the tests and the demo.
func DefaultSSDParams() SSDParams {
	return SSDParams{
		Channels:       8,
		ReadBaseUs:     80,
		ReadPerPageUs:  2,
		JitterFrac:     0.1,
		WriteAckUs:     10,
		WriteBufPages:  2048,
		BufJitterFrac:  0.3,
		FlushUsPerPage: 1.5,
		FlushSlowdown:  3,
		GCEveryPages:   8192,
		GCJitterFrac:   0.3,
		GCDurUs:        8000,
		GCSlowdown:     5,
		RampUs:         1000,
	}
}

// Validate checks the parameters.
func (p SSDParams) Validate() error {
	fin := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case p.Channels < 1 || p.Channels > 1024:
		return fmt.Errorf("linnos: ssd: channels %d not in [1,1024]", p.Channels)
	case !fin(p.ReadBaseUs) || p.ReadBaseUs <= 0 || !fin(p.ReadPerPageUs) || p.ReadPerPageUs < 0:
		return fmt.Errorf("linnos: ssd: bad read service times")
	case !fin(p.JitterFrac) || p.JitterFrac < 0 || p.JitterFrac >= 1:
		return fmt.Errorf("linnos: ssd: jitter must be in [0,1)")
	case !fin(p.WriteAckUs) || p.WriteAckUs < 0:
		return fmt.Errorf("linnos: ssd: bad write ack time")
	case p.WriteBufPages < 1 || p.GCEveryPages < 1:
		return fmt.Errorf("linnos: ssd: flush and GC triggers must be >= 1 page")
	case !fin(p.BufJitterFrac) || p.BufJitterFrac < 0 || p.BufJitterFrac >= 1 || !fin(p.GCJitterFrac) || p.GCJitterFrac < 0 || p.GCJitterFrac >= 1:
		return fmt.Errorf("linnos: ssd: trigger jitter must be in [0,1)")
	case !fin(p.FlushUsPerPage) || p.FlushUsPerPage < 0 || !fin(p.GCDurUs) || p.GCDurUs < 0:
		return fmt.Errorf("linnos: ssd: bad flush or GC duration")
	case !fin(p.RampUs) || p.RampUs < 0:
		return fmt.Errorf("linnos: ssd: bad ramp time")
	case !fin(p.FlushSlowdown) || p.FlushSlowdown < 1 || p.FlushSlowdown > 1000 || !fin(p.GCSlowdown) || p.GCSlowdown < 1 || p.GCSlowdown > 1000:
		return fmt.Errorf("linnos: ssd: slowdowns must be in [1,1000]")
	}
	return nil
}

type episode struct {
	start, end, factor float64
}

// at returns the episode's slowdown at t: it ramps linearly from 1 to factor
// over the first ramp µs.
func (e episode) at(t, ramp float64) float64 {
	if ramp > 0 && t-e.start < ramp {
		return 1 + (e.factor-1)*(t-e.start)/ramp
	}
	return e.factor
}

// SSD is one simulated device. Calls must come in non-decreasing time order;
// it is not safe for concurrent use.
type SSD struct {
	p        SSDParams
	free     []float64 // channel free times
	episodes []episode
	rng      *rand.Rand
	seed     uint64
	buf      int // buffered pages
	bufLimit int
	gcLeft   int // pages until the next GC
}

// NewSSD returns a device in its initial state.
func NewSSD(p SSDParams, seed uint64) (*SSD, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s := &SSD{p: p, free: make([]float64, p.Channels), rng: rand.New(rand.NewPCG(seed, 0x55d)), seed: seed}
	s.bufLimit = s.jitterInt(p.WriteBufPages, p.BufJitterFrac)
	// Start somewhere inside the GC cycle so replicas do not GC together.
	s.gcLeft = 1 + s.rng.IntN(s.jitterInt(p.GCEveryPages, p.GCJitterFrac))
	s.buf = s.rng.IntN(s.bufLimit)
	return s, nil
}

func (s *SSD) jitterInt(v int, frac float64) int {
	x := int(math.Round(float64(v) * (1 + frac*(2*s.rng.Float64()-1))))
	if x < 1 {
		x = 1
	}
	return x
}

// slowdown returns the read slowdown factor at time t.
func (s *SSD) slowdown(t float64) float64 {
	f := 1.0
	for _, e := range s.episodes {
		if e.start <= t && t < e.end {
			f *= e.at(t, s.p.RampUs)
		}
	}
	return f
}

// prune drops episodes that ended before t.
func (s *SSD) prune(t float64) {
	k := 0
	for _, e := range s.episodes {
		if e.end > t {
			s.episodes[k] = e
			k++
		}
	}
	s.episodes = s.episodes[:k]
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// readTiming returns the channel, start and completion time of a read of
// size bytes arriving at t; key makes the jitter deterministic per I/O.
func (s *SSD) readTiming(t float64, size int64, key uint64) (ch int, start, done float64) {
	ch = 0
	for i, f := range s.free {
		if f < s.free[ch] {
			ch = i
		}
	}
	start = math.Max(t, s.free[ch])
	pages := float64(PendingPages.Weight(size))
	u := float64(splitmix(key^s.seed*0x2545f4914f6cdd1d)>>11) / (1 << 53)
	jit := 1 + s.p.JitterFrac*(2*u-1)
	svc := (s.p.ReadBaseUs + pages*s.p.ReadPerPageUs) * s.slowdown(start) * jit
	return ch, start, start + svc
}

// PeekRead returns the latency (µs) a read arriving at t would see, without
// submitting it.
func (s *SSD) PeekRead(t float64, size int64, key uint64) float64 {
	s.prune(t)
	_, _, done := s.readTiming(t, size, key)
	return done - t
}

// SubmitRead submits a read arriving at t and returns its completion time.
func (s *SSD) SubmitRead(t float64, size int64, key uint64) float64 {
	s.prune(t)
	ch, _, done := s.readTiming(t, size, key)
	s.free[ch] = done
	return done
}

// SubmitWrite submits a write arriving at t and returns its completion time.
// It may start a flush or a garbage collection.
func (s *SSD) SubmitWrite(t float64, size int64) float64 {
	s.prune(t)
	pages := PendingPages.Weight(size)
	s.buf += pages
	if s.buf >= s.bufLimit {
		d := float64(s.buf) * s.p.FlushUsPerPage
		s.episodes = append(s.episodes, episode{start: t, end: t + d, factor: s.p.FlushSlowdown})
		s.buf = 0
		s.bufLimit = s.jitterInt(s.p.WriteBufPages, s.p.BufJitterFrac)
	}
	s.gcLeft -= pages
	if s.gcLeft <= 0 {
		d := s.p.GCDurUs * (1 + s.p.GCJitterFrac*(2*s.rng.Float64()-1))
		s.episodes = append(s.episodes, episode{start: t, end: t + d, factor: s.p.GCSlowdown})
		s.gcLeft = s.jitterInt(s.p.GCEveryPages, s.p.GCJitterFrac)
	}
	return t + s.p.WriteAckUs*s.slowdown(t)
}
