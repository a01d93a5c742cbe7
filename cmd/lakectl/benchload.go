package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/laked/metrics"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// lakedSide is what laked did during one bench phase, from its metrics
// and its CPU time (/proc/PID/stat); fields are nil when unavailable
// (metrics endpoint unreachable, laked in another pid namespace).
type lakedSide struct {
	MeanBatch       *float64 `json:"mean_batch,omitempty"`          // items per model call
	InferenceNs     *float64 `json:"inference_ns,omitempty"`        // mean model run time per batch
	LakedCPUNsPerOp *float64 `json:"laked_cpu_ns_per_op,omitempty"` // laked's CPU time (all threads) per request
}

// probe is a point-in-time reading of laked's counters.
type probe struct {
	snap  *metrics.Snapshot
	cpu   time.Duration
	cpuOK bool
	taken time.Time
}

func (c *cli) probe(ctx context.Context, pid int) probe {
	p := probe{taken: time.Now()}
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if s, err := metrics.Scrape(sctx, nil, c.metrics); err == nil {
		p.snap = s
	}
	if pid > 0 {
		p.cpu, p.cpuOK = processCPU(pid)
	}
	return p
}

// delta is laked's side of the phase from a to b in which ops requests ran.
func delta(a, b probe, ops int) lakedSide {
	var out lakedSide
	f := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	if a.snap != nil && b.snap != nil {
		if n := b.snap.BatchSize.Count - a.snap.BatchSize.Count; n > 0 {
			out.MeanBatch = f((b.snap.BatchSize.Sum - a.snap.BatchSize.Sum) / float64(n))
		}
		if n := b.snap.ServiceTime.Count - a.snap.ServiceTime.Count; n > 0 {
			out.InferenceNs = f((b.snap.ServiceTime.Sum - a.snap.ServiceTime.Sum) * 1e9 / float64(n))
		}
	}
	if a.cpuOK && b.cpuOK && ops > 0 {
		out.LakedCPUNsPerOp = f(float64(b.cpu-a.cpu) / float64(ops))
	}
	return out
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture lake runs on).
const clockTick = 10 * time.Millisecond

// processCPU is a process's user+system CPU time, all threads.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(0) ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime(11) stime(12).
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * clockTick, true
}

// openResult is one open-loop load level.
type openResult struct {
	Load        float64 `json:"load"`         // fraction of the measured capacity offered
	OfferedRate float64 `json:"offered_rate"` // requests/s offered (Poisson, all clients)
	Rate        float64 `json:"rate"`         // requests/s completed
	Count       int     `json:"count"`
	P50Ns       int64   `json:"p50_ns"` // from the scheduled arrival to the answer
	P99Ns       int64   `json:"p99_ns"`
	// LagP50Ns and LagP99Ns: how late the generator submitted requests
	// against their schedule (part of the latency above).
	LagP50Ns int64 `json:"lag_p50_ns"`
	LagP99Ns int64 `json:"lag_p99_ns"`
	lakedSide
}

// openLoopReport is bench --open-loop's result.
type openLoopReport struct {
	Clients int `json:"clients"`
	// OneAtATimeRate is one closed-loop client's request rate (batch 1).
	OneAtATimeRate float64 `json:"one_at_a_time_rate"`
	// Capacity is the saturated rate (each client keeps Depth requests
	// in flight, submitted together), with laked's mean batch then.
	Capacity          float64      `json:"capacity"`
	Depth             int          `json:"depth"`
	CapacityMeanBatch *float64     `json:"capacity_mean_batch,omitempty"`
	Levels            []openResult `json:"levels"`
}

func parseLoads(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || v > 1.5 {
			return nil, usageErr("bench: --loads %q: want fractions of capacity in (0, 1.5]", s)
		}
		out = append(out, v)
	}
	return out, nil
}

