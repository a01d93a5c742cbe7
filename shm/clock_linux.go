//go:build linux

package shm

import "golang.org/x/sys/unix"

// MonotonicNow is CLOCK_MONOTONIC in nanoseconds, the clock of predict
// deadlines (the kernel's ktime_get_ns).
func MonotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
