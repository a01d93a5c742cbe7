//go:build linux

package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dmModes are the fio runs of phase-dm.sh, in order.
var dmModes = []string{"primary", "off", "hedge", "fast", "laked", "laked-kill"}

// dmRow is one line of the dm-linnos table.
type dmRow struct {
	Mode                 string
	Reads                int64
	AvgUs, P99Us, P999Us float64
	Status               map[string]string // dmsetup status of the target after the run
	FioRC                int
	WriterErr, ReaderErr int
}

func (r dmRow) counter(k string) int64 {
	v, _ := strconv.ParseInt(r.Status[k], 10, 64)
	return v
}

// TestVMLinnOS boots the VM with only the dm-linnos phase (LAKE_VM_PHASE=dm)
// and checks it: bad table lines and messages refused, fio without errors
// (its writer verifies what it wrote, through the steered reads) in every
// mode, identical replicas afterwards, reads revoked by both LinnOS paths
// and hedged in hedge mode, laked killed mid-run: no fio error, the
// fast path takes over, the restarted laked decides again; the target's
// counters on laked's /metrics equal its dmsetup status; the restarted
// laked retrains the primary's model on the target's records and the
// target follows the new version; the guardrails work (dmGuardProblems:
// a low revoke_cap caps revokes within its per-window share, an accuracy
// below acc_min turns the bypass on and acc_min 0 turns it off, with the
// counters on /metrics as in the status). It logs the table docs/EVALUATION.md
// records.
//
// The latency goals (LinnOS p99.9 below half the stalling primary's
// alone on both paths, the fast path's average within 5% of it) are
// asserted too, unless LAKE_VM_DM_STRICT=0: with all_slow_to=least,
// what the phase uses, they held in all 4 runs made on the shared 2-core
// machine this was developed on (load average ~9 in 3 of them), by wide margins
// (docs/EVALUATION.md; with all_slow_to=primary the fast path met them in
// 3 of 6 runs and the laked path in 1).
func TestVMLinnOS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the dm-linnos VM test boots a kernel in qemu and runs fio (about 6 minutes)")
	}
	if why := prerequisites(); why != "" {
		t.Skip(why)
	}
	for _, tool := range []string{"fio", "dmsetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not found (deploy/setup-debian.sh installs fio and dmsetup)")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 17*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "run.sh", t.TempDir())
	cmd.Env = append(os.Environ(), "LAKE_VM_LAKED=laked", "LAKE_VM_PHASE=dm", "LAKE_VM_TIMEOUT=900")
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	out := strings.ReplaceAll(string(outb), "\r", "")
	t.Logf("run.sh (dm phase) took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, tail(out, 200))
	}
	strict := os.Getenv("LAKE_VM_DM_STRICT") != "0"
	rows, probs := dmProblems(out, strict)
	if !strict {
		t.Logf("latency goals NOT checked (LAKE_VM_DM_STRICT=0): %v", dmLatencyProblems(rows))
	}
	t.Logf("dm-linnos table (TCG; compare rows, not absolute times):\n%s", dmTable(rows))
	for _, p := range probs {
		t.Error(p)
	}
	if len(probs) > 0 {
		t.Logf("console tail:\n%s", tail(out, 120))
	}
}

var (
	dmStatusRE = regexp.MustCompile(`(?m)^LAKEVM: DM-STATUS (\S+) (.*)$`)
	dmCheckRE  = regexp.MustCompile(`(?m)^LAKEVM: DM-CHECK (\S+) (\S+) (.*)$`)
	dmFioEndRE = regexp.MustCompile(`(?m)^LAKEVM: DM-FIO-END (\S+) rc=(\d+)$`)
)

