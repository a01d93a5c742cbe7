package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// jitterResult is the machine's own scheduling noise as a spinning
// thread sees it: gaps between consecutive clock reads of a tight loop
// that never blocks. A round trip through the ring has two such threads
// (the caller spinning for its completion, laked's reader spinning for
// the next submission); a gap on either delays the request it covers, so
// gaps longer than a latency bound set a floor under the tail that no
// change to lake can remove.
type jitterResult struct {
	Threads    int     `json:"threads"`
	Pinned     bool    `json:"pinned"`
	SpinNs     int64   `json:"spin_ns"`    // per thread
	Gaps5us    int64   `json:"gaps_5us"`   // gaps > 5 µs, all threads
	Gaps25us   int64   `json:"gaps_25us"`  // gaps > 25 µs
	Gaps100us  int64   `json:"gaps_100us"` // gaps > 100 µs
	WorstNs    int64   `json:"worst_ns"`
	LostFrac   float64 `json:"lost_frac"` // time in gaps > 5 µs / spin time
	GapsPerSec float64 `json:"gaps_25us_per_sec"`
}

// measureJitter spins threads OS threads (each locked, optionally pinned
// to CPU i mod NumCPU) for d each, at the same time, reading the
// monotonic clock in a loop, and counts the gaps.
func measureJitter(threads int, d time.Duration, pin bool) jitterResult {
	res := jitterResult{Threads: threads, Pinned: pin, SpinNs: d.Nanoseconds()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := 0; k < threads; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if pin {
				var set unix.CPUSet
				set.Set(k % runtime.NumCPU())
				_ = unix.SchedSetaffinity(0, &set) // best effort: unpinned still measures
			}
			var g5, g25, g100, worst, lost int64
			start := time.Now()
			prev := start
			end := start.Add(d)
			var now time.Time
			for {
				now = time.Now()
				gap := now.Sub(prev).Nanoseconds()
				prev = now
				if gap > 5000 {
					g5++
					lost += gap
					if gap > 25000 {
						g25++
					}
					if gap > 100000 {
						g100++
					}
					worst = max(worst, gap)
				}
				if !now.Before(end) {
					break
				}
			}
			if pin {
				var all unix.CPUSet
				for i := 0; i < runtime.NumCPU(); i++ {
					all.Set(i)
				}
				_ = unix.SchedSetaffinity(0, &all)
			}
			mu.Lock()
			res.Gaps5us += g5
			res.Gaps25us += g25
			res.Gaps100us += g100
			res.WorstNs = max(res.WorstNs, worst)
			// over the time the thread actually spun (a last gap may
			// run past d)
			res.LostFrac += float64(lost) / float64(now.Sub(start).Nanoseconds()) / float64(threads)
			mu.Unlock()
		}(k)
	}
	wg.Wait()
	res.GapsPerSec = float64(res.Gaps25us) / d.Seconds()
	return res
}

// hitFraction is the fraction of requests at rate ops/s that gaps > 25 µs
// at this machine's rate would land on (each gap delays at most the one
// request it falls in): the share of the tail the machine alone causes.
func (j jitterResult) hitFraction(opsPerSec float64) float64 {
	if opsPerSec <= 0 {
		return 0
	}
	return j.GapsPerSec / opsPerSec
}

func (j jitterResult) String() string {
	pin := "unpinned"
	if j.Pinned {
		pin = "pinned"
	}
	return fmt.Sprintf("%d threads %s, %s each: gaps > 5µs %d, > 25µs %d (%.0f/s), > 100µs %d, worst %s, %.2f%% of the time lost",
		j.Threads, pin, fmtNs(j.SpinNs), j.Gaps5us, j.Gaps25us, j.GapsPerSec, j.Gaps100us, fmtNs(j.WorstNs), 100*j.LostFrac)
}
