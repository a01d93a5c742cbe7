package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/linnos"
)

// buildLakectl builds lakectl into a temp directory (with -race when
// this test binary has it, so that the build shares the test's compiled
// packages) and returns its path.
func buildLakectl(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		t.Skipf("no go tool to build lakectl with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "lakectl")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command(gobin, append(args, "github.com/lakeos/lake/cmd/lakectl")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build lakectl: %v\n%s", err, out)
	}
	return bin
}

// fairnessReport is the part of lakectl bench --burst --json this test
// reads (cmd/lakectl's burstBenchReport).
type fairnessReport struct {
	Bursters int `json:"bursters"`
	Phases   []struct {
		Phase string `json:"phase"`
		Count int    `json:"count"`
		P50Ns int64  `json:"p50_ns"`
		P99Ns int64  `json:"p99_ns"`
		Busy  uint64 `json:"busy"`
	} `json:"phases"`
	Bursts []struct {
		State           string `json:"state"`
		Predicts        uint64 `json:"predicts"`
		Cycles          uint64 `json:"cycles"`
		MinClientCycles uint64 `json:"min_client_cycles"`
	} `json:"bursts"`
	Unloaded struct {
		P50Ns  int64 `json:"p50_ns"`
		P99Ns  int64 `json:"p99_ns"`
		P999Ns int64 `json:"p999_ns"`
	} `json:"unloaded"`
	Loaded struct {
		P50Ns  int64 `json:"p50_ns"`
		P99Ns  int64 `json:"p99_ns"`
		P999Ns int64 `json:"p999_ns"`
	} `json:"loaded"`
	P99Ratio            float64  `json:"p99_ratio"`
	LoadAvgStart        *float64 `json:"load_avg_start"`
	MeasuredBusy        uint64   `json:"measured_busy"`
	BurstBusy           uint64   `json:"burst_busy"`
	BurstFailed         uint64   `json:"burst_failed"`
	BurstPredictsPerSec float64  `json:"burst_predicts_per_sec"`
	BurstCycleP50Ns     int64    `json:"burst_cycle_p50_ns"`
	LoadedCallerSleeps  uint64   `json:"loaded_caller_sleeps"`
	OutputsChecked      uint64   `json:"outputs_checked"`
	WrongOutputs        uint64   `json:"wrong_outputs"`
}

