//go:build linux

package vmtest

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// lftestSteps are the PASS lines lake_lftest.ko (mode=run) must print.
var lftestSteps = []string{
	"register", "register-duplicate-refused", "register-bad-name-refused", "no-snapshot-nodata",
	"process-fallback-without-snapshot", "install-A", "answer-A", "refuse-bad-crc", "refuse-version",
	"refuse-truncated", "refuse-wrong-shape", "refuse-too-wide", "old-snapshot-stays", "flow-7-on-A",
	"install-B", "flow-7-stays-on-A", "flow-8-on-B", "flow-7-ended-moves-to-B", "process-collects-and-enforces",
	"stress-no-torn-answer", "stress-queries-never-wait", "unregister",
}

var (
	lftestStepRE = regexp.MustCompile(`lake_lftest: (PASS|FAIL) (\S+)(.*)`)
	lftestDoneRE = regexp.MustCompile(`lake_lftest: DONE pass=\d+ fail=0`)
	lfStressRE   = regexp.MustCompile(`lake_lftest: stress installs=(\d+) queries=(\d+) during=(\d+) torn=(\d+) errors=(\d+)`)
	tcpgenRE     = regexp.MustCompile(`(?m)^TCPGEN tag=(\S+) phase=(\d) mbps=(\S+) rtt_ms=\S+ fct_p50_ms=\S+ fct_mean_ms=\S+ flows=(\d+) failed=(\d+)$`)
	lfStatsRE    = regexp.MustCompile(`(?m)^LAKEVM: liteflow-tcp stats (\S+) decisions (\d+) fallback (\d+) out_of_range (\d+) records (\d+) active_version (\d+)$`)
	lfKernelRE   = regexp.MustCompile(`(?m)^app aurora model 3 in 30 out 1 active_version (\d+) .* installs (\d+) refused (\d+) `)
)

// liteflowProblems checks the LiteFlow phase (phase-liteflow.sh): every
// lake_lftest step passed, the stress run replaced the snapshot while
// queries ran and none saw a torn snapshot or an error.
func liteflowProblems(out string) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if !strings.Contains(out, "LAKEVM: phase liteflow") {
		return []string{"the LiteFlow phase did not run"}
	}
	dmesg := section(out, "LAKEVM: DMESG-BEGIN", "LAKEVM: DMESG-END")
	runs := strings.Split(dmesg, "lake_lftest: start mode=")[1:]
	withLaked := strings.Contains(out, "laked=laked")
	want := 1
	if withLaked {
		want = 3 // run, then two fetches of snapshots loaded into laked by hand
	}
	if len(runs) != want || !strings.HasPrefix(runs[0], "run") {
		bad("%d lake_lftest runs, want %d (mode=run first)", len(runs), want)
		return probs
	}
	for i, r := range runs[1:] {
		if !strings.HasPrefix(r, "fetch") || !strings.Contains(r, "lake_lftest: PASS fetch-installed-from-laked") || !lftestDoneRE.MatchString(r) {
			bad("lake_lftest fetch run %d: the snapshot loaded with lakectl did not reach the kernel:\n%s", i+1, firstLines(r, 6))
		}
	}
	if withLaked {
		probs = append(probs, liteflowTCPProblems(out)...)
	}
	passed := map[string]bool{}
	for _, m := range lftestStepRE.FindAllStringSubmatch(runs[0], -1) {
		if m[1] == "FAIL" {
			bad("lake_lftest: step %s failed:%s", m[2], m[3])
			continue
		}
		passed[m[2]] = true
	}
	for _, s := range lftestSteps {
		if !passed[s] {
			bad("lake_lftest: no PASS line for step %s", s)
		}
	}
	if !lftestDoneRE.MatchString(runs[0]) {
		bad("lake_lftest: no DONE line without failures")
	}
	m := lfStressRE.FindStringSubmatch(runs[0])
	switch {
	case m == nil:
		bad("lake_lftest: no stress line")
	case m[4] != "0" || m[5] != "0":
		bad("lake_lftest: stress saw %s torn answers and %s errors", m[4], m[5])
	case len(m[1]) < 2 || len(m[3]) < 4:
		bad("lake_lftest: stress replaced the snapshot %s times with %s queries during it; want >= 10 and >= 1000", m[1], m[3])
	}
	return probs
}

