package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// burstChild is a lakectl burst process started by bench --burst: the
// bursting clients run in a process of their own, so that they do not
// share the measured client's Go scheduler (as separate applications
// would not).
type burstChild struct {
	cmd    *exec.Cmd
	lines  chan string   // its stdout, line by line; closed at EOF
	reaped chan struct{} // closed once cmd.Wait returned
}

// wait reaps the child (once).
func (ch *burstChild) wait() error {
	err := ch.cmd.Wait()
	close(ch.reaped)
	return err
}

// startBurstChild runs lakectl burst (this executable) on laked's socket
// and returns once every bursting client has cycled its ring. The child
// is killed if this process dies (Pdeathsig) or ctx ends; the caller
// stops it with stop (or kill on an error path), which reaps it.
func (c *cli) startBurstChild(ctx context.Context, o burstOpts) (*burstChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench --burst: find lakectl's executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "--socket", c.socket, "--timeout", c.timeout.String(), "--json",
		"burst", "--model", strconv.FormatInt(o.model, 10), "--clients", strconv.Itoa(o.clients), "--ring", strconv.Itoa(o.ring),
		"--cpus", o.place.CPUs, "--nice", strconv.Itoa(o.place.Nice))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = c.errw
	// The bursting clients are another application: Go's default
	// scheduler (one P per CPU), whatever GOMAXPROCS this process was
	// given to tune the measured client.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "GOMAXPROCS=") })
	cmd.WaitDelay = c.timeout
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Pdeathsig fires when the thread that started the child ends, not
	// the process: start it from a thread locked to a goroutine that
	// stays until the child is reaped (the Go runtime ends a thread only
	// when a goroutine locked to it exits).
	ch := &burstChild{cmd: cmd, lines: make(chan string, 4), reaped: make(chan struct{})}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			<-ch.reaped
		}
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("bench --burst: start %s burst: %w", exe, err)
	}
	go func() {
		defer close(ch.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t := time.NewTimer(c.timeout + time.Duration(o.clients)*time.Second/10)
	defer t.Stop()
	select {
	case l, ok := <-ch.lines:
		var rep burstReport
		if ok && json.Unmarshal([]byte(l), &rep) == nil && rep.State == "bursting" {
			return ch, nil
		}
		err := ch.kill()
		if ok {
			return nil, fmt.Errorf("bench --burst: the bursting process said %q", l)
		}
		return nil, fmt.Errorf("bench --burst: the bursting process ended before bursting: %v", err)
	case <-t.C:
		ch.kill()
		return nil, errors.New("bench --burst: the bursting clients did not all complete a ring within --timeout")
	}
}

// kill ends the child and reaps it.
func (ch *burstChild) kill() error {
	ch.cmd.Process.Kill()
	for range ch.lines {
	}
	return ch.wait()
}

// stop asks the child to stop (SIGTERM: its clients finish their ring)
// and returns its report; it reaps the child, killing it if it does not
// report within timeout.
func (ch *burstChild) stop(timeout time.Duration) (burstReport, error) {
	if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		ch.kill()
		return burstReport{}, fmt.Errorf("bench --burst: stop the bursting process: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var rep burstReport
	got := false
	for done := false; !done; {
		select {
		case l, ok := <-ch.lines:
			if !ok {
				done = true
				break
			}
			var r burstReport
			if json.Unmarshal([]byte(l), &r) == nil && r.State == "done" {
				rep, got = r, true
			}
		case <-t.C:
			ch.kill()
			return burstReport{}, errors.New("bench --burst: the bursting process did not stop within --timeout (killed)")
		}
	}
	if err := ch.wait(); err != nil {
		return burstReport{}, fmt.Errorf("bench --burst: the bursting process: %w", err)
	}
	if !got {
		return burstReport{}, errors.New("bench --burst: the bursting process ended without its report")
	}
	return rep, nil
}

// latencySummary is a phase's latency percentiles (medians over the
// rounds in burstBenchReport).
type latencySummary struct {
	P50Ns  int64 `json:"p50_ns"`
	P90Ns  int64 `json:"p90_ns"`
	P99Ns  int64 `json:"p99_ns"`
	P999Ns int64 `json:"p999_ns"`
}

// burstBenchReport is bench --burst's result.
type burstBenchReport struct {
	Model     uint32 `json:"model"`
	N         int    `json:"n"`
	Bursters  int    `json:"bursters"`
	BurstRing int    `json:"burst_ring"`
	Rounds    int    `json:"rounds"`
	// Phases are the measured client's phases, unloaded and loaded
	// alternating (their laked_cpu_ns_per_op is laked's CPU time per
	// predicted item, all clients'); Bursts the bursting process's
	// report of each loaded phase.
	Phases []benchResult `json:"phases"`
	Bursts []burstReport `json:"bursts"`
	// Unloaded and Loaded are the medians over the rounds of each
	// percentile; P99Ratio is Loaded.P99Ns / Unloaded.P99Ns, and
	// RoundP99Ratios each round's loaded p99 / its unloaded p99.
	Unloaded       latencySummary `json:"unloaded"`
	Loaded         latencySummary `json:"loaded"`
	P99Ratio       float64        `json:"p99_ratio"`
	RoundP99Ratios []float64      `json:"round_p99_ratios"`
	// LoadAvgStart and LoadAvgEnd are the machine's 1-minute load
	// average (/proc/loadavg) before the first phase and after the last
	// (which the bursting clients raise); nil where unreadable. Tail
	// latencies mean something only on a quiet machine.
	LoadAvgStart *float64 `json:"load_avg_start"`
	LoadAvgEnd   *float64 `json:"load_avg_end"`
	// MeasuredBusy: the measured client's predicts answered busy (all
	// phases); BurstBusy and BurstFailed: the bursting clients'.
	MeasuredBusy uint64 `json:"measured_busy"`
	BurstBusy    uint64 `json:"burst_busy"`
	BurstFailed  uint64 `json:"burst_failed"`
	// Medians over the loaded phases of the bursting clients' throughput
	// and ring cycle; their sleeps for completions, all phases.
	BurstPredictsPerSec float64 `json:"burst_predicts_per_sec"`
	BurstCycleP50Ns     int64   `json:"burst_cycle_p50_ns"`
	BurstSleeps         uint64  `json:"burst_sleeps"`
	// BurstMinClientCycles: the fewest rings one bursting client
	// completed in a loaded phase (0: one was starved).
	BurstMinClientCycles uint64 `json:"burst_min_client_cycles"`
	// The measured client's calls that slept for their completion,
	// unloaded and loaded phases.
	UnloadedCallerSleeps uint64 `json:"unloaded_caller_sleeps"`
	LoadedCallerSleeps   uint64 `json:"loaded_caller_sleeps"`
	// OutputsChecked: the measured predicts (all phases, warmups
	// included) whose outputs were compared with the answer laked gave
	// the same input before any burst; WrongOutputs: those that differed.
	OutputsChecked uint64 `json:"outputs_checked"`
	WrongOutputs   uint64 `json:"wrong_outputs"`
	// Placement is where the measured client's threads ran at the end,
	// read back from the kernel (with --cpus or --nice only); each
	// Bursts entry has the bursting process's.
	Placement *placement `json:"placement,omitempty"`
}

// burstInputs is the size of the measured client's input pool.
const burstInputs = 16

// burstInput is input k of bench --burst's measured client (n records of
// size bytes): little-endian 32-bit words, word j holding (k+j) mod 10
// (valid LinnOS features; small integers for any model), the bytes past
// the last whole word zero.
func burstInput(k, size int) []byte {
	in := make([]byte, size)
	for j := 0; 4*j+4 <= size; j++ {
		v := uint32((k + j) % 10)
		in[4*j], in[4*j+1], in[4*j+2], in[4*j+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return in
}

// benchBurst is bench --burst: the measured client's closed loop of
// predicts (cl, --count, --concurrency, --warmup) unloaded, then while
// o.burst clients burst their rings from another process (lakectl
// burst), --rounds times. The measured client cycles through a pool of
// inputs and checks every answer against the one laked gave the same
// input before the bursts.
func (c *cli) benchBurst(ctx context.Context, o benchOpts, cl *lakelib.Client, id uint32, info lakelib.ModelInfo) error {
	bo := burstOpts{model: o.model, clients: o.burst, ring: o.burstRing, place: o.burstPlace}
	pool := make([][]byte, burstInputs)
	refs := make([][]byte, burstInputs)
	for k := range pool {
		pool[k] = burstInput(k, info.InputBytes*o.n)
		refs[k] = make([]byte, info.OutputBytes*o.n)
		pctx, cancel := context.WithTimeout(ctx, c.timeout)
		_, err := cl.Predict(pctx, id, o.n, pool[k], refs[k])
		cancel()
		if err != nil {
			return fmt.Errorf("bench --burst: reference predict (model %d, n=%d): %w", id, o.n, err)
		}
	}
	var pick, busy, checked, wrong atomic.Uint64
	pred := func(ctx context.Context, b *opBufs) error {
		k := int(pick.Add(1) % burstInputs)
		_, err := cl.Predict(ctx, id, o.n, pool[k], b.out)
		if errors.Is(err, errBusy) {
			busy.Add(1)
			return nil
		}
		if err != nil {
			return err
		}
		checked.Add(1)
		if !bytes.Equal(b.out, refs[k]) {
			wrong.Add(1)
		}
		return nil
	}
	newBufs := func() *opBufs { return &opBufs{out: make([]byte, info.OutputBytes*o.n)} }
	pid := cl.DaemonPID()
	rep := burstBenchReport{Model: id, N: o.n, Bursters: o.burst, BurstRing: o.burstRing, Rounds: o.rounds,
		Phases: []benchResult{}, Bursts: []burstReport{}, LoadAvgStart: loadAvg()}
	phase := func(name string, round int) (benchResult, error) {
		b0 := busy.Load()
		pa := c.probe(ctx, pid)
		r, err := c.runBench(ctx, o, pred, newBufs, cl.Sleeps)
		if err != nil {
			return r, fmt.Errorf("bench --burst: %s predict (model %d, n=%d): %w", name, id, o.n, err)
		}
		pb := c.probe(ctx, pid)
		// laked's CPU per predicted item, all clients' (the bursting
		// ones' too): the items from laked's metrics, and without them
		// only the unloaded phase's own.
		items := (o.warmup + o.count) * o.n
		if pa.snap != nil && pb.snap != nil {
			items = int(pb.snap.BatchSize.Sum - pa.snap.BatchSize.Sum)
		} else if name == "loaded" {
			items = 0
		}
		r.lakedSide = delta(pa, pb, items)
		r.Op, r.Model, r.BatchN, r.Phase, r.Round = "predict", &id, o.n, name, round
		r.ItemsPerSec = r.OpsPerSec * float64(o.n)
		r.Busy = busy.Load() - b0
		return r, nil
	}
	for round := 1; round <= o.rounds; round++ {
		r, err := phase("unloaded", round)
		if err != nil {
			return err
		}
		rep.Phases = append(rep.Phases, r)
		ch, err := c.startBurstChild(ctx, bo)
		if err != nil {
			return err
		}
		r, err = phase("loaded", round)
		if err != nil {
			ch.kill()
			return err
		}
		br, err := ch.stop(c.timeout)
		if err != nil {
			return err
		}
		rep.Phases = append(rep.Phases, r)
		rep.Bursts = append(rep.Bursts, br)
	}
	rep.LoadAvgEnd = loadAvg()
	if o.place.set() {
		got, err := currentPlacement()
		if err != nil {
			return fmt.Errorf("bench --burst: read back the placement: %w", err)
		}
		rep.Placement = &got
	}
	rep.summarize()
	rep.OutputsChecked, rep.WrongOutputs = checked.Load(), wrong.Load()
	if c.json {
		return c.emitJSON(rep)
	}
	return c.printBurst(rep)
}

// placementLine says where the measured client and the bursting clients
// ran, as read back from the kernel, when either was placed ("" if
// neither was).
func (rep *burstBenchReport) placementLine() string {
	var parts []string
	if p := rep.Placement; p != nil {
		parts = append(parts, fmt.Sprintf("measured client on CPUs %s at nice %d", p.CPUs, p.Nice))
	}
	if len(rep.Bursts) > 0 && rep.Bursts[0].Placement != nil {
		p := rep.Bursts[0].Placement
		parts = append(parts, fmt.Sprintf("bursting clients on CPUs %s at nice %d", p.CPUs, p.Nice))
	}
	if len(parts) == 0 {
		return ""
	}
	return "placement: " + strings.Join(parts, "; ")
}

// summarize fills the report's medians and totals from its phases.
func (rep *burstBenchReport) summarize() {
	sum := func(phase string) latencySummary {
		m := func(f func(benchResult) int64) int64 {
			var v []int64
			for _, r := range rep.Phases {
				if r.Phase == phase {
					v = append(v, f(r))
				}
			}
			return median(v)
		}
		return latencySummary{
			P50Ns: m(func(r benchResult) int64 { return r.P50Ns }), P90Ns: m(func(r benchResult) int64 { return r.P90Ns }),
			P99Ns: m(func(r benchResult) int64 { return r.P99Ns }), P999Ns: m(func(r benchResult) int64 { return r.P999Ns }),
		}
	}
	rep.Unloaded, rep.Loaded = sum("unloaded"), sum("loaded")
	if rep.Unloaded.P99Ns > 0 {
		rep.P99Ratio = float64(rep.Loaded.P99Ns) / float64(rep.Unloaded.P99Ns)
	}
	rep.RoundP99Ratios = []float64{}
	var unloaded int64
	for _, r := range rep.Phases {
		switch {
		case r.Phase == "unloaded":
			unloaded = r.P99Ns
		case unloaded > 0:
			rep.RoundP99Ratios = append(rep.RoundP99Ratios, float64(r.P99Ns)/float64(unloaded))
		}
	}
	for _, r := range rep.Phases {
		rep.MeasuredBusy += r.Busy
		if r.Phase == "loaded" {
			rep.LoadedCallerSleeps += r.CallerSleeps
		} else {
			rep.UnloadedCallerSleeps += r.CallerSleeps
		}
	}
	var rates, cycles []int64
	for i, b := range rep.Bursts {
		if i == 0 || b.MinClientCycles < rep.BurstMinClientCycles {
			rep.BurstMinClientCycles = b.MinClientCycles
		}
		rep.BurstBusy += b.Busy
		rep.BurstFailed += b.Failed
		rep.BurstSleeps += b.Sleeps
		rates = append(rates, int64(b.PredictsPerSec))
		cycles = append(cycles, b.CycleP50Ns)
	}
	rep.BurstPredictsPerSec = float64(median(rates))
	rep.BurstCycleP50Ns = median(cycles)
}

// median is the lower median of v (0 for none); v is sorted in place.
func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func (c *cli) printBurst(rep burstBenchReport) error {
	tw := c.table()
	fmt.Fprintln(tw, "ROUND\tPHASE\tCOUNT\tP50\tP90\tP99\tP99.9\tMAX\tBUSY\tSLEPT\tMEAN BATCH\tLAKED CPU/ITEM\tBURST/S\tRING CYCLE\tBURST BUSY")
	b := 0
	for _, r := range rep.Phases {
		burst, cycle, bbusy := "-", "-", "-"
		if r.Phase == "loaded" && b < len(rep.Bursts) {
			br := rep.Bursts[b]
			burst, cycle, bbusy = fmt.Sprintf("%.0f", br.PredictsPerSec), fmtNs(br.CycleP50Ns), fmt.Sprint(br.Busy+br.Failed)
			b++
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", max(r.Round, 1), r.Phase, r.Count,
			fmtNs(r.P50Ns), fmtNs(r.P90Ns), fmtNs(r.P99Ns), fmtNs(r.P999Ns), fmtNs(r.MaxNs), r.Busy, r.CallerSleeps,
			fmtOpt(r.MeanBatch, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
			fmtOpt(r.LakedCPUNsPerOp, func(v float64) string { return fmtNs(int64(v)) }), burst, cycle, bbusy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	u, l := rep.Unloaded, rep.Loaded
	fmt.Fprintf(c.out, "median of %d rounds: unloaded p50 %s p90 %s p99 %s p99.9 %s; while %d clients burst rings of %d: p50 %s p90 %s p99 %s p99.9 %s\n",
		rep.Rounds, fmtNs(u.P50Ns), fmtNs(u.P90Ns), fmtNs(u.P99Ns), fmtNs(u.P999Ns), rep.Bursters, rep.BurstRing,
		fmtNs(l.P50Ns), fmtNs(l.P90Ns), fmtNs(l.P99Ns), fmtNs(l.P999Ns))
	var rounds []string
	for _, x := range rep.RoundP99Ratios {
		rounds = append(rounds, fmt.Sprintf("%.1fx", x))
	}
	fmt.Fprintf(c.out, "loaded p99 / unloaded p99 = %.1fx (issue 13 asks <= 5x); each round: %s\n", rep.P99Ratio, strings.Join(rounds, ", "))
	if p := rep.placementLine(); p != "" {
		fmt.Fprintln(c.out, p)
	}
	fmt.Fprintf(c.out, "machine load average: %s before, %s after (tails mean something only on a quiet machine)\n",
		fmtOpt(rep.LoadAvgStart, func(v float64) string { return fmt.Sprintf("%.2f", v) }),
		fmtOpt(rep.LoadAvgEnd, func(v float64) string { return fmt.Sprintf("%.2f", v) }))
	fmt.Fprintf(c.out, "busy answers: measured client %d, bursting clients %d (other errors %d); measured outputs checked %d, wrong %d\n",
		rep.MeasuredBusy, rep.BurstBusy, rep.BurstFailed, rep.OutputsChecked, rep.WrongOutputs)
	fmt.Fprintf(c.out, "bursting clients: %.0f predicts/s, median ring cycle %s, fewest rings of one client %d, slept for completions %d times; measured client slept in %d unloaded and %d loaded calls\n",
		rep.BurstPredictsPerSec, fmtNs(rep.BurstCycleP50Ns), rep.BurstMinClientCycles, rep.BurstSleeps, rep.UnloadedCallerSleeps, rep.LoadedCallerSleeps)
	return nil
}

var errBusy = lakelib.ErrStatus(shm.StatusBusy)

// loadAvg is the machine's 1-minute load average, or nil.
func loadAvg() *float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return nil
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
