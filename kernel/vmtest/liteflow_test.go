//go:build linux

package vmtest

import (
	"fmt"
	"regexp"
	"strings"
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
	if len(runs) != 1 || !strings.HasPrefix(runs[0], "run") {
		bad("%d lake_lftest runs, want 1 (mode=run)", len(runs))
		return probs
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
