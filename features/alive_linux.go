//go:build linux

package features

import "syscall"

// processAlive reports whether a process with this pid exists (kill 0 does
// not fail with ESRCH). Used to take over a registration lock whose holder
// died.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) != syscall.ESRCH
}
