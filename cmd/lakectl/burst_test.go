package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
)

// TestMain lets the test binary act as lakectl when
// LAKECTL_TEST_AS_LAKECTL=1: bench --burst re-executes its own binary
// (os.Executable) as lakectl burst, which in a test is this binary.
func TestMain(m *testing.M) {
	if os.Getenv("LAKECTL_TEST_AS_LAKECTL") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestBenchBurst: bench --burst measures the client unloaded and while
// bursting clients run in a child process (this binary as lakectl
// burst), --rounds times alternating; the bursters really ran (predicts,
// ring cycles), nobody was answered busy, every measured output matched
// the reference, and the child is gone afterwards.
func TestBenchBurst(t *testing.T) {
	f := newFixture(t)
	t.Setenv("LAKECTL_TEST_AS_LAKECTL", "1")
	var rep burstBenchReport
	f.okJSON(t, &rep, "bench", "--model", "2", "--count", "300", "--warmup", "10", "--burst", "3", "--burst-ring", "8", "--rounds", "2")
	if rep.Model != 2 || rep.Bursters != 3 || rep.BurstRing != 8 || rep.Rounds != 2 || len(rep.Phases) != 4 || len(rep.Bursts) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for i, r := range rep.Phases {
		want := []string{"unloaded", "loaded"}[i%2]
		if r.Phase != want || r.Round != i/2+1 || r.Op != "predict" || r.Count != 300 || r.P50Ns <= 0 ||
			r.P50Ns > r.P90Ns || r.P90Ns > r.P99Ns || r.P99Ns > r.P999Ns || r.P999Ns > r.MaxNs {
			t.Fatalf("phase %d: %+v", i, r)
		}
	}
	for i, b := range rep.Bursts {
		if b.State != "done" || b.Clients != 3 || b.Ring != 8 || b.Predicts == 0 || b.Cycles == 0 || b.MinClientCycles == 0 || b.CycleP50Ns <= 0 ||
			b.PredictsPerSec <= 0 || b.ElapsedNs <= 0 {
			t.Fatalf("burst %d: %+v", i, b)
		}
	}
	if rep.BurstMinClientCycles != min(rep.Bursts[0].MinClientCycles, rep.Bursts[1].MinClientCycles) {
		t.Fatalf("fewest rings of one client %d, rounds %+v", rep.BurstMinClientCycles, rep.Bursts)
	}
	if rep.MeasuredBusy != 0 || rep.BurstBusy != 0 || rep.BurstFailed != 0 {
		t.Fatalf("busy: measured %d, bursters %d, failed %d", rep.MeasuredBusy, rep.BurstBusy, rep.BurstFailed)
	}
	if rep.OutputsChecked != 4*310 || rep.WrongOutputs != 0 {
		t.Fatalf("outputs checked %d (want %d), wrong %d", rep.OutputsChecked, 4*310, rep.WrongOutputs)
	}
	if rep.Unloaded.P99Ns <= 0 || rep.Loaded.P99Ns <= 0 || rep.P99Ratio != float64(rep.Loaded.P99Ns)/float64(rep.Unloaded.P99Ns) {
		t.Fatalf("summary %+v %+v ratio %v", rep.Unloaded, rep.Loaded, rep.P99Ratio)
	}
	if len(rep.RoundP99Ratios) != 2 || rep.RoundP99Ratios[1] != float64(rep.Phases[3].P99Ns)/float64(rep.Phases[2].P99Ns) {
		t.Fatalf("round ratios %v, phases %+v", rep.RoundP99Ratios, rep.Phases)
	}
	if rep.LoadAvgStart == nil || rep.LoadAvgEnd == nil || *rep.LoadAvgStart < 0 {
		t.Fatalf("load average %v %v", rep.LoadAvgStart, rep.LoadAvgEnd)
	}
	// The server ran every bursting predict the children counted (and
	// the measured ones).
	var burst uint64
	for _, b := range rep.Bursts {
		burst += b.Predicts
	}
	if st := f.srv.Stats(); st.BatchItems < burst+uint64(rep.OutputsChecked) {
		t.Fatalf("laked ran %d items; bursters counted %d, measured %d", st.BatchItems, burst, rep.OutputsChecked)
	}
	if p := lakedtest.BurstProcs(t, f.sock); len(p) != 0 {
		t.Fatalf("bursting processes left: %v", p)
	}

	out := f.ok(t, "bench", "--model", "2", "--count", "100", "--warmup", "0", "--burst", "2", "--burst-ring", "8")
	hasLine(t, out, `^ROUND\s+PHASE\s+COUNT\s+P50\s+P90\s+P99\s+P99.9\s+MAX\s+BUSY\s+SLEPT\s+MEAN BATCH\s+LAKED CPU/ITEM\s+BURST/S\s+RING CYCLE\s+BURST BUSY$`)
	hasLine(t, out, `^1\s+unloaded\s+100\s+(\S+\s+){5}0\s+\d+\s+\S+\s+\S+\s+-\s+-\s+-$`)
	hasLine(t, out, `^1\s+loaded\s+100\s+(\S+\s+){5}0\s+\d+\s+\S+\s+\S+\s+\d+\s+\S+\s+0$`)
	hasLine(t, out, `^median of 1 rounds: unloaded p50 \S+ p90 \S+ p99 \S+ p99.9 \S+; while 2 clients burst rings of 8: p50 \S+ p90 \S+ p99 \S+ p99.9 \S+$`)
	hasLine(t, out, `^loaded p99 / unloaded p99 = \d+\.\dx \(issue 13 asks <= 5x\); each round: \d+\.\dx$`)
	hasLine(t, out, `^machine load average: \d+\.\d\d before, \d+\.\d\d after \(tails mean something only on a quiet machine\)$`)
	hasLine(t, out, `^busy answers: measured client 0, bursting clients 0 \(other errors 0\); measured outputs checked 200, wrong 0$`)
	hasLine(t, out, `^bursting clients: \d+ predicts/s, median ring cycle \S+, fewest rings of one client [1-9]\d*, slept for completions \d+ times; measured client slept in \d+ unloaded and \d+ loaded calls$`)

	for _, bad := range [][]string{
		{"bench", "--burst", "2"},                                       // no model
		{"bench", "--model", "2", "--burst", "-1"},                      // negative
		{"bench", "--model", "2", "--burst", "300"},                     // over max_clients
		{"bench", "--model", "2", "--burst", "2", "--burst-ring", "12"}, // not a power of two
		{"bench", "--model", "2", "--burst", "2", "--burst-ring", "4"},  // below the ring minimum
		{"bench", "--model", "2", "--burst", "2", "--open-loop"},
	} {
		if code, _, errs := f.ctl(t, bad...); code != 2 {
			t.Errorf("lakectl %v: %d %s", bad, code, errs)
		}
	}
	// A model that is not there: the error names it, and no child is
	// left.
	if code, _, errs := f.ctl(t, "bench", "--model", "9", "--burst", "2", "--count", "10"); code != 1 || !strings.Contains(errs, "model 9") {
		t.Fatalf("bench --burst on a missing model: %d %s", code, errs)
	}
	if p := lakedtest.BurstProcs(t, f.sock); len(p) != 0 {
		t.Fatalf("bursting processes left: %v", p)
	}
}

// TestBurstCommand: lakectl burst says "bursting" once every client has
// cycled its ring, stops at --duration and reports what its clients did.
func TestBurstCommand(t *testing.T) {
	f := newFixture(t)
	_, out, errs := f.ctl(t, "burst", "--model", "2", "--clients", "2", "--ring", "8", "--duration", "300ms", "--json")
	var reps []burstReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	for dec.More() {
		var r burstReport
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%v\n%s%s", err, out, errs)
		}
		reps = append(reps, r)
	}
	if len(reps) != 2 || reps[0].State != "bursting" || reps[1].State != "done" {
		t.Fatalf("reports %+v\n%s", reps, errs)
	}
	r := reps[1]
	if r.Clients != 2 || r.Ring != 8 || r.Model != 2 || r.Predicts == 0 || r.Cycles < 2 || r.MinClientCycles == 0 || r.Busy != 0 || r.Failed != 0 ||
		r.ElapsedNs < (250*time.Millisecond).Nanoseconds() || r.PredictsPerSec <= 0 {
		t.Fatalf("report %+v", r)
	}
	out = f.ok(t, "burst", "--model", "2", "--clients", "1", "--ring", "8", "--duration", "100ms")
	hasLine(t, out, `^bursting: 1 clients, each resubmitting its ring of 8 predicts \(model 2\) as soon as it completed$`)
	hasLine(t, out, `^burst: \d+ predicts in \S+ \(\d+/s\), \d+ rings \(fewest of one client [1-9]\d*\), median ring cycle \S+, busy 0, failed 0, slept for completions \d+ times$`)
	// --pause: each client sleeps after every ring, so a 20 ms pause
	// allows at most ~15 rings per client in 300 ms (thousands without).
	_, out, errs = f.ctl(t, "burst", "--model", "2", "--clients", "2", "--ring", "8", "--duration", "300ms", "--pause", "20ms", "--json")
	dec = json.NewDecoder(strings.NewReader(out))
	var paused burstReport
	for dec.More() {
		if err := dec.Decode(&paused); err != nil {
			t.Fatalf("%v\n%s%s", err, out, errs)
		}
	}
	if paused.State != "done" || paused.Cycles == 0 || paused.Cycles > 2*20 || paused.Busy != 0 || paused.Failed != 0 {
		t.Fatalf("--pause 20ms: report %+v (at most ~15 rings per client in 300 ms)", paused)
	}
	for _, bad := range [][]string{{"burst", "--clients", "0"}, {"burst", "--ring", "7"}, {"burst", "--model", "-1"}, {"burst", "--duration", "-1s"}, {"burst", "--pause", "-1ms"}, {"burst", "--pause", "2s"}} {
		if code, _, errs := f.ctl(t, bad...); code != 2 {
			t.Errorf("lakectl %v: %d %s", bad, code, errs)
		}
	}
	if code, _, errs := f.ctl(t, "burst", "--model", "9", "--duration", "10ms"); code != 1 || !strings.Contains(errs, "model 9") {
		t.Errorf("burst on a missing model: %d %s", code, errs)
	}
}

