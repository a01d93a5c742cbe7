//go:build linux

package vmtest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleChecks runs the console checks of TestVM on a recorded
// passing console (testdata/console-pass.txt, from a real run) and on
// copies broken the ways a real run can break: each must be caught.
func TestConsoleChecks(t *testing.T) {
	raw, err := os.ReadFile("testdata/console-pass.txt")
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	if p := consoleProblems(good); len(p) != 0 {
		t.Fatalf("recorded passing console reported as failing: %q", p)
	}
	broken := map[string]string{
		"step failed": strings.Replace(good, "lake_selftest: PASS vector_add-check",
			"lake_selftest: FAIL vector_add-check err=0 result mismatch", 1),
		"step missing": strings.Replace(good, "lake_selftest: PASS predict-async\n", "", 1),
		"caller got a timeout instead of EPIPE": strings.Replace(good, "lake_selftest: PASS laked-gone-error",
			"lake_selftest: FAIL laked-gone-error err=-110 want -EPIPE", 1),
		"oops": strings.Replace(good, "LAKEVM: DMESG-END",
			"[   12.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\nLAKEVM: DMESG-END", 1),
		"warning": strings.Replace(good, "LAKEVM: DMESG-END",
			"[   12.0] WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 bar+0x1/0x2\nLAKEVM: DMESG-END", 1),
		"no restart": regexp.MustCompile(`lake_shm: laked attached \(pid \d+, attach 3\)`).ReplaceAllString(good, ""),
		"hostile call succeeded": strings.Replace(good, "lake_selftest: PASS hostile-bad-status",
			"lake_selftest: FAIL hostile-bad-status err=0 want -71", 1),
		"orphans not failed": strings.Replace(good, "laked detached, 3 pending calls failed",
			"laked detached, 0 pending calls failed", 1),
		"registry not repaired": strings.Replace(good, "lake_shm: the feature registry was corrupted; re-creating it\n", "", 1),
		"VM did not finish":     good[:strings.Index(good, "LAKEVM: DMESG-BEGIN")],
		"no latency line":       strings.Replace(good, "lake_selftest: latency over", "lake_selftest: no latency over", 1),
		"deadline not honoured": strings.Replace(good, "lake_selftest: PASS deadline-past", "lake_selftest: FAIL deadline-past err=0", 1),
		"init script failure":   strings.Replace(good, "LAKEVM: phase stop", "LAKEVM: FAIL rmmod lakelib\nLAKEVM: phase stop", 1),
		"dev mode":              strings.Replace(good, "LAKEVM: dev crw-------", "LAKEVM: dev crw-rw-rw-", 1),
		"second run missing":    strings.Replace(good, "lake_selftest: start mode=run", "", 1),
	}
	for name, out := range broken {
		if out == good {
			t.Fatalf("%s: the fixture did not change (stale fixture?)", name)
		}
		if p := consoleProblems(out); len(p) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}
