package cuda

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
)

// fakeClock advances by tick at every reading (the time a query takes)
// and by what waitDone sleeps.
type fakeClock struct {
	t      time.Time
	tick   time.Duration
	slept  time.Duration
	sleeps int
}

func (f *fakeClock) clock() clock {
	return clock{now: func() time.Time { f.t = f.t.Add(f.tick); return f.t }, sleep: func(d time.Duration) {
		if d <= 0 || d > maxSleep {
			panic("sleep out of schedule")
		}
		f.t = f.t.Add(d)
		f.slept += d
		f.sleeps++
	}}
}

// TestWaitDoneTimesOut: GPU work that never finishes (cuStreamQuery
// answers NOT_READY forever, faked) ends the wait at the timeout with
// CUDA_ERROR_LAUNCH_TIMEOUT, which is sticky (the context is rebuilt for
// its client) and maps to ErrLaunchFailed with the bound in the message.
func TestWaitDoneTimesOut(t *testing.T) {
	const tick = time.Microsecond
	for _, timeout := range []time.Duration{100 * time.Microsecond, time.Millisecond, 250 * time.Millisecond, 10 * time.Second} {
		start := time.Unix(100, 0)
		f := &fakeClock{t: start, tick: tick}
		queries := 0
		r := waitDone(func() Result { queries++; return ErrorNotReady }, timeout, f.clock())
		if r != ErrorLaunchTimeout {
			t.Fatalf("timeout %v: %v", timeout, r)
		}
		if took := f.t.Sub(start); took < timeout || took > timeout+2*tick {
			t.Fatalf("timeout %v: gave up after %v", timeout, took)
		}
		// It spins (no sleep) for spinFor, or the whole bound if shorter.
		if spin := min(spinFor, timeout); queries < int(spin/tick)-1 {
			t.Fatalf("timeout %v: only %d queries", timeout, queries)
		}
		if timeout <= spinFor && f.sleeps != 0 {
			t.Fatalf("timeout %v: slept %d times within the spin", timeout, f.sleeps)
		}
		// Backoff: a 10 s wait is not 10 s / 50 µs polls.
		if limit := int(spinFor/tick) + 20 + int(timeout/maxSleep) + 1; queries > limit {
			t.Fatalf("timeout %v: %d queries, want at most %d", timeout, queries, limit)
		}
		err := timeoutError("cuStreamSynchronize", r, timeout)
		if !errors.Is(err, backend.ErrLaunchFailed) || !Faulted(err) || !strings.Contains(err.Error(), timeout.String()) {
			t.Fatalf("mapped timeout: %v", err)
		}
	}
}

// TestWaitDoneSpinsByTime: work that ends within spinFor is seen by
// queries back to back however many it takes, without a single sleep
// (a Go sleep under a millisecond lasts about a millisecond, which a
// short batch must not pay); work that runs longer sleeps, with sleeps
// that grow to maxSleep.
func TestWaitDoneSpinsByTime(t *testing.T) {
	for _, tick := range []time.Duration{100 * time.Nanosecond, time.Microsecond} {
		f := &fakeClock{t: time.Unix(0, 0), tick: tick}
		left := int(spinFor/tick) - 10 // finishes just inside the spin
		r := waitDone(func() Result {
			if left--; left > 0 {
				return ErrorNotReady
			}
			return Success
		}, time.Second, f.clock())
		if r != Success || f.sleeps != 0 {
			t.Fatalf("tick %v: %v after %d sleeps", tick, r, f.sleeps)
		}
	}
	f := &fakeClock{t: time.Unix(0, 0), tick: time.Microsecond}
	start := f.t
	r := waitDone(func() Result {
		if f.t.Sub(start) < 20*time.Millisecond {
			return ErrorNotReady
		}
		return Success
	}, time.Second, f.clock())
	if r != Success || f.sleeps == 0 || f.sleeps > 20+25 {
		t.Fatalf("a 20 ms kernel: %v after %d sleeps", r, f.sleeps)
	}
}

// TestWaitDoneFinishes: work that finishes after a while returns success
// without a timeout, and a fault raised while waiting is returned as it
// is (sticky faults rebuild the context as before).
func TestWaitDoneFinishes(t *testing.T) {
	f := &fakeClock{t: time.Unix(0, 0), tick: time.Microsecond}
	left := 1000 // spins for spinFor, then sleeps
	r := waitDone(func() Result {
		if left--; left > 0 {
			return ErrorNotReady
		}
		return Success
	}, time.Second, f.clock())
	if r != Success || left != 0 {
		t.Fatalf("%v, %d polls left", r, left)
	}
	if f.slept >= time.Second {
		t.Fatalf("slept %v", f.slept)
	}
	f = &fakeClock{t: time.Unix(0, 0), tick: time.Microsecond}
	n := 0
	r = waitDone(func() Result {
		if n++; n < 3 {
			return ErrorNotReady
		}
		return ErrorIllegalAddress
	}, time.Second, f.clock())
	if r != ErrorIllegalAddress || f.sleeps != 0 {
		t.Fatalf("fault while waiting: %v after %d sleeps", r, f.sleeps)
	}
	// Finished at once: no sleep at all.
	f = &fakeClock{tick: time.Microsecond}
	if r := waitDone(func() Result { return Success }, time.Second, f.clock()); r != Success || f.sleeps != 0 {
		t.Fatal(r, f.sleeps)
	}
	if err := timeoutError("op", Success, 0); err != nil {
		t.Fatal(err)
	}
}

// TestWaitDoneDefault: an unset timeout is DefaultLaunchTimeout, never
// an unbounded wait.
func TestWaitDoneDefault(t *testing.T) {
	start := time.Unix(0, 0)
	f := &fakeClock{t: start, tick: time.Microsecond}
	if r := waitDone(func() Result { return ErrorNotReady }, 0, f.clock()); r != ErrorLaunchTimeout {
		t.Fatal(r)
	}
	if took := f.t.Sub(start); took < DefaultLaunchTimeout || took > DefaultLaunchTimeout+maxSleep {
		t.Fatalf("default wait %v", took)
	}
}

// TestThreadSleepPrecise: the real clock's sleep of 20 µs does not last
// the millisecond that a short time.Sleep can in an idle process. The
// fastest of 50 is compared, so that a loaded machine's scheduling
// delays do not fail it.
func TestThreadSleepPrecise(t *testing.T) {
	d := make([]time.Duration, 50)
	for i := range d {
		t0 := time.Now()
		threadSleep(firstSleep)
		d[i] = time.Since(t0)
	}
	slices.Sort(d)
	if d[0] < firstSleep {
		t.Fatalf("slept %v of %v", d[0], firstSleep)
	}
	if d[0] > 500*time.Microsecond {
		t.Fatalf("the fastest sleep of %v took %v (median %v)", firstSleep, d[0], d[len(d)/2])
	}
}
