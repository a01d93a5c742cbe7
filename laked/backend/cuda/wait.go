package cuda

import (
	"fmt"
	"time"
)

// DefaultLaunchTimeout bounds how long a launch or a synchronisation may
// wait for a context's GPU work (Limits.LaunchTimeout; laked's
// limits.launch_timeout, the same key and default as the CPU backend's).
const DefaultLaunchTimeout = 10 * time.Second

// Polling schedule of waitDone: queries back to back for the first
// spinFor of a wait (a batch's GPU work, copies included, usually
// finishes within it), then sleeps that start at firstSleep and double
// up to maxSleep, so a long kernel costs little CPU. The spin is bounded
// by time, not by a count of queries, and the sleeps are the thread's
// own (threadSleep: nanosleep on Linux, about 50–90 µs late), not
// time.Sleep: a Go timer shorter than a millisecond fires about a
// millisecond late when the process is otherwise idle (measured:
// time.Sleep(10µs) averages 1.03 ms), so a wait that fell to sleeping
// after a fixed number of fast queries (tens of µs) added up to a
// millisecond to every batch longer than that, and to the GPU times
// TestGPUCrossover measures. The waiting goroutine runs on a locked OS
// thread (Context.do) that a blocking driver wait would hold too, and
// spinning costs no more CPU than the driver's own synchronisation
// under CU_CTX_SCHED_AUTO, which spins as well.
const (
	spinFor    = 500 * time.Microsecond
	firstSleep = 20 * time.Microsecond
	maxSleep   = time.Millisecond
)

// clock is what waitDone reads and sleeps with: the real one in the
// backend, a fake in the GPU-less tests.
type clock struct {
	now   func() time.Time
	sleep func(time.Duration)
}

var realClock = clock{now: time.Now, sleep: threadSleep}

// waitDone polls query (cuStreamQuery over every stream a
// synchronisation covers) until it reports anything but
// CUDA_ERROR_NOT_READY, and returns that. A wait longer than timeout
// returns ErrorLaunchTimeout instead: like a kernel fault it is sticky
// (Result.Sticky), so the context whose work did not finish is torn down
// and rebuilt for its client alone (Context.fault), and laked goes on
// serving. The wait never blocks in the driver, so a wedged kernel cannot
// hold a laked thread past timeout (a non-positive timeout takes
// DefaultLaunchTimeout).
func waitDone(query func() Result, timeout time.Duration, c clock) Result {
	if timeout <= 0 {
		timeout = DefaultLaunchTimeout
	}
	start := c.now()
	sleep := firstSleep
	for {
		r := query()
		if r != ErrorNotReady {
			return r
		}
		waited := c.now().Sub(start)
		if waited >= timeout {
			return ErrorLaunchTimeout
		}
		if waited < spinFor {
			continue
		}
		c.sleep(min(sleep, timeout-waited))
		sleep = min(2*sleep, maxSleep)
	}
}

// timeoutError maps a waitDone result for op: a timeout says so (and
// unwraps, as every sticky error, to backend.ErrLaunchFailed).
func timeoutError(op string, r Result, timeout time.Duration) error {
	if r == ErrorLaunchTimeout {
		if timeout <= 0 {
			timeout = DefaultLaunchTimeout
		}
		return Map(fmt.Sprintf("%s (GPU work unfinished after %v)", op, timeout), r)
	}
	return Map(op, r)
}