// parseStatus turns "0 65536 linnos mode=fast reads=3 ..." into a map.
func parseStatus(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

type fioJob struct {
	Name  string `json:"jobname"`
	Error int    `json:"error"`
	Read  struct {
		TotalIOs int64 `json:"total_ios"`
		Clat     struct {
			Mean       float64            `json:"mean"`
			Percentile map[string]float64 `json:"percentile"`
		} `json:"clat_ns"`
	} `json:"read"`
}

// dmProblems parses the console of a dm-phase run into the table rows and
// lists everything that is wrong; strict adds the latency goals
// (dmLatencyProblems).
func dmProblems(out string, strict bool) ([]dmRow, []string) {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	for _, b := range []string{"WARNING:", "BUG:", "Oops", "Call Trace", "general protection fault", "LAKEVM: FAIL", "run.sh: FAIL"} {
		if i := strings.Index(out, b); i >= 0 {
			bad("console shows %q: %s", b, line(out, i))
		}
	}
	if !strings.Contains(out, "LAKEVM: phase dm-linnos done") || !strings.Contains(out, "run.sh: PASS") {
		bad("the dm-linnos phase did not complete")
	}
	if !strings.Contains(out, "modules built without warnings") {
		bad("run.sh did not confirm a warning-free module build")
	}
	checks := map[string]string{}
	for _, m := range dmCheckRE.FindAllStringSubmatch(out, -1) {
		if m[2] != "ok" {
			bad("check %s: %s %s", m[1], m[2], m[3])
		}
		checks[m[1]] = m[2]
	}
	for _, c := range []string{"bad-tables", "bad-messages", "replicas-identical", "hostile-model"} {
		if checks[c] != "ok" {
			bad("no passing %s check", c)
		}
	}
	status := map[string]map[string]string{}
	for _, m := range dmStatusRE.FindAllStringSubmatch(out, -1) {
		status[m[1]] = parseStatus(m[2])
	}
	var rows []dmRow
	for _, mode := range dmModes {
		rows = append(rows, dmFioRow(out, mode, status[mode], 1000, bad))
	}
	if len(probs) > 0 {
		return rows, probs
	}
	by := map[string]dmRow{}
	for _, r := range rows {
		by[r.Mode] = r
	}
	for _, mode := range []string{"fast", "laked"} {
		if by[mode].counter("revokes") == 0 {
			bad("%s: no read was revoked", mode)
		}
	}
	if strict {
		probs = append(probs, dmLatencyProblems(rows)...)
	}
	// the target records every read for laked's retraining
	// (linnos.arrival / linnos.completion in the region's registry)
	if by["fast"].counter("features") != 1 || by["fast"].counter("feat_lost") != 0 {
		bad("fast: reads not recorded into the feature registry (features=%d feat_lost=%d)", by["fast"].counter("features"), by["fast"].counter("feat_lost"))
	}
	if by["off"].counter("revokes") != 0 || by["off"].counter("predictions") != 0 {
		bad("off: predictions were made (%v)", by["off"].Status)
	}
	if by["hedge"].counter("hedges") == 0 {
		bad("hedge: no read was hedged")
	}
	if by["laked"].counter("laked_ok") == 0 {
		bad("laked: laked decided no read")
	}
	// laked killed mid-run: the fast path took over, and the restarted
	// laked decided again
	killed, restarted, end := status["killed"], status["restarted"], status["after-restart"]
	if killed == nil || restarted == nil || end == nil {
		bad("laked-kill: missing status lines")
	} else {
		n := func(m map[string]string, k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
		if n(killed, "laked_absent")+n(killed, "laked_err") == 0 || n(killed, "fallbacks") == 0 {
			bad("laked-kill: no fast-path fallback after the kill (%v)", killed)
		}
		if n(killed, "reads") <= n(status["before-kill"], "reads") {
			bad("laked-kill: no reads between the kill and the restart")
		}
		if n(end, "laked_ok") <= n(restarted, "laked_ok") || !strings.Contains(out, "LAKEVM: DM-FIO-END after-restart rc=0") {
			bad("laked-kill: the restarted laked decided no read (laked_ok %d at restart, %d after the next run)", n(restarted, "laked_ok"), n(end, "laked_ok"))
		}
	}
	// the guardrail and decision counters on laked's /metrics, as the
	// target published them after the run, equal its dmsetup status
	for _, mode := range []string{"fast", "laked"} {
		probs = append(probs, dmMetricsProblems(out, mode, status[mode+"-metrics"])...)
	}
	// laked retrained the primary's model on the reads the target recorded,
	// checked it on held-out reads and installed it: the target follows
	// the new version
	ver := func(m map[string]string) int64 {
		_, v, _ := strings.Cut(m["r0"], ",version=")
		v, _, _ = strings.Cut(v, ",")
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	if vi, vr := ver(status["retrain-before"]), ver(status["retrained"]); vi < 1 || vr <= vi {
		bad("retraining: the primary's model version went from %d to %d over the retraining run; want a retrained one", vi, vr)
	}
	if !regexp.MustCompile(`(?m)^LAKEVM: DM-RETRAIN .*"outcome":"installed"`).MatchString(out) {
		bad("retraining: laked logged no installed retraining")
	}
	// hostile daemons: fio without errors, out-of-range answers counted
	// and decided by the fast path, the installed model kept
	for _, m := range []string{"hostile-answers", "hostile-evil"} {
		if !strings.Contains(out, "LAKEVM: DM-FIO-END "+m+" rc=0") {
			bad("%s: fio did not finish without errors", m)
		}
	}
	n := func(m map[string]string, k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	if h := status["hostile-answers"]; n(h, "laked_bad") == 0 || n(h, "fallbacks") < n(h, "laked_bad") || n(h, "laked_ok") != 0 {
		bad("hostile-answers: out-of-range answers not counted as laked_bad and decided by the fast path (%v)", h)
	}
	if h := status["hostile-evil"]; n(h, "reads") == 0 || n(h, "fallbacks") == 0 || !strings.Contains(h["r0"], ",model=1,") {
		bad("hostile-evil: no reads, no fallbacks, or the installed model was lost (%v)", h)
	}
	probs = append(probs, dmGuardProblems(out, status)...)
	return rows, probs
}

// dmGuardProblems checks the guardrail runs (phase-dm.sh step 2b): fio
// without errors in both; with revoke_cap=C the stalls made the target cap
// revokes (capped > 0) and it revoked some reads but at most
// ceil(C*1024/1000) in each window of 1024 reads the run touched (the
// window counts run on across "reset", so a run of R reads touches at
// most R/1024+2 of them); with the accuracy measured below acc_min the
// target reported bypass=1 and sent reads it would have revoked to the
// primary (bypassed > 0), and acc_min 0 turned the bypass off. Both
// runs' counters must equal laked's /metrics.
func dmGuardProblems(out string, status map[string]map[string]string) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	n := func(m map[string]string, k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	for _, mode := range []string{"guard-cap", "guard-bypass"} {
		// fio runs mode-1, mode-2, ... until the counter under test moved
		runs := regexp.MustCompile(`(?m)^LAKEVM: DM-FIO-END (`+mode+`-\d+) rc=`).FindAllStringSubmatch(out, -1)
		if len(runs) == 0 {
			bad("%s: no fio run", mode)
		}
		for _, r := range runs {
			dmFioRow(out, r[1], nil, 100, bad)
		}
		probs = append(probs, dmMetricsProblems(out, mode, status[mode+"-metrics"])...)
	}
	c, ct := status["guard-cap"], status["guard-cap-table"]
	if c == nil || ct == nil {
		bad("guard-cap: no status or table")
	} else {
		limit := (n(ct, "revoke_cap")*1024 + 999) / 1000
		reads, revokes := n(c, "reads"), n(c, "revokes")
		most := limit * (reads/1024 + 2)
		switch {
		case ct["mode"] != "fast" || ct["revoke_cap"] == "" || limit >= 1024:
			bad("guard-cap: the run was not on the fast path with a low revoke_cap (%v)", ct)
		case n(c, "capped") == 0 || revokes == 0:
			bad("guard-cap: revoke_cap=%s capped no revoke or allowed none (capped=%d revokes=%d)", ct["revoke_cap"], n(c, "capped"), revokes)
		case revokes > most:
			bad("guard-cap: %d revokes in %d reads, above revoke_cap=%s's %d per window of 1024 (at most %d)", revokes, reads, ct["revoke_cap"], limit, most)
		}
	}
	b, bt, cl := status["guard-bypass"], status["guard-bypass-table"], status["guard-cleared"]
	if b == nil || bt == nil || cl == nil {
		bad("guard-bypass: no status, table or status after clearing")
	} else {
		switch {
		case bt["mode"] != "fast" || n(bt, "acc_min") == 0:
			bad("guard-bypass: the run was not on the fast path with acc_min set (%v)", bt)
		case b["bypass"] != "1" || n(b, "bypassed") == 0 || n(b, "accuracy") >= n(bt, "acc_min"):
			bad("guard-bypass: accuracy %s below acc_min=%s, yet bypass=%s bypassed=%s", b["accuracy"], bt["acc_min"], b["bypass"], b["bypassed"])
		case cl["bypass"] != "0":
			bad("guard-bypass: acc_min 0 did not turn the bypass off (bypass=%s)", cl["bypass"])
		}
	}
	return probs
}

// dmFioRow parses the fio run of mode (between its DM-FIO-BEGIN and
// DM-FIO-END lines) and reports through bad a run that is missing, had
// an error (fio's writer verifies what it wrote) or did fewer than
// minReads reads.
func dmFioRow(out, mode string, st map[string]string, minReads int64, bad func(string, ...any)) dmRow {
	row := dmRow{Mode: mode, Status: st, FioRC: -1}
	begin := "LAKEVM: DM-FIO-BEGIN " + mode + "\n"
	i := strings.Index(out, begin)
	if i < 0 {
		bad("%s: no fio output", mode)
		return row
	}
	body := out[i+len(begin):]
	j := strings.Index(body, "LAKEVM: DM-FIO-END "+mode+" rc=")
	if j < 0 {
		bad("%s: fio output not terminated", mode)
		return row
	}
	if m := dmFioEndRE.FindStringSubmatch(body[j:]); m != nil {
		row.FioRC, _ = strconv.Atoi(m[2])
	}
	var res struct {
		Jobs []fioJob `json:"jobs"`
	}
	js := body[:j]
	if k := strings.IndexByte(js, '{'); k >= 0 {
		js = js[k:]
	}
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		bad("%s: fio JSON: %v", mode, err)
	}
	for _, jb := range res.Jobs {
		switch jb.Name {
		case "reader":
			row.ReaderErr = jb.Error
			row.Reads = jb.Read.TotalIOs
			row.AvgUs = jb.Read.Clat.Mean / 1000
			row.P99Us = jb.Read.Clat.Percentile["99.000000"] / 1000
			row.P999Us = jb.Read.Clat.Percentile["99.900000"] / 1000
		case "writer":
			row.WriterErr = jb.Error
		}
	}
	if row.FioRC != 0 || row.ReaderErr != 0 || row.WriterErr != 0 {
		bad("%s: fio exit %d, reader error %d, writer (verify) error %d", mode, row.FioRC, row.ReaderErr, row.WriterErr)
	}
	if row.Reads < minReads {
		bad("%s: only %d reads", mode, row.Reads)
	}
	if mode != "primary" && !strings.HasPrefix(mode, "guard-") && row.Status == nil {
		bad("%s: no dmsetup status", mode)
	}
	return row
}

var (
	dmStatKeyRE = regexp.MustCompile(`(?m)^LAKEVM: DM-STATKEY (\S+) ln=(\d+) r0=(\d+) r1=(\d+)$`)
	dmMetricRE  = regexp.MustCompile(`(?m)^LAKEVM: DM-METRIC (\S+) lake_kernel_stat\{field="([^"]+)",key="(\d+)",schema="([^"]+)"\} (\S+)$`)
)

// dmTargetStats are the fields of stats.dm_linnos (lake_feat_create.h),
// named as the target's status names them.
var dmTargetStats = []string{"reads", "predictions", "revokes", "capped", "bypassed", "all_slow", "fallbacks",
	"deadline_miss", "laked_ok", "laked_err", "laked_bad", "read_errors", "write_errors", "failovers", "accuracy", "bypass"}

// dmMetricsProblems compares what laked's /metrics showed after a mode's
// run (DM-METRIC lines) with the target's status taken just after: every
// counter of stats.dm_linnos under the target's key, and each replica's
// reads, errors, model and version under its key.
func dmMetricsProblems(out, mode string, st map[string]string) []string {
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(mode+" metrics: "+format, a...)) }
	var keys []string
	for _, m := range dmStatKeyRE.FindAllStringSubmatch(out, -1) {
		if m[1] == mode {
			keys = m[2:]
		}
	}
	if keys == nil || st == nil {
		bad("no statistics keys or no status after the run")
		return probs
	}
	got := map[string]string{}
	for _, m := range dmMetricRE.FindAllStringSubmatch(out, -1) {
		if m[1] == mode {
			got[m[4]+"/"+m[3]+"/"+m[2]] = m[5]
		}
	}
	if st["stats"] != "1" {
		bad("the target says its last publication failed (stats=%q)", st["stats"])
	}
	same := func(metric, want string) {
		v, err := strconv.ParseFloat(got[metric], 64)
		w, err2 := strconv.ParseFloat(want, 64)
		if err != nil || err2 != nil || v != w {
			bad("%s = %q on /metrics, %q in dmsetup status", metric, got[metric], want)
		}
	}
	for _, f := range dmTargetStats {
		same("stats.dm_linnos/"+keys[0]+"/"+f, st[f])
	}
	for i, key := range keys[1:] {
		r := map[string]string{}
		for _, kv := range strings.Split(st["r"+strconv.Itoa(i)], ",")[1:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				r[k] = v
			}
		}
		for _, f := range []string{"reads", "errors", "model", "version", "pending"} {
			same("stats.dm_linnos_dev/"+key+"/"+f, r[f])
		}
	}
	return probs
}

