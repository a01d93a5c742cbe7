//go:build linux

package features

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// pinToCPU locks the calling goroutine to its OS thread and pins that
// thread to CPU g modulo the CPUs this process may use, so that each
// benchmark goroutine is one producer on its own core. The goroutine must
// exit without unlocking: the runtime then ends the thread, so the pinning
// never leaks to other goroutines.
func pinToCPU(g int) {
	runtime.LockOSThread()
	var allowed unix.CPUSet
	if unix.SchedGetaffinity(0, &allowed) != nil || allowed.Count() == 0 {
		return
	}
	var cpus []int
	for c := 0; len(cpus) < allowed.Count(); c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	var one unix.CPUSet
	one.Set(cpus[g%len(cpus)])
	_ = unix.SchedSetaffinity(0, &one) // best effort: unpinned still measures
}
