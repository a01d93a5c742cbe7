package lakedtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BurstProcs lists the live processes whose command line runs lakectl
// burst on sock (bench --burst's child, or one started by hand): a test
// checks with it that no bursting process outlives its run. Zombies are
// skipped (a zombie is its parent's to reap; one whose parent is gone is
// not the test's to count).
func BurstProcs(tb testing.TB, sock string) []int {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		hasSock, hasBurst := false, false
		for _, a := range strings.Split(string(b), "\x00") {
			hasSock = hasSock || a == sock
			hasBurst = hasBurst || a == "burst"
		}
		if !hasSock || !hasBurst {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}
