package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// memCgroup is a child memory cgroup holding laked for the attack suite:
// its limit is the global budget, and the kernel's own accounting of
// laked's memory (anonymous memory, page cache and shmem pages laked
// faults in, kernel memory) is read from it.
type memCgroup struct {
	dir    string
	parent string
	v2     bool
}

// newMemCgroup creates a child of this process's memory cgroup (cgroup
// v2, or v1's memory controller) limited to limit bytes and moves pid
// into it. It reports why when that is not possible (not root, no memory
// controller, a read-only cgroup tree).
func newMemCgroup(t *testing.T, pid int, limit uint64) (*memCgroup, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var cg memCgroup
	for _, l := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			if c, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(c), "memory") {
				cg.parent, cg.v2 = filepath.Join("/sys/fs/cgroup", f[2]), true
			}
		case strings.Contains(","+f[1]+",", ",memory,"):
			if cg.parent == "" {
				cg.parent = filepath.Join("/sys/fs/cgroup/memory", f[2])
			}
		}
	}
	if cg.parent == "" {
		return nil, fmt.Errorf("no memory cgroup controller")
	}
	cg.dir = filepath.Join(cg.parent, fmt.Sprintf("lake-attack-%d", pid))
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, err
	}
	t.Cleanup(cg.remove)
	limitFile := "memory.limit_in_bytes"
	if cg.v2 {
		limitFile = "memory.max"
	}
	if err := cg.write(limitFile, strconv.FormatUint(limit, 10)); err != nil {
		return nil, err
	}
	if err := cg.write("cgroup.procs", strconv.Itoa(pid)); err != nil {
		return nil, err
	}
	return &cg, nil
}

func (cg *memCgroup) write(name, v string) error {
	return os.WriteFile(filepath.Join(cg.dir, name), []byte(v), 0o644)
}

func (cg *memCgroup) read(name string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(cg.dir, name))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// peak is the most memory the cgroup was charged at once.
func (cg *memCgroup) peak() (uint64, error) {
	if cg.v2 {
		return cg.read("memory.peak")
	}
	return cg.read("memory.max_usage_in_bytes")
}

// limitHits counts the times the cgroup reached its limit (the kernel
// then reclaimed from it or, failing that, OOM-killed laked).
func (cg *memCgroup) limitHits() (uint64, error) {
	if !cg.v2 {
		return cg.read("memory.failcnt")
	}
	b, err := os.ReadFile(filepath.Join(cg.dir, "memory.events"))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && (f[0] == "max" || f[0] == "oom_kill") {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			n += v
		}
	}
	return n, nil
}

// remove moves whatever is left in the cgroup back to the parent and
// removes it.
func (cg *memCgroup) remove() {
	if b, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs")); err == nil {
		for _, p := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(cg.parent, "cgroup.procs"), []byte(p), 0o644)
		}
	}
	_ = os.Remove(cg.dir)
}
