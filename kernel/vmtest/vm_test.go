//go:build linux

package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// selftestSteps are the steps every full lake_selftest run must pass.
var selftestSteps = []string{
	"init", "ctx-create", "mem-alloc", "memcpy-htod", "module-load", "get-function",
	"launch-vector_add", "ctx-synchronize", "memcpy-dtoh", "vector_add-check", "async-htod-launch-dtoh", "module-unload",
	"mem-free", "mem-free-twice-refused", "ctx-destroy",
	"features-open", "features-record", "model-info",
	"model-fetch-size", "model-fetch-short-refused", "model-fetch", "model-fetch-unknown",
	"predict", "predict-bad-length-refused",
	"predict-async",
	"latency", "deadline-past", "deadline-ahead",
}

// hostileSteps are the steps of the run against the hostile daemon.
var hostileSteps = []string{
	"hostile-fetch-overlong", "hostile-fetch-short-claim", "hostile-fetch-empty",
	"hostile-unknown-tag", "hostile-bad-status", "hostile-runaway-cq-tail",
	"hostile-scribbled-region", "hostile-corrupt-ring-refused",
}

// prerequisites returns why the VM test cannot run here, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		return "not root (the VM test needs root for kbuild's and qemu's files; CI runs it as root)"
	}
	for _, tool := range []string{"qemu-system-x86_64", "busybox", "gcc", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found (CI installs qemu-system-x86 busybox-static gcc make)"
		}
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-6.1.*")
	headers, _ := filepath.Glob("/lib/modules/6.1.*/build/Makefile")
	if len(kernels) == 0 || len(headers) == 0 {
		return "no Linux 6.1 kernel image and headers (CI installs linux-image-amd64 linux-headers-amd64)"
	}
	return ""
}

// TestVM boots the modules with laked in qemu and checks the self-test,
// the error a waiting caller gets when laked is killed, the restart, and
// a clean dmesg. LAKE_VM_LAKED=fake runs it with the C test daemon
// (kernel/tools/fakelaked.c) instead of laked.
func TestVM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the VM test boots a kernel in qemu (about a minute)")
	}
	if why := prerequisites(); why != "" {
		t.Skip(why)
	}
	mode := os.Getenv("LAKE_VM_LAKED")
	if mode == "" {
		mode = "laked"
	}
	out := runVM(t, mode)
	for _, l := range latencyRE.FindAllString(out, -1) {
		t.Log(l)
	}
	checkConsole(t, out)
	for _, l := range recoveryReport(out) {
		t.Log(l)
	}
	for _, p := range liteflowProblems(out) {
		t.Error(p)
	}
	for _, p := range installedLayoutProblems(out) {
		t.Error(p)
	}
}

func runVM(t *testing.T, mode string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "run.sh", t.TempDir())
	cmd.Env = append(os.Environ(), "LAKE_VM_LAKED="+mode)
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	t.Logf("run.sh (laked=%s) took %v", mode, time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, tail(buf.String(), 200))
	}
	return strings.ReplaceAll(buf.String(), "\r", "")
}

var stepRE = regexp.MustCompile(`lake_selftest: (PASS|FAIL) (\S+)(.*)`)

// checkConsole asserts on the serial console of one VM run.
func checkConsole(t *testing.T, out string) {
	t.Helper()
	probs := consoleProblems(out)
	for _, p := range probs {
		t.Error(p)
	}
	if len(probs) > 0 {
		t.Logf("console tail:\n%s", tail(out, 80))
	}
}