// TestBurstChildEndsWithBench: when bench --burst is killed (SIGKILL,
// no chance to clean up) while its bursting child runs, the child dies
// too (Pdeathsig); when it is interrupted (SIGTERM), it kills and reaps
// the child and exits with an error.
func TestBurstChildEndsWithBench(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newFixture(t)
			// Each phase must outlast the 300 ms below: ~1 s on a quiet
			// machine (2-3 µs a predict), and several with -race.
			count := 500000
			if raceBuild {
				count = 50000
			}
			cmd := exec.Command(os.Args[0], "--socket", f.sock, "--metrics", f.metrics, "bench", "--model", "2",
				"--count", strconv.Itoa(count), "--warmup", "0", "--burst", "2", "--burst-ring", "8")
			cmd.Env = append(os.Environ(), "LAKECTL_TEST_AS_LAKECTL=1", "GOMAXPROCS=1")
			cmd.Stdout = io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() { cmd.Process.Kill(); <-exited }()
			// The child runs during the loaded phase: signal the parent
			// once the child has been bursting a while (past its
			// "bursting" line: a child that dies writing to the dead
			// parent's pipe would hide a missing Pdeathsig).
			for deadline := time.Now().Add(60 * time.Second); len(lakedtest.BurstProcs(t, f.sock)) == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no bursting child within 60 s")
				}
			}
			time.Sleep(300 * time.Millisecond)
			child := lakedtest.BurstProcs(t, f.sock)
			if len(child) == 0 {
				t.Fatalf("the bursting child ended within 300 ms of the %d-predict loaded phase", count)
			}
			// The bursting process runs with Go's default scheduler,
			// not the GOMAXPROCS that tunes the measured client.
			env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child[0]), "environ"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(env), "LAKECTL_TEST_AS_LAKECTL=1") || strings.Contains(string(env), "GOMAXPROCS=") {
				t.Fatalf("bursting child's environment %q", env)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err
				if err == nil {
					t.Fatalf("bench --burst exited 0 after %v", sig)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("bench --burst still running 30 s after %v", sig)
			}
			wait := 10 * time.Second
			if sig == syscall.SIGTERM {
				wait = 0 // bench reaped it before exiting
			}
			for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
				p := lakedtest.BurstProcs(t, f.sock)
				if len(p) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("bursting child %v outlived bench --burst (%v) by %v", p, sig, wait)
				}
			}
		})
	}
}
