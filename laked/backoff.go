package laked

import "time"

// backoff spaces out the checks a session's goroutine makes while its
// client keeps it looking but gives it nothing to do:
//
//   - a doorbell rung, or its wake-up word rewritten, with nothing
//     published: every futex wait returns at once and the goroutine would
//     spin on it (doorbellBackoff: the first backoffFree quick empty
//     returns are free, then sleeps double from backoffMin to
//     backoffDoorbellMax);
//   - a completion ring the client leaves full: nothing tells laked when
//     the client reaps, so it looks again after a sleep (cqFullBackoff:
//     from backoffMin, doubling to backoffCQMax while it stays full).
//
// Either way laked's CPU for such a session stays a few hundred
// wake-ups a second at most, instead of a core (a rewritten doorbell:
// 145 840 waits in 300 ms before, TestDoorbellStormIsBackedOff) or a
// check every 50 µs (a full ring; on an idle machine Go rounds such
// sleeps up to ~1 ms, so there the bound changes little). A client
// that publishes its submissions and reaps its completions never meets
// either: a wake-up that finds work, or a ring with room, resets it.
// Kernel sessions (/dev/lake) are exempt (session.afterDoorbellWait).
type backoff struct {
	freeN int           // empty returns free of a sleep after a reset
	free  int           // of those, still to come
	sleep time.Duration // the next sleep (0: not backing off)
	max   time.Duration
	slept int // sleeps since the last reset (tests, logs)
}

const (
	backoffFree        = 16
	backoffMin         = 50 * time.Microsecond
	backoffDoorbellMax = 10 * time.Millisecond
	backoffCQMax       = time.Millisecond
	// quickReturn: a doorbell wait that returns sooner than this with
	// nothing to do counts as spurious (an idle wait lasts idleSleep; a
	// spurious one can take milliseconds on a loaded machine).
	quickReturn = idleSleep / 2
)

func doorbellBackoff() backoff {
	return backoff{freeN: backoffFree, free: backoffFree, max: backoffDoorbellMax}
}

// cqFullBackoff: a kernel session's ring is looked at every backoffMin
// (the kernel reaps as laked rings it; it is not a hostile client).
func cqFullBackoff(kernel bool) backoff {
	if kernel {
		return backoff{max: backoffMin}
	}
	return backoff{max: backoffCQMax}
}

// wait is one more check that found nothing: it sleeps once the free
// ones are used up, each sleep twice the last up to max, and reports
// whether it slept.
func (b *backoff) wait() bool {
	if b.free > 0 {
		b.free--
		return false
	}
	if b.sleep == 0 {
		b.sleep = backoffMin
	}
	time.Sleep(b.sleep)
	b.slept++
	b.sleep = min(2*b.sleep, b.max)
	return true
}

// reset: the client gave laked work (or room) again.
func (b *backoff) reset() {
	b.free, b.sleep, b.slept = b.freeN, 0, 0
}