// consoleProblems lists everything wrong with the console output of one
// VM run (run.sh's output, serial console included); nil when it passed.
func consoleProblems(out string) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	for _, b := range []string{"WARNING:", "BUG:", "Oops", "Call Trace", "general protection fault", "LAKEVM: FAIL", "run.sh: FAIL"} {
		if i := strings.Index(out, b); i >= 0 {
			bad("console shows %q: %s", b, line(out, i))
		}
	}
	if !strings.Contains(out, "LAKEVM: END") || !strings.Contains(out, "run.sh: PASS") {
		bad("the VM test did not complete")
	}
	if !strings.Contains(out, "modules built without warnings") {
		bad("run.sh did not confirm a warning-free module build")
	}
	if !strings.Contains(out, "LAKEVM: dev crw-------") {
		bad("/dev/lake is not a character device with mode 0600")
	}
	dmesg := beforeInstalled(section(out, "LAKEVM: DMESG-BEGIN", "LAKEVM: DMESG-END"))
	if got := strings.Count(dmesg, "lake_shm: laked attached"); got != 3 {
		bad("a daemon attached %d times, want 3 (laked, hostile daemon, laked again)", got)
	}
	if got := strings.Count(dmesg, "lake_shm: laked detached"); got != 3 {
		bad("a daemon detached %d times, want 3 (kill, kill, stop)", got)
	}
	if !strings.Contains(dmesg, "lake_shm: laked detached, 1 pending calls failed") {
		bad("killing laked did not fail exactly the one waiting call")
	}
	// the three calls that timed out against the hostile daemon stay in
	// flight until it goes; its garbage in the registry is repaired
	if !strings.Contains(dmesg, "lake_shm: laked detached, 3 pending calls failed") {
		bad("killing the hostile daemon did not fail its three orphaned calls")
	}
	if !strings.Contains(dmesg, "lake_shm: the feature registry was corrupted; re-creating it") {
		bad("the registry the hostile daemon corrupted was not re-created")
	}
	runs := strings.Split(dmesg, "lake_selftest: start mode=")[1:]
	if len(runs) != 4 {
		bad("%d self-test runs, want 4 (run, wait, hostile, run)", len(runs))
		return probs
	}
	for i, want := range []string{"run", "wait", "hostile", "run"} {
		r := runs[i]
		if !strings.HasPrefix(r, want) {
			bad("self-test run %d has mode %q, want %s", i, firstLine(r), want)
			continue
		}
		passed := map[string]bool{}
		for _, m := range stepRE.FindAllStringSubmatch(r, -1) {
			if m[1] == "FAIL" {
				bad("run %d (%s): step %s failed:%s", i, want, m[2], m[3])
				continue
			}
			passed[m[2]] = true
		}
		steps := selftestSteps
		switch want {
		case "wait":
			// the caller waiting while laked dies gets -EPIPE, not a hang
			steps = []string{"laked-gone-error"}
		case "hostile":
			steps = hostileSteps
		}
		for _, s := range steps {
			if !passed[s] {
				bad("run %d (%s): no PASS line for step %s", i, want, s)
			}
		}
		if want == "run" && !latencyRE.MatchString(r) {
			bad("run %d (%s): no lake_predict latency line", i, want)
		}
		if !doneRE.MatchString(r) {
			bad("run %d (%s): no DONE line without failures", i, want)
		}
	}
	return probs
}

var doneRE = regexp.MustCompile(`lake_selftest: DONE pass=\d+ fail=0`)

// latencyRE is the self-test's lake_predict round-trip line (TCG: only the
// ratio to the no-op in the same run means anything).
var latencyRE = regexp.MustCompile(`lake_selftest: latency over \d+ calls: lake_predict n=1 p50 \d+ ns p99 \d+ ns; no-op \(init\) p50 \d+ ns p99 \d+ ns; predict/no-op p50 \d+\.\d\dx`)

func section(s, begin, end string) string {
	i := strings.Index(s, begin)
	j := strings.LastIndex(s, end)
	if i < 0 || j < i {
		return ""
	}
	return s[i:j]
}

func line(s string, i int) string {
	a := strings.LastIndexByte(s[:i], '\n') + 1
	b := strings.IndexByte(s[i:], '\n')
	if b < 0 {
		return s[a:]
	}
	return s[a : i+b]
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
