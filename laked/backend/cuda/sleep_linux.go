package cuda

import (
	"syscall"
	"time"
)

// threadSleep blocks the calling OS thread for d (nanosleep, retried
// when a signal interrupts it): unlike time.Sleep it does not wait for
// the Go runtime's next timer wakeup, which comes about a millisecond
// late in an idle process.
func threadSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var left syscall.Timespec
		if err := syscall.Nanosleep(&ts, &left); err != syscall.EINTR {
			return
		}
		ts = left
	}
}
