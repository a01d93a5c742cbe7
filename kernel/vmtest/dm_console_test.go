//go:build linux

package vmtest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDMConsoleChecks runs TestVMLinnOS's checks on a recorded dm-phase
// console (testdata/dm-console-pass.txt, from a real run that passes the
// functional checks; set LAKE_DM_CONSOLE to check another file) and on
// copies broken the ways a run can break: each must be caught. The
// latency goals (checked by default; LAKE_VM_DM_STRICT=0 turns them off)
// must hold on the recorded run and be reported on rows that miss them.
// The guardrail runs (revoke cap, accuracy bypass) must pass on the
// recorded run and each way they can fail must be caught.
func TestDMConsoleChecks(t *testing.T) {
	path := "testdata/dm-console-pass.txt"
	if p := os.Getenv("LAKE_DM_CONSOLE"); p != "" {
		path = p
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	good := strings.ReplaceAll(string(raw), "\r", "")
	rows, probs := dmProblems(good, false)
	t.Logf("table:\n%s", dmTable(rows))
	if len(probs) != 0 {
		t.Fatalf("recorded passing console reported as failing: %q", probs)
	}
	broken := map[string]string{
		"fio verify error":       strings.Replace(good, "LAKEVM: DM-FIO-END fast rc=0", "LAKEVM: DM-FIO-END fast rc=1", 1),
		"replicas differ":        strings.Replace(good, "DM-CHECK replicas-identical ok", "DM-CHECK replicas-identical FAIL", 1),
		"no replica check":       strings.Replace(good, "DM-CHECK replicas-identical ok", "DM-CHECK other ok", 1),
		"bad table accepted":     strings.Replace(good, "DM-CHECK bad-tables ok", "DM-CHECK bad-table FAIL", 1),
		"oops":                   strings.Replace(good, "LAKEVM: phase dm-linnos done", "[ 1.0] BUG: kernel NULL pointer dereference\nLAKEVM: phase dm-linnos done", 1),
		"phase incomplete":       strings.Replace(good, "LAKEVM: phase dm-linnos done", "", 1),
		"no features":            regexp.MustCompile(`(DM-STATUS fast [^\n]*) features=1`).ReplaceAllString(good, "$1 features=0"),
		"no fast revokes":        regexp.MustCompile(`(DM-STATUS fast [^\n]*) revokes=\d+`).ReplaceAllString(good, "$1 revokes=0"),
		"fast run missing":       strings.Replace(good, "LAKEVM: DM-FIO-BEGIN fast", "LAKEVM: DM-FIO-BEGIN fasty", 1),
		"no kill fallback":       strings.Replace(good, "DM-STATUS killed", "DM-STATUS killedx", 1),
		"warnings in kbuild":     strings.Replace(good, "modules built without warnings", "modules built", 1),
		"cap never binds":        regexp.MustCompile(`(DM-STATUS guard-cap [^\n]*) capped=\d+`).ReplaceAllString(good, "$1 capped=0"),
		"revokes above cap":      regexp.MustCompile(`(DM-STATUS guard-cap [^\n]*) revokes=\d+`).ReplaceAllString(good, "$1 revokes=99999"),
		"cap run fio error":      strings.Replace(good, "LAKEVM: DM-FIO-END guard-cap-1 rc=0", "LAKEVM: DM-FIO-END guard-cap-1 rc=1", 1),
		"no bypass":              regexp.MustCompile(`(DM-STATUS guard-bypass [^\n]*) bypass=1`).ReplaceAllString(good, "$1 bypass=0"),
		"nothing bypassed":       regexp.MustCompile(`(DM-STATUS guard-bypass [^\n]*) bypassed=\d+`).ReplaceAllString(good, "$1 bypassed=0"),
		"bypass stays on":        regexp.MustCompile(`(DM-STATUS guard-cleared [^\n]*) bypass=0`).ReplaceAllString(good, "$1 bypass=1"),
		"capped not on /metrics": regexp.MustCompile(`(DM-METRIC guard-cap lake_kernel_stat\{field="capped",key="\d+",schema="stats.dm_linnos"\}) \d+`).ReplaceAllString(good, "$1 0"),
		"bypass not on /metrics": regexp.MustCompile(`(DM-METRIC guard-bypass lake_kernel_stat\{field="bypass",key="\d+",schema="stats.dm_linnos"\}) 1`).ReplaceAllString(good, "$1 0"),
	}
	if _, p := dmProblems(good, true); len(p) != 0 {
		t.Errorf("the recorded run fails the latency goals: %q", p)
	}
	// LinnOS rows no better than the primary alone: p99.9 not below half
	// of it on either path, the fast path's average 20% above it
	worse := append([]dmRow(nil), rows...)
	var prim dmRow
	for _, r := range worse {
		if r.Mode == "primary" {
			prim = r
		}
	}
	for i := range worse {
		switch worse[i].Mode {
		case "fast":
			worse[i].P999Us, worse[i].AvgUs = prim.P999Us*0.6, prim.AvgUs*1.2
		case "laked":
			worse[i].P999Us = prim.P999Us
		}
	}
	if lp := dmLatencyProblems(worse); len(lp) != 3 {
		t.Errorf("rows missing the goals three ways reported as %q", lp)
	}
	for name, out := range broken {
		if out == good {
			t.Fatalf("%s: the fixture did not change (stale fixture?)", name)
		}
		if _, p := dmProblems(out, false); len(p) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}