// dmLatencyProblems compares the LinnOS rows with the primary alone: p99.9
// below half of it (both paths), average at most 5% above it (the kernel
// fast path; under TCG laked's answer takes longer than any useful
// deadline, so the laked row pays the held reads' wait).
func dmLatencyProblems(rows []dmRow) []string {
	var probs []string
	by := map[string]dmRow{}
	for _, r := range rows {
		by[r.Mode] = r
	}
	prim := by["primary"]
	for _, mode := range []string{"fast", "laked"} {
		if r := by[mode]; r.P999Us >= prim.P999Us/2 {
			probs = append(probs, fmt.Sprintf("%s: p99.9 %.0f µs is not clearly below the primary alone's %.0f µs (want < half)", mode, r.P999Us, prim.P999Us))
		}
	}
	if r := by["fast"]; r.AvgUs > prim.AvgUs*1.05 {
		probs = append(probs, fmt.Sprintf("fast: average %.0f µs is more than 5%% above the primary alone's %.0f µs", r.AvgUs, prim.AvgUs))
	}
	return probs
}

// dmTable formats rows as the markdown table of docs/EVALUATION.md.
func dmTable(rows []dmRow) string {
	var b strings.Builder
	b.WriteString("| mode | reads | avg µs | p99 µs | p99.9 µs | revokes | deadline misses | fallbacks | laked decisions | hedges |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		c := func(k string) string {
			if r.Status == nil {
				return "–"
			}
			return strconv.FormatInt(r.counter(k), 10)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s |\n", r.Mode, r.Reads, r.AvgUs, r.P99Us, r.P999Us,
			c("revokes"), c("deadline_miss"), c("fallbacks"), c("laked_ok"), c("hedges"))
	}
	return b.String()
}
