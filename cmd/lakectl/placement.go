package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// placement is where a lakectl process runs, for measurements that
// isolate a latency-sensitive client from bulk clients
// (docs/RELIABILITY.md, "An isolated deployment"): the CPUs its threads
// may use (as taskset -c takes them) and their nice value, set on every
// thread of the process at once; threads the Go runtime starts later
// inherit both from the thread that starts them.
type placement struct {
	CPUs string `json:"cpus,omitempty"` // a CPU list: "0", "0-1", "0,2-3"; "": unchanged
	Nice int    `json:"nice,omitempty"` // -20..19; 0: unchanged
}

func (p placement) set() bool { return p.CPUs != "" || p.Nice != 0 }

func (p placement) validate(cmd, cpusFlag, niceFlag string) error {
	if p.CPUs != "" {
		if _, err := parseCPUList(p.CPUs); err != nil {
			return usageErr("%s: %s %q: %v", cmd, cpusFlag, p.CPUs, err)
		}
	}
	if p.Nice < -20 || p.Nice > 19 {
		return usageErr("%s: %s %d: want -20..19", cmd, niceFlag, p.Nice)
	}
	return nil
}

// parseCPUList parses a CPU list: comma-separated CPUs and ranges (N-M).
func parseCPUList(s string) (unix.CPUSet, error) {
	var set unix.CPUSet
	if s == "" {
		return set, errors.New("empty CPU list")
	}
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return set, fmt.Errorf("bad item %q: want CPU numbers N or N-M (0..1023, N <= M)", item)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// formatCPUList is the CPU list of set, ranges folded ("0-2,5").
func formatCPUList(set *unix.CPUSet) string {
	var parts []string
	for c := 0; c < 1024; c++ {
		if !set.IsSet(c) {
			continue
		}
		e := c
		for e+1 < 1024 && set.IsSet(e+1) {
			e++
		}
		if e == c {
			parts = append(parts, strconv.Itoa(c))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", c, e))
		}
		c = e
	}
	return strings.Join(parts, ",")
}

// threads lists this process's thread ids.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// apply sets p on every thread of this process. It lists the threads
// until a listing shows none it has not set, so that a thread started
// meanwhile from one not yet set is not missed.
func (p placement) apply() error {
	if !p.set() {
		return nil
	}
	var set unix.CPUSet
	if p.CPUs != "" {
		var err error
		if set, err = parseCPUList(p.CPUs); err != nil {
			return err
		}
	}
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		tids, err := threads()
		if err != nil {
			return fmt.Errorf("placement: list threads: %w", err)
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh++
			if p.CPUs != "" {
				if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("CPUs %s: %w (none of them online or allowed?)", p.CPUs, err)
				}
			}
			if p.Nice != 0 {
				// On Linux, PRIO_PROCESS with a thread id is that thread.
				if err := unix.Setpriority(unix.PRIO_PROCESS, tid, p.Nice); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("nice %d: %w (a nice below the current one needs CAP_SYS_NICE)", p.Nice, err)
				}
			}
			done[tid] = true
		}
		if fresh == 0 {
			return nil
		}
	}
	return errors.New("placement: threads kept appearing while being placed")
}

// currentPlacement reads back where this process's threads run: their CPU list
// and nice value when every thread agrees, else an error naming the
// first that does not.
func currentPlacement() (placement, error) {
	tids, err := threads()
	if err != nil {
		return placement{}, err
	}
	var got placement
	first := true
	for _, tid := range tids {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return placement{}, err
		}
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return placement{}, err
		}
		// The raw system call returns 20 - nice.
		p := placement{CPUs: formatCPUList(&set), Nice: 20 - prio}
		if !first && p != got {
			return placement{}, fmt.Errorf("threads disagree: CPUs %s at nice %d, and thread %d on %s at %d", got.CPUs, got.Nice, tid, p.CPUs, p.Nice)
		}
		got, first = p, false
	}
	return got, nil
}
