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
	budget time.Duration
}

// DefaultSpinMax is the longest a Spinner spins by default.
const DefaultSpinMax = 50 * time.Microsecond

// SpinOSYield is how long a Spinner polls before it also yields its CPU
// to other threads (sched_yield) at every 64th poll. A round trip through
// the ring takes 1-3 µs; one that takes longer is often waiting for the
// other side's thread to get a CPU — on a small or busy machine, the very
// CPU this spinner holds, where that thread would otherwise wait for the
// spinner's time slice to end (milliseconds) or for the spinner to give
// up and sleep. sched_yield returns at once when no other thread wants
// the CPU. Busy-polling (Forever) spinners do not yield: they are meant
// to keep their CPU, and yielding it on a loaded machine made them share
// one CPU with the other side more often.
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
			if spun > SpinOSYield && !s.Forever {
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
