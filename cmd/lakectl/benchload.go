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
	lakedSide
}

// openLoopReport is bench --open-loop's result.
type openLoopReport struct {
	Clients int `json:"clients"`
	// OneAtATimeRate is one closed-loop client's request rate (batch 1).
	OneAtATimeRate float64 `json:"one_at_a_time_rate"`
	// Capacity is the saturated rate (each client keeps Depth requests
	// in flight), with laked's mean batch then.
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

// openLoop measures capacity with clients closed-loop clients keeping
// depth requests each in flight, then offers each load level as Poisson
// arrivals split evenly over the clients for dur, and reports latency
// from each request's scheduled arrival (so that a slow answer delays no
// later arrival: no coordinated omission).
func (c *cli) openLoop(ctx context.Context, o benchOpts, clients []*lakelib.Client, model uint32, inB, outB int, oneRate float64, loads []float64, dur time.Duration) (openLoopReport, error) {
	const depth = 32
	pid := clients[0].DaemonPID()
	rep := openLoopReport{Clients: len(clients), OneAtATimeRate: oneRate, Depth: depth}
	one := func(cl *lakelib.Client, in, out []byte) error {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		_, err := cl.Predict(rctx, model, o.n, in, out)
		return err
	}

	// Capacity: every client keeps depth requests in flight, issued as
	// the open loop issues them (one Predict per caller), for dur.
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	stop := make(chan struct{})
	var wg sync.WaitGroup
	a := c.probe(ctx, pid)
	for _, cl := range clients {
		for w := 0; w < depth; w++ {
			wg.Add(1)
			go func(cl *lakelib.Client) {
				defer wg.Done()
				in, out := make([]byte, inB), make([]byte, outB)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := one(cl, in, out); err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					done.Add(1)
				}
			}(cl)
		}
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	b := c.probe(ctx, pid)
	if firstErr != nil {
		return rep, fmt.Errorf("capacity: %w", firstErr)
	}
	rep.Capacity = float64(done.Load()) / b.taken.Sub(a.taken).Seconds()
	rep.CapacityMeanBatch = delta(a, b, int(done.Load())).MeanBatch

	for _, load := range loads {
		r, err := c.openLevel(ctx, clients, one, inB, outB, pid, load, load*rep.Capacity, dur)
		if err != nil {
			return rep, fmt.Errorf("load %.0f%%: %w", 100*load, err)
		}
		rep.Levels = append(rep.Levels, r)
	}
	return rep, nil
}

// openLevel offers rate requests/s for dur.
func (c *cli) openLevel(ctx context.Context, clients []*lakelib.Client, one func(*lakelib.Client, []byte, []byte) error, inB, outB, pid int, load, rate float64, dur time.Duration) (openResult, error) {
	const workers = 64 // per client: requests in flight at most
	var (
		mu       sync.Mutex
		lat      []int64
		firstErr error
		wg       sync.WaitGroup
	)
	a := c.probe(ctx, pid)
	start := time.Now()
	queues := make([]chan time.Time, len(clients))
	for k, cl := range clients {
		arrivals := make(chan time.Time, 1<<16)
		queues[k] = arrivals
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in, out := make([]byte, inB), make([]byte, outB)
				mine := make([]int64, 0, 1024)
				for at := range arrivals {
					if err := one(cl, in, out); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						continue
					}
					mine = append(mine, time.Since(at).Nanoseconds())
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
	}
	// One Poisson stream at the total rate, each arrival sent to a
	// client chosen at random (so each client's arrivals are Poisson at
	// rate/clients). The generator sleeps until the next arrival is due
	// and then releases every arrival due by now; latency counts from the
	// scheduled time, so its own lateness is charged, never hidden.
	rng := rand.New(rand.NewPCG(uint64(len(clients)), 0x9e3779b97f4a7c15))
	next, end := start, start.Add(dur)
gen:
	for {
		next = next.Add(time.Duration(rng.ExpFloat64() / rate * 1e9))
		if next.After(end) {
			break
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		select {
		case queues[rng.IntN(len(queues))] <- next:
		case <-ctx.Done():
			break gen
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	b := c.probe(ctx, pid)
	if firstErr != nil {
		return openResult{}, firstErr
	}
	if len(lat) == 0 {
		return openResult{}, errors.New("no request completed")
	}
	slices.Sort(lat)
	pct := func(p float64) int64 { return lat[min(int(math.Ceil(p*float64(len(lat))))-1, len(lat)-1)] }
	return openResult{
		Load: load, OfferedRate: rate, Rate: float64(len(lat)) / b.taken.Sub(start).Seconds(), Count: len(lat),
		P50Ns: pct(0.5), P99Ns: pct(0.99), lakedSide: delta(a, b, len(lat)),
	}, nil
}

func fmtOpt(v *float64, f func(float64) string) string {
	if v == nil {
		return "-"
	}
	return f(*v)
}
