//go:build !linux

package features

import "runtime"

// pinToCPU locks the goroutine to its thread; pinning to a CPU is
// Linux-only (see pin_linux_test.go).
func pinToCPU(int) { runtime.LockOSThread() }