// openLoop measures capacity with clients closed-loop clients each
// submitting depth predicts at a time (lakelib Batch: one doorbell, bulk
// reap), then offers each load level as Poisson arrivals split evenly
// over the clients for dur, and reports latency from each request's
// scheduled arrival (so that a slow answer delays no later arrival: no
// coordinated omission).
//
// The load generator is one goroutine per client, with every arrival
// time computed before the level starts: it submits all arrivals due
// (up to depth) as one Batch, sleeps until the next is due, and records
// each request's latency from its scheduled time when its Batch returns.
// Eight goroutines instead of a generator and 64 callers per client
// (which starved on two cores and charged their own lateness to laked);
// how late submissions were against their schedule is reported beside
// the latency (LAG), so what the generator adds can be read off.
func (c *cli) openLoop(ctx context.Context, o benchOpts, clients []*lakelib.Client, model uint32, inB, outB int, oneRate float64, loads []float64, dur time.Duration) (openLoopReport, error) {
	const depth = 32
	pid := clients[0].DaemonPID()
	rep := openLoopReport{Clients: len(clients), OneAtATimeRate: oneRate, Depth: depth}
	gens := make([]*loadGen, len(clients))
	for k, cl := range clients {
		g, err := newLoadGen(cl, model, o.n, inB, outB, depth)
		if err != nil {
			return rep, err
		}
		defer g.free()
		gens[k] = g
	}
	var progress atomic.Int64
	rctx, stopWatch := c.watchdog(ctx, &progress)
	defer stopWatch()

	// Capacity: every client keeps depth requests in flight, as batches.
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(gens))
	a := c.probe(ctx, pid)
	end := time.Now().Add(dur)
	for k, g := range gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				n, err := g.batch(rctx, depth)
				if err != nil {
					errs[k] = err
					return
				}
				done.Add(int64(n))
				progress.Add(1)
			}
		}()
	}
	wg.Wait()
	b := c.probe(ctx, pid)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("capacity: %w", err)
	}
	rep.Capacity = float64(done.Load()) / b.taken.Sub(a.taken).Seconds()
	rep.CapacityMeanBatch = delta(a, b, int(done.Load())).MeanBatch

	for _, load := range loads {
		r, err := c.openLevel(rctx, gens, &progress, pid, load, load*rep.Capacity, dur)
		if err != nil {
			return rep, fmt.Errorf("load %.0f%%: %w", 100*load, err)
		}
		rep.Levels = append(rep.Levels, r)
	}
	return rep, nil
}

// loadGen is one client's request generator: depth predict submissions
// on arena buffers of the client's own, reused for every batch.
type loadGen struct {
	cl      *lakelib.Client
	bufs    []*lakelib.HostBuf
	es      []shm.SQE
	cs      []shm.CQE
	proto   []shm.SQE // the depth submissions, tags cleared before each use
	sleeper *time.Timer
}

func newLoadGen(cl *lakelib.Client, model uint32, n, inB, outB, depth int) (*loadGen, error) {
	g := &loadGen{cl: cl, es: make([]shm.SQE, depth), cs: make([]shm.CQE, depth), proto: make([]shm.SQE, depth)}
	for i := 0; i < depth; i++ {
		in, err := cl.AllocHost(inB)
		if err != nil {
			g.free()
			return nil, fmt.Errorf("open loop: arena: %w", err)
		}
		out, err := cl.AllocHost(outB)
		if err != nil {
			in.Free()
			g.free()
			return nil, fmt.Errorf("open loop: arena: %w", err)
		}
		g.bufs = append(g.bufs, in, out)
		g.proto[i] = shm.SQE{Opcode: shm.OpPredict, Args: [shm.NumArgs]uint64{uint64(model), uint64(n), in.Offset(), uint64(inB), out.Offset(), uint64(outB)}}
	}
	return g, nil
}

func (g *loadGen) free() {
	for _, b := range g.bufs {
		_ = b.Free()
	}
	g.bufs = nil
}

