package cuda

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
)

// fakeClock advances only when waitDone sleeps (or a query says so).
type fakeClock struct {
	t      time.Time
	slept  time.Duration
	sleeps int
}

func (f *fakeClock) clock() clock {
	return clock{now: func() time.Time { return f.t }, sleep: func(d time.Duration) {
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
	for _, timeout := range []time.Duration{time.Millisecond, 250 * time.Millisecond, 10 * time.Second} {
		f := &fakeClock{t: time.Unix(100, 0)}
		queries := 0
		r := waitDone(func() Result { queries++; return ErrorNotReady }, timeout, f.clock())
		if r != ErrorLaunchTimeout {
			t.Fatalf("timeout %v: %v", timeout, r)
		}
		if f.slept < timeout || f.slept > timeout+maxSleep {
			t.Fatalf("timeout %v: gave up after %v of sleeping", timeout, f.slept)
		}
		if queries < spinPolls {
			t.Fatalf("timeout %v: only %d queries", timeout, queries)
		}
		// Backoff: a 10 s wait is not 10 s / 10 µs polls.
		if limit := spinPolls + 20 + int(timeout/maxSleep) + 1; queries > limit {
			t.Fatalf("timeout %v: %d queries, want at most %d", timeout, queries, limit)
		}
		err := timeoutError("cuStreamSynchronize", r, timeout)
		if !errors.Is(err, backend.ErrLaunchFailed) || !AsResult(err).Sticky() || !strings.Contains(err.Error(), timeout.String()) {
			t.Fatalf("mapped timeout: %v", err)
		}
	}
}

// TestWaitDoneFinishes: work that finishes after a while returns success
// without a timeout, and a fault raised while waiting is returned as it
// is (sticky faults rebuild the context as before).
func TestWaitDoneFinishes(t *testing.T) {
	f := &fakeClock{t: time.Unix(0, 0)}
	left := 500
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
	f = &fakeClock{t: time.Unix(0, 0)}
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
	f = &fakeClock{}
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
	f := &fakeClock{t: time.Unix(0, 0)}
	if r := waitDone(func() Result { return ErrorNotReady }, 0, f.clock()); r != ErrorLaunchTimeout {
		t.Fatal(r)
	}
	if f.slept < DefaultLaunchTimeout || f.slept > DefaultLaunchTimeout+maxSleep {
		t.Fatalf("default wait %v", f.slept)
	}
}