// liteflowTCPProblems checks the congestion-control runs: the three modes
// ran before and after the change with traffic flowing, lake decided with
// the snapshot, LiteFlow mode fed laked samples and the kernel installed a
// snapshot laked shipped; lakectl liteflow showed both sides.
func liteflowTCPProblems(out string) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	seen := map[string]bool{}
	for _, m := range tcpgenRE.FindAllStringSubmatch(out, -1) {
		seen[m[1]+"/"+m[2]] = true
		if m[1] == "cubic" && (m[3] == "0.00" || m[4] == "0") {
			bad("cubic phase %s moved no data or completed no flow: %s", m[2], m[0])
		}
	}
	for _, mode := range []string{"cubic", "fixed", "liteflow"} {
		for _, ph := range []string{"0", "1"} {
			if !seen[mode+"/"+ph] {
				bad("no TCPGEN line for mode %s phase %s", mode, ph)
			}
		}
	}
	stats := map[string][]string{}
	for _, m := range lfStatsRE.FindAllStringSubmatch(out, -1) {
		stats[m[1]] = m
	}
	if f := stats["fixed"]; f == nil || f[2] == "0" || f[5] != "0" || f[6] == "0" {
		bad("fixed mode: want snapshot decisions, no samples recorded and a snapshot from laked: %v", f)
	}
	if l := stats["liteflow"]; l == nil || l[5] == "0" {
		bad("LiteFlow mode recorded no samples for laked: %v", l)
	}
	k := lfKernelRE.FindStringSubmatch(section(out, "LAKEVM: LAKECTL-LITEFLOW-BEGIN", "LAKEVM: LAKECTL-LITEFLOW-END"))
	if k == nil {
		bad("lakectl liteflow did not show the kernel's aurora app")
	} else if k[1] == "1" || k[2] == "1" {
		bad("the kernel installed no snapshot laked shipped after the first (active version %s, %s installs)", k[1], k[2])
	}
	return probs
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// TestLiteFlowConsoleChecks runs the LiteFlow checks of TestVM on the
// recorded passing console and on copies broken the ways a run can break.
func TestLiteFlowConsoleChecks(t *testing.T) {
	raw, err := os.ReadFile("testdata/console-pass.txt")
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	if p := liteflowProblems(good); len(p) != 0 {
		t.Fatalf("recorded passing console reported as failing: %q", p)
	}
	broken := map[string]string{
		"step failed": strings.Replace(good, "lake_lftest: PASS flow-7-stays-on-A",
			"lake_lftest: FAIL flow-7-stays-on-A err=0 ", 1),
		"torn answer":    regexp.MustCompile(`torn=0 errors=0`).ReplaceAllString(good, "torn=3 errors=0"),
		"phase missing":  strings.Replace(good, "LAKEVM: phase liteflow", "LAKEVM: phase other", 1),
		"fetch missing":  strings.Replace(good, "lake_lftest: PASS fetch-installed-from-laked", "lake_lftest: FAIL fetch-installed-from-laked err=-61", 1),
		"no cubic line":  regexp.MustCompile(`(?m)^TCPGEN tag=cubic phase=1 .*\n`).ReplaceAllString(good, ""),
		"no samples":     regexp.MustCompile(`stats liteflow (.*) records \d+`).ReplaceAllString(good, "stats liteflow $1 records 0"),
		"never shipped":  regexp.MustCompile(`(?m)^app aurora model 3 in 30 out 1 active_version \d+ (.*) installs \d+ `).ReplaceAllString(good, "app aurora model 3 in 30 out 1 active_version 1 $1 installs 1 "),
		"no lakectl out": strings.Replace(good, "LAKEVM: LAKECTL-LITEFLOW-BEGIN", "LAKEVM: LAKECTL-X", 1),
	}
	for name, out := range broken {
		if out == good {
			t.Fatalf("%s: the fixture did not change (stale fixture?)", name)
		}
		if p := liteflowProblems(out); len(p) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}
