//go:build linux

package vmtest

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// installedMarker is what phase-pkg.sh writes to the kernel log before it
// starts: the attaches before it are the earlier phases', the ones after
// it the installed layout's.
const installedMarker = "lakevm: phase installed-layout"

// beforeInstalled is the part of a dmesg dump before phase-pkg.sh ran
// (all of it when the phase did not run).
func beforeInstalled(dmesg string) string {
	if i := strings.Index(dmesg, installedMarker); i >= 0 {
		return dmesg[:i]
	}
	return dmesg
}

// installedLayoutProblems checks phase-pkg.sh's part of one VM run: the
// modules loaded from /lib/modules/KVER/extra through modules-load.d made
// /dev/lake (mode 0600); laked (unless the run used the fake daemon)
// found /dev/lake through device: auto in the shipped laked.yaml and
// served it, both when started after the module and when started before
// it; each attach was matched by a detach; and modprobe lakelib alone
// loaded lake_shm too.
func installedLayoutProblems(out string) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if !strings.Contains(out, "LAKEVM: phase installed-layout done") {
		bad("the installed-layout phase did not run to its end")
	}
	if strings.Contains(out, "LAKEVM: FAIL installed-layout") {
		bad("the installed-layout phase failed: %s", line(out, strings.Index(out, "LAKEVM: FAIL installed-layout")))
	}
	if !strings.Contains(out, "LAKEVM: installed-layout dev crw-------") {
		bad("modules-load.d did not make /dev/lake a character device with mode 0600")
	}
	dmesg := section(out, "LAKEVM: DMESG-BEGIN", "LAKEVM: DMESG-END")
	i := strings.Index(dmesg, installedMarker)
	if i < 0 {
		bad("no %q in the kernel log", installedMarker)
		return probs
	}
	after := dmesg[i:]
	fake := strings.Contains(out, "laked=fake")
	attaches := 2 // laked after the module, then laked before it
	if fake {
		attaches = 1 // the fake daemon takes a path: no device: auto
	}
	if got := strings.Count(after, "lake_shm: laked attached"); got != attaches {
		bad("installed layout: a daemon attached %d times, want %d", got, attaches)
	}
	if got := strings.Count(after, "lake_shm: laked detached"); got != attaches {
		bad("installed layout: a daemon detached %d times, want %d", got, attaches)
	}
	if got := strings.Count(after, "lakelib: ready"); got != 2 {
		bad("installed layout: lakelib loaded %d times, want 2 (with laked, then alone by modprobe)", got)
	}
	if fake {
		return probs
	}
	log := section(out, "LAKEVM: LOG-BEGIN /tmp/laked-installed.log", "LAKEVM: LOG-END /tmp/laked-installed.log")
	if !strings.Contains(log, `"device":"/dev/lake"`) || !strings.Contains(log, `"message":"serving kernel region"}`) {
		bad("the installed laked did not serve /dev/lake by itself (device: auto):\n%s", log)
	}
	log = section(out, "LAKEVM: LOG-BEGIN /tmp/laked-late.log", "LAKEVM: LOG-END /tmp/laked-late.log")
	if !strings.Contains(log, `"message":"serving kernel region (it appeared after start`) {
		bad("laked started before lake_shm did not serve /dev/lake when it appeared:\n%s", log)
	}
	return probs
}

// TestInstalledLayoutChecks runs the installed-layout checks on a
// recorded passing run (testdata/console-installed.txt) and on copies
// broken the ways a run can break; the base checks must pass on the same
// recording, whose extra attach they must not count.
func TestInstalledLayoutChecks(t *testing.T) {
	raw, err := os.ReadFile("testdata/console-installed.txt")
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	if p := installedLayoutProblems(good); len(p) != 0 {
		t.Fatalf("recorded passing console reported as failing: %q", p)
	}
	// The base checks must not count the installed phase's attaches. The
	// self-test's step list grows whenever a module adds a step, and
	// TestConsoleChecks holds it against the current recording
	// (console-pass.txt); this older recording is only asked to pass the
	// rest of the base checks.
	var base []string
	for _, p := range consoleProblems(good) {
		if !strings.Contains(p, ": no PASS line for step ") && !strings.Contains(p, ": no lake_predict latency line") {
			base = append(base, p)
		}
	}
	if len(base) != 0 {
		t.Fatalf("the base checks fail on a run with the installed-layout phase: %q", base)
	}
	broken := map[string]string{
		"phase missing":     strings.Replace(good, "LAKEVM: phase installed-layout done", "", 1),
		"phase failed":      strings.Replace(good, "LAKEVM: phase installed-layout done", "LAKEVM: FAIL installed-layout: modprobe lakelib\nLAKEVM: phase installed-layout done", 1),
		"no device":         strings.Replace(good, "LAKEVM: installed-layout dev crw-------", "LAKEVM: FAIL installed-layout: no /dev/lake", 1),
		"marker missing":    strings.Replace(good, installedMarker, "", 1),
		"no attach":         strings.Replace(good, "lake_shm: laked attached (pid 175, attach 1)", "", 1),
		"no late attach":    strings.Replace(good, "lake_shm: laked attached (pid 204, attach 1)", "", 1),
		"laked not served":  strings.Replace(good, `"time":"2026-12-01T23:40:52Z","message":"serving kernel region"}`, `"time":"2026-12-01T23:40:52Z","message":"no kernel region device"}`, 1),
		"late not served":   strings.Replace(good, `"message":"serving kernel region (it appeared after start`, `"message":"config key device: the device appeared but does not attach`, 1),
		"dependency unused": strings.Replace(good, "[   33.903317] lakelib: ready", "[   33.903317] lakelib: failed", 1),
	}
	for name, out := range broken {
		if out == good {
			t.Fatalf("%s: the fixture did not change (stale fixture?)", name)
		}
		if p := installedLayoutProblems(out); len(p) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}
