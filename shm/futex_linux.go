//go:build linux

package shm

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Shared (not FUTEX_PRIVATE) operations: the words live in memory mapped
// by several processes.
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

func futexWait(w *atomic.Uint32, val uint32, timeout time.Duration) error {
	ts := unix.NsecToTimespec(int64(timeout))
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
		return nil
	default:
		return errno
	}
}

func futexWake(w *atomic.Uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, uintptr(^uint32(0)>>1), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// osYield gives the CPU to another runnable thread on it, if any
// (sched_yield; returns at once when there is none).
// (a variable: tests count the calls)
var osYield = func() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