// TestFairnessThroughLakectl is issue 13's fairness measurement as a
// user runs it: the laked binary serving a LinnOS model, lakectl bench
// --burst 31 measuring one client's predicts unloaded and while 31
// clients burst their 64-entry rings from another process (lakectl
// burst), all three separate processes. It asserts what does not depend
// on the machine's load: the measured client and the bursting clients
// are never answered busy, the bursting clients really ran (every one
// cycled its ring during the measurement, and together they ran at
// least as many predicts as the measured client; a higher bound would
// fail as laked gets fairer and the loaded phase shorter), every
// measured output equals laked's answer before the bursts, which is the
// CPU model's, and the bursting process is gone when bench returns. The p99 ratio is always
// logged; it is asserted (loaded p99 <= 5x unloaded) only with
// LAKE_FAIRNESS_P99=1, on a quiet machine. LAKE_FAIRNESS_COUNT and
// LAKE_FAIRNESS_ROUNDS change the measurement's size. LAKE_FAIRNESS_ISOLATE=1
// measures the isolated deployment of docs/RELIABILITY.md instead: laked
// on CPU 0, the bursting clients on CPU 0 at nice 19, the measured client
// on CPU 1, which it has to itself and busy-polls (bench --cpus,
// --burst-cpus, --burst-nice, --busy-poll); the bursting clients, below
// laked and the measured client, then need only all have cycled (they
// may run fewer predicts than the measured client).
func TestFairnessThroughLakectl(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	count, rounds := 5000, 1
	if raceBuild {
		count = 1000 // -race slows the loaded phase's predicts to ms
	}
	for _, e := range []struct {
		name string
		v    *int
	}{{"LAKE_FAIRNESS_COUNT", &count}, {"LAKE_FAIRNESS_ROUNDS", &rounds}} {
		if s := os.Getenv(e.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q", e.name, s)
			}
			*e.v = n
		}
	}
	const warmup = 200
	lakectl := buildLakectl(t)
	m := randomLinnOS(t)
	img, err := linnos.EncodeInt(m, linnos.ModelMeta{ThresholdUs: 500})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	weights := filepath.Join(dir, "linnos.bin")
	if err := os.WriteFile(weights, img, 0o600); err != nil {
		t.Fatal(err)
	}
	msock := filepath.Join(dir, "metrics.sock")
	lakedCmd, sock := startLaked(t, "--linnos-weights", weights, "--metrics-addr", "unix:"+msock)
	var placeArgs []string
	if os.Getenv("LAKE_FAIRNESS_ISOLATE") != "" {
		var cpus unix.CPUSet
		if err := unix.SchedGetaffinity(0, &cpus); err != nil || !cpus.IsSet(0) || !cpus.IsSet(1) {
			t.Fatalf("LAKE_FAIRNESS_ISOLATE needs CPUs 0 and 1 (%d CPUs allowed, %v)", cpus.Count(), err)
		}
		pinProcess(t, lakedCmd.Process.Pid, 0)
		placeArgs = []string{"--cpus", "1", "--burst-cpus", "0", "--burst-nice", "19", "--busy-poll"}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, lakectl, "--socket", sock, "--metrics", "unix:"+msock, "--timeout", "30s", "--json",
		"bench", "--model", "1", "--count", strconv.Itoa(count), "--warmup", strconv.Itoa(warmup),
		"--burst", "31", "--rounds", strconv.Itoa(rounds))
	cmd.Args = append(cmd.Args, placeArgs...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lakectl bench --burst 31: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var rep fairnessReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("lakectl bench --burst --json: %v\n%s", err, stdout.String())
	}
	t.Logf("measured client p50/p99/p99.9: unloaded %v/%v/%v, while 31 clients burst %v/%v/%v: loaded p99 / unloaded p99 = %.1fx (issue 13: <= 5x)",
		time.Duration(rep.Unloaded.P50Ns), time.Duration(rep.Unloaded.P99Ns), time.Duration(rep.Unloaded.P999Ns),
		time.Duration(rep.Loaded.P50Ns), time.Duration(rep.Loaded.P99Ns), time.Duration(rep.Loaded.P999Ns), rep.P99Ratio)
	load := "unknown"
	if rep.LoadAvgStart != nil {
		load = strconv.FormatFloat(*rep.LoadAvgStart, 'f', 2, 64)
	}
	t.Logf("bursting clients: %.0f predicts/s, median ring cycle %v; measured client slept in %d loaded calls; machine load average %s before",
		rep.BurstPredictsPerSec, time.Duration(rep.BurstCycleP50Ns), rep.LoadedCallerSleeps, load)

	if rep.Bursters != 31 || len(rep.Phases) != 2*rounds || len(rep.Bursts) != rounds {
		t.Fatalf("report: %d bursters, %d phases, %d bursts\n%s", rep.Bursters, len(rep.Phases), len(rep.Bursts), stdout.String())
	}
	if rep.MeasuredBusy != 0 || rep.BurstBusy != 0 || rep.BurstFailed != 0 {
		t.Fatalf("answered busy: measured client %d, bursting clients %d (other errors %d)", rep.MeasuredBusy, rep.BurstBusy, rep.BurstFailed)
	}
	for i, b := range rep.Bursts {
		if b.State != "done" || b.MinClientCycles == 0 || (placeArgs == nil && b.Predicts < uint64(count)) {
			t.Fatalf("round %d: the bursting clients ran %d rings (one client only %d), %d predicts during %d measured ones: they were not all bursting",
				i+1, b.Cycles, b.MinClientCycles, b.Predicts, count)
		}
	}
	if want := uint64(2 * rounds * (warmup + count)); rep.OutputsChecked != want || rep.WrongOutputs != 0 {
		t.Fatalf("measured outputs: %d checked (want %d), %d wrong", rep.OutputsChecked, want, rep.WrongOutputs)
	}
	// lakectl compared every measured answer with laked's answer to the
	// same input before the bursts: those answers are the CPU model's.
	// Its inputs (cmd/lakectl burstInput): 16 records, record k's
	// feature j = (k+j) mod 10.
	c := dial(t, sock)
	for k := 0; k < 16; k++ {
		feat := make([]int32, linnos.NumInputs)
		in := make([]byte, 4*linnos.NumInputs)
		for j := range feat {
			feat[j] = int32((k + j) % 10)
			binary.LittleEndian.PutUint32(in[4*j:], uint32(feat[j]))
		}
		out := make([]byte, 4)
		if _, err := c.Predict(ctx, modelLinnOS, 1, in, out); err != nil {
			t.Fatal(err)
		}
		want := make([]int32, 1)
		if err := m.PredictBatch(feat, want); err != nil {
			t.Fatal(err)
		}
		if got := int32(binary.LittleEndian.Uint32(out)); got != want[0] {
			t.Fatalf("input %d: laked %d, CPU model %d", k, got, want[0])
		}
	}
	if p := lakedtest.BurstProcs(t, sock); len(p) != 0 {
		t.Fatalf("bursting processes left after bench returned: %v", p)
	}
	if os.Getenv("LAKE_FAIRNESS_P99") != "" && rep.P99Ratio > 5 {
		t.Fatalf("measured client's p99 %v while 31 clients burst, %.1fx its unloaded p99 %v (issue 13: <= 5x)",
			time.Duration(rep.Loaded.P99Ns), rep.P99Ratio, time.Duration(rep.Unloaded.P99Ns))
	}
}

// pinProcess pins every thread of process pid to cpu (threads it starts
// later inherit the affinity of the thread that starts them).
func pinProcess(t *testing.T, pid, cpu int) {
	t.Helper()
	var one unix.CPUSet
	one.Set(cpu)
	for pass := 0; pass < 3; pass++ {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &one); err != nil && !errors.Is(err, unix.ESRCH) {
				t.Fatalf("pin laked's thread %d to CPU %d: %v", tid, cpu, err)
			}
		}
	}
}