// batch submits k predicts as one Batch and waits for them; it returns
// how many completed OK.
func (g *loadGen) batch(ctx context.Context, k int) (int, error) {
	copy(g.es[:k], g.proto[:k])
	if err := g.cl.Batch(ctx, g.es[:k], g.cs[:k]); err != nil {
		return 0, err
	}
	for _, c := range g.cs[:k] {
		if c.Status != shm.StatusOK {
			return 0, fmt.Errorf("predict: %v", c.Status)
		}
	}
	return k, nil
}

// sleepUntil waits until t (a timer sleep; the overshoot shows as lag).
func (g *loadGen) sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	if g.sleeper == nil {
		g.sleeper = time.NewTimer(d)
	} else {
		g.sleeper.Reset(d)
	}
	select {
	case <-g.sleeper.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// poissonSchedule is the arrival times of a Poisson stream at rate per
// second from start for dur (at most max arrivals).
func poissonSchedule(rng *rand.Rand, start time.Time, rate float64, dur time.Duration, max int) []time.Time {
	var at []time.Time
	for t := start; len(at) < max; {
		t = t.Add(time.Duration(rng.ExpFloat64() / rate * 1e9))
		if t.Sub(start) > dur {
			break
		}
		at = append(at, t)
	}
	return at
}

// maxArrivals bounds one client's schedule at one load level.
const maxArrivals = 4 << 20

// openLevel offers rate requests/s for dur, split evenly over the
// clients' generators (each a Poisson stream at rate/clients).
func (c *cli) openLevel(ctx context.Context, gens []*loadGen, progress *atomic.Int64, pid int, load, rate float64, dur time.Duration) (openResult, error) {
	start := time.Now().Add(10 * time.Millisecond) // schedules are built before the first arrival
	scheds := make([][]time.Time, len(gens))
	for k := range gens {
		rng := rand.New(rand.NewPCG(uint64(k+1), 0x9e3779b97f4a7c15))
		scheds[k] = poissonSchedule(rng, start, rate/float64(len(gens)), dur, maxArrivals)
	}
	lats := make([][]int64, len(gens))
	lags := make([][]int64, len(gens))
	errs := make([]error, len(gens))
	a := c.probe(ctx, pid)
	var wg sync.WaitGroup
	for k, g := range gens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sched := scheds[k]
			lat, lag := make([]int64, 0, len(sched)), make([]int64, 0, len(sched))
			for i := 0; i < len(sched); {
				if err := g.sleepUntil(ctx, sched[i]); err != nil {
					errs[k] = err
					return
				}
				now := time.Now()
				j := i
				for j < len(sched) && j-i < len(g.es) && !sched[j].After(now) {
					j++
				}
				for _, at := range sched[i:j] {
					lag = append(lag, now.Sub(at).Nanoseconds())
				}
				if _, err := g.batch(ctx, j-i); err != nil {
					errs[k] = err
					return
				}
				fin := time.Now()
				for _, at := range sched[i:j] {
					lat = append(lat, fin.Sub(at).Nanoseconds())
				}
				progress.Add(1)
				i = j
			}
			lats[k], lags[k] = lat, lag
		}()
	}
	wg.Wait()
	b := c.probe(ctx, pid)
	if err := errors.Join(errs...); err != nil {
		return openResult{}, err
	}
	lat, lag := slices.Concat(lats...), slices.Concat(lags...)
	if len(lat) == 0 {
		return openResult{}, errors.New("no request completed")
	}
	slices.Sort(lat)
	slices.Sort(lag)
	pct := func(v []int64, p float64) int64 { return v[min(max(int(math.Ceil(p*float64(len(v))))-1, 0), len(v)-1)] }
	return openResult{
		Load: load, OfferedRate: rate, Rate: float64(len(lat)) / b.taken.Sub(start).Seconds(), Count: len(lat),
		P50Ns: pct(lat, 0.5), P99Ns: pct(lat, 0.99), LagP50Ns: pct(lag, 0.5), LagP99Ns: pct(lag, 0.99),
		lakedSide: delta(a, b, len(lat)),
	}, nil
}

func fmtOpt(v *float64, f func(float64) string) string {
	if v == nil {
		return "-"
	}
	return f(*v)
}
