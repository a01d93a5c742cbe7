package shm

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Doorbell is how one side of a ring tells the other that there is work.
// Userspace regions use Bell (futex words in the region); the kernel
// region uses the /dev/lake device (poll and ioctl).
type Doorbell interface {
	// Ring wakes the other side if it announced that it may sleep.
	Ring() error
	// Wait sleeps until rung or until timeout passes, unless ready()
	// already reports true after the sleeper has announced itself. It
	// returns nil on wake-up or timeout; ready is re-checked by the
	// caller.
	Wait(ready func() bool, timeout time.Duration) error
}

// Bell is a futex doorbell in the region: a wake sequence word that the
// sleeper waits on and a count of sleepers that the ringer checks.
//
// Ordering (PROTOCOL.md, "Doorbells"): the sleeper increments Waiters,
// then re-checks for work, then FUTEX_WAITs on Seq with the value it read
// before incrementing; the ringer publishes its work, then reads Waiters
// and, if non-zero, increments Seq and FUTEX_WAKEs. Both sides use
// sequentially consistent atomics for these words, so either the sleeper
// sees the work or the ringer sees the sleeper.
type Bell struct {
	Seq     *atomic.Uint32
	Waiters *atomic.Uint32
}

// Ring implements Doorbell.
func (b Bell) Ring() error {
	if b.Waiters.Load() == 0 {
		return nil
	}
	b.Seq.Add(1)
	return futexWake(b.Seq)
}

// Wait implements Doorbell.
func (b Bell) Wait(ready func() bool, timeout time.Duration) error {
	seq := b.Seq.Load()
	b.Waiters.Add(1)
	defer b.Waiters.Add(^uint32(0))
	if ready() {
		return nil
	}
	return futexWait(b.Seq, seq, timeout)
}

// Spinner spins adaptively before a sleeper goes to its doorbell: it
// spins up to a budget that grows when spinning found work and shrinks
// when it did not, within [0, Max].
type Spinner struct {
	// Max bounds the spin budget (zero: DefaultSpinMax).
	Max time.Duration
	// Forever makes Spin never give up (busy polling).
	Forever bool
	// Window, when non-zero, replaces the adaptive budget with a fixed
	// idle window: every Spin spins up to Window before giving up (as
	// io_uring's SQPOLL thread idles for sq_thread_idle).
	Window time.Duration
	// OSYield lets the spinner give its CPU away after SpinOSYield
	// (busy-polling, Forever, spinners never do: they keep their CPU).
	OSYield bool
	budget  time.Duration
}

// DefaultSpinMax is the longest a Spinner spins by default.
const DefaultSpinMax = 50 * time.Microsecond

// SpinOSYield is how long a Spinner with OSYield polls before it also
// yields its CPU to other threads (sched_yield) at every 64th poll.
// laked's session readers set it for their idle window when configured
// to (Config.IdleYield, idle_yield): a reader that has found nothing for
// a while may be holding the very CPU its client's thread was woken onto
// (a futex wake tends to place the woken thread beside its waker), and
// that client then waits for the reader's whole idle window (1 ms) to
// end. sched_yield returns at once when no other thread wants the CPU,
// but when one does it may keep the CPU for its whole time slice
// (docs/PERFORMANCE.md has the trade-off measured). Callers (lakelib) do
// not set it: a caller that yields to a reader on its own CPU never
// sleeps again, and the two keep sharing that CPU.
const SpinOSYield = 4 * time.Microsecond

// Spin calls ready in a loop until it returns true (result true) or the
// budget runs out (result false). stop, if non-nil, ends a busy-polling
// spin.
func (s *Spinner) Spin(ready func() bool, stop func() bool) bool {
	max := s.Max
	if max == 0 {
		max = DefaultSpinMax
	}
	if s.Window > 0 {
		s.budget, max = s.Window, s.Window
	} else if s.budget == 0 && !s.Forever {
		s.budget = max / 4
	}
	start := time.Now()
	for i := 0; ; i++ {
		if ready() {
			// Found work while spinning: spin longer next time.
			if s.budget < max {
				s.budget += s.budget/2 + time.Microsecond
				if s.budget > max {
					s.budget = max
				}
			}
			return true
		}
		if i&63 == 63 {
			if stop != nil && stop() {
				return false
			}
			spun := time.Since(start)
			if !s.Forever && spun > s.budget {
				s.budget /= 2
				if s.budget < time.Microsecond {
					s.budget = time.Microsecond
				}
				return false
			}
			if spun > SpinOSYield && s.OSYield && !s.Forever {
				osYield()
			}
			runtime.Gosched()
		}
	}
}

// Kick wakes every sleeper whether or not it announced itself, for a
// side that must be noticed now (a session ending, laked draining).
func (b Bell) Kick() error {
	b.Seq.Add(1)
	return futexWake(b.Seq)
}
