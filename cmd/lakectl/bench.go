package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/lakelib"
)

// benchResult is one operation's latency distribution.
type benchResult struct {
	Op          string  `json:"op"` // "nop" or "predict"
	Model       *uint32 `json:"model,omitempty"`
	BatchN      int     `json:"batch_n,omitempty"` // items per predict
	Count       int     `json:"count"`
	Concurrency int     `json:"concurrency"`
	BusyPoll    bool    `json:"busy_poll"`
	MinNs       int64   `json:"min_ns"`
	P50Ns       int64   `json:"p50_ns"`
	P90Ns       int64   `json:"p90_ns"`
	P99Ns       int64   `json:"p99_ns"`
	P999Ns      int64   `json:"p999_ns"`
	MaxNs       int64   `json:"max_ns"`
	MeanNs      int64   `json:"mean_ns"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	ItemsPerSec float64 `json:"items_per_sec,omitempty"`
	Round       int     `json:"round,omitempty"` // with --rounds > 1
	// Phase is "unloaded" or "loaded" with --burst (loaded: while the
	// bursting clients ran), and Busy the predicts answered busy then.
	Phase     string `json:"phase,omitempty"`
	Busy      uint64 `json:"busy,omitempty"`
	ElapsedNs int64  `json:"elapsed_ns"`
	// CallerSleeps counts the measured calls whose caller's spin ran out
	// and it slept for its completion (a wake-up in its latency).
	CallerSleeps uint64 `json:"caller_sleeps"`
	lakedSide
}

// benchOpts are bench's flags.
type benchOpts struct {
	model       int64
	n           int
	count       int
	concurrency int
	warmup      int
	busyPoll    bool
	openLoop    bool
	clients     int
	loads       string
	duration    time.Duration
	rounds      int
	jitter      bool
	jitterPin   bool
	burst       int
	burstRing   int
	place       placement // the measuring process's (--cpus, --nice)
	burstPlace  placement // the bursting process's (--burst-cpus, --burst-nice)
}

// Bench limits: keep a typo from pinning laked for hours.
const (
	maxBenchCount       = 10_000_000
	maxBenchConcurrency = 1024
	maxBenchN           = 65536
)

func (o benchOpts) validate() error {
	switch {
	case o.model < -1 || o.model > math.MaxUint32:
		return usageErr("bench: --model %d: want a model id, or -1 for no predict", o.model)
	case o.n < 1 || o.n > maxBenchN:
		return usageErr("bench: --n %d: want 1..%d", o.n, maxBenchN)
	case o.count < 1 || o.count > maxBenchCount:
		return usageErr("bench: --count %d: want 1..%d", o.count, maxBenchCount)
	case o.concurrency < 1 || o.concurrency > maxBenchConcurrency:
		return usageErr("bench: --concurrency %d: want 1..%d", o.concurrency, maxBenchConcurrency)
	case o.warmup < 0 || o.warmup > maxBenchCount:
		return usageErr("bench: --warmup %d: want 0..%d", o.warmup, maxBenchCount)
	case o.clients < 1 || o.clients > 64:
		return usageErr("bench: --clients %d: want 1..64", o.clients)
	case o.duration <= 0 || o.duration > time.Minute:
		return usageErr("bench: --duration %v: want (0, 1m]", o.duration)
	case o.rounds < 1 || o.rounds > 100:
		return usageErr("bench: --rounds %d: want 1..100", o.rounds)
	case o.openLoop && o.model < 0:
		return usageErr("bench: --open-loop needs --model")
	case o.burst < 0 || o.burst > maxBurstClients:
		return usageErr("bench: --burst %d: want 0..%d bursting clients", o.burst, maxBurstClients)
	case o.burst > 0 && o.model < 0:
		return usageErr("bench: --burst needs --model")
	case o.burst > 0 && o.openLoop:
		return usageErr("bench: --burst and --open-loop are separate measurements")
	case o.burst == 0 && o.burstPlace.set():
		return usageErr("bench: --burst-cpus and --burst-nice need --burst")
	case o.burst > 0:
		if err := (burstOpts{model: o.model, clients: o.burst, ring: o.burstRing}).validate("bench --burst"); err != nil {
			return err
		}
		if err := o.burstPlace.validate("bench", "--burst-cpus", "--burst-nice"); err != nil {
			return err
		}
	}
	if err := o.place.validate("bench", "--cpus", "--nice"); err != nil {
		return err
	}
	return nil
}

func (c *cli) bench(ctx context.Context, args []string) error {
	fs := newFlagSet("bench", c)
	var o benchOpts
	fs.Int64Var(&o.model, "model", -1, "model id to predict with (-1: round trips only)")
	fs.IntVar(&o.n, "n", 1, "items per predict request")
	fs.IntVar(&o.count, "count", 10000, "requests per operation")
	fs.IntVar(&o.concurrency, "concurrency", 1, "goroutines issuing requests")
	fs.IntVar(&o.warmup, "warmup", 100, "unmeasured requests first")
	fs.BoolVar(&o.busyPoll, "busy-poll", false, "spin on the completion ring instead of sleeping")
	fs.BoolVar(&o.openLoop, "open-loop", false, "also measure capacity and Poisson open-loop latency (needs --model)")
	fs.IntVar(&o.clients, "clients", 8, "open loop: client connections")
	fs.StringVar(&o.loads, "loads", "0.25,0.5,0.9", "open loop: offered loads as fractions of capacity")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "open loop: time per load level (and for the capacity run)")
	fs.IntVar(&o.rounds, "rounds", 1, "closed loop: alternate the nop and predict phases this many times (medians printed)")
	fs.BoolVar(&o.jitter, "jitter", true, "also measure the machine's own scheduling gaps (text output)")
	fs.BoolVar(&o.jitterPin, "jitter-pin", false, "pin the jitter threads to CPUs 0 and 1")
	fs.IntVar(&o.burst, "burst", 0, "predict unloaded, then while this many clients burst their rings in another process (lakectl burst); 0: off")
	fs.IntVar(&o.burstRing, "burst-ring", 64, "--burst: each bursting client's ring (predicts submitted at once)")
	fs.StringVar(&o.place.CPUs, "cpus", "", "run the measuring process on these CPUs (a list as taskset -c takes: 0,2-3; empty: unchanged)")
	fs.IntVar(&o.place.Nice, "nice", 0, "run the measuring process at this nice value, -20..19 (0: unchanged)")
	fs.StringVar(&o.burstPlace.CPUs, "burst-cpus", "", "--burst: run the bursting process on these CPUs (empty: unchanged)")
	fs.IntVar(&o.burstPlace.Nice, "burst-nice", 0, "--burst: run the bursting process at this nice value (0: unchanged)")
	if err := c.parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	if err := o.place.apply(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var loads []float64
	if o.openLoop {
		var err error
		if loads, err = parseLoads(o.loads); err != nil {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	cl, err := lakelib.Dial(dctx, c.socket, lakelib.Options{BusyPoll: o.busyPoll})
	cancel()
	if err != nil {
		return fmt.Errorf("connect to laked at %s (is laked running?): %w", c.socket, err)
	}
	defer cl.Close()
	pid := cl.DaemonPID()

	results := []benchResult{}
	var info lakelib.ModelInfo
	var id uint32
	if o.model >= 0 {
		id = uint32(o.model)
		ictx, cancel := context.WithTimeout(ctx, c.timeout)
		info, err = cl.ModelInfo(ictx, id)
		cancel()
		if err != nil {
			return fmt.Errorf("bench predict: model %d: %w", id, err)
		}
	}
	if o.burst > 0 {
		return c.benchBurst(ctx, o, cl, id, info)
	}
	nop := func(ctx context.Context, _ *opBufs) error { return cl.Nop(ctx) }
	newBufs := func() *opBufs {
		return &opBufs{in: make([]byte, info.InputBytes*o.n), out: make([]byte, info.OutputBytes*o.n)}
	}
	pred := func(ctx context.Context, b *opBufs) error {
		_, err := cl.Predict(ctx, id, o.n, b.in, b.out)
		return err
	}
	var jit []jitterResult
	for round := 1; round <= o.rounds; round++ {
		pa := c.probe(ctx, pid)
		r, err := c.runBench(ctx, o, nop, nil, cl.Sleeps)
		if err != nil {
			return fmt.Errorf("bench nop: %w", err)
		}
		r.lakedSide = lakedSide{LakedCPUNsPerOp: delta(pa, c.probe(ctx, pid), o.count).LakedCPUNsPerOp}
		r.Op = "nop"
		spun := r.ElapsedNs
		if o.rounds > 1 {
			r.Round = round
		}
		results = append(results, r)
		if o.model >= 0 {
			pa := c.probe(ctx, pid)
			r, err := c.runBench(ctx, o, pred, newBufs, cl.Sleeps)
			if err != nil {
				return fmt.Errorf("bench predict (model %d, n=%d): %w", id, o.n, err)
			}
			r.lakedSide = delta(pa, c.probe(ctx, pid), o.count)
			r.Op, r.Model, r.BatchN = "predict", &id, o.n
			r.ItemsPerSec = r.OpsPerSec * float64(o.n)
			if o.rounds > 1 {
				r.Round = round
			}
			spun += r.ElapsedNs
			results = append(results, r)
		}
		if o.jitter && !c.json {
			// As long as the phases of this round took, two threads
			// spinning as the caller and laked's reader do.
			jit = append(jit, measureJitter(2, min(time.Duration(spun), 2*time.Second), o.jitterPin))
		}
	}
	if o.model >= 0 {
		r := medianResult(results, "predict")
		if o.openLoop {
			// Open-loop clients have many calls in flight: they spin
			// only briefly for a completion before parking.
			var clients []*lakelib.Client
			for len(clients) < o.clients {
				dctx, cancel := context.WithTimeout(ctx, c.timeout)
				more, err := lakelib.Dial(dctx, c.socket, lakelib.Options{BusyPoll: o.busyPoll, SpinMax: 2 * time.Microsecond})
				cancel()
				if err != nil {
					return fmt.Errorf("bench open loop: connect: %w", err)
				}
				defer more.Close()
				clients = append(clients, more)
			}
			rep, err := c.openLoop(ctx, o, clients, id, info.InputBytes*o.n, info.OutputBytes*o.n, r.OpsPerSec, loads, o.duration)
			if err != nil {
				return fmt.Errorf("bench open loop: %w", err)
			}
			if c.json {
				return c.emitJSON(struct {
					Closed   []benchResult  `json:"closed_loop"`
					OpenLoop openLoopReport `json:"open_loop"`
				}{results, rep})
			}
			if err := c.printClosed(results, jit); err != nil {
				return err
			}
			return c.printOpen(rep)
		}
	}
	if c.json {
		return c.emitJSON(results)
	}
	if err := c.printClosed(results, jit); err != nil {
		return err
	}
	if o.model < 0 {
		fmt.Fprintln(c.out, "(predict skipped: give --model ID)")
	}
	return nil
}

// medianResult is the result of op with the median p50 over the rounds.
func medianResult(results []benchResult, op string) benchResult {
	var rs []benchResult
	for _, r := range results {
		if r.Op == op {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b benchResult) int { return cmp.Compare(a.P50Ns, b.P50Ns) })
	return rs[(len(rs)-1)/2]
}

// medianOf is the median of f over the results of op.
func medianOf(results []benchResult, op string, f func(benchResult) int64) int64 {
	var v []int64
	for _, r := range results {
		if r.Op == op {
			v = append(v, f(r))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

func (c *cli) printClosed(results []benchResult, jit []jitterResult) error {
	tw := c.table()
	fmt.Fprintln(tw, "OP\tN\tCOUNT\tCONC\tP50\tP90\tP99\tMAX\tMEAN\tOPS/S\tITEMS/S\tMEAN BATCH\tINFERENCE\tLAKED CPU/OP")
	for _, r := range results {
		n, items := "-", "-"
		if r.BatchN > 0 {
			n, items = fmt.Sprint(r.BatchN), fmt.Sprintf("%.0f", r.ItemsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\n", r.Op, n, r.Count, r.Concurrency,
			fmtNs(r.P50Ns), fmtNs(r.P90Ns), fmtNs(r.P99Ns), fmtNs(r.MaxNs), fmtNs(r.MeanNs), r.OpsPerSec, items,
			fmtOpt(r.MeanBatch, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
			fmtOpt(r.InferenceNs, func(v float64) string { return fmtNs(int64(v)) }),
			fmtOpt(r.LakedCPUNsPerOp, func(v float64) string { return fmtNs(int64(v)) }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	p50 := func(r benchResult) int64 { return r.P50Ns }
	p99 := func(r benchResult) int64 { return r.P99Ns }
	inf := func(r benchResult) int64 {
		if r.InferenceNs == nil {
			return 0
		}
		return int64(*r.InferenceNs)
	}
	rounds := 0
	hasInference := false
	for _, r := range results {
		if r.Op == "predict" {
			rounds++
			hasInference = hasInference || r.InferenceNs != nil
		}
	}
	if rounds > 1 {
		fmt.Fprintf(c.out, "median of %d rounds (nop and predict alternating): nop p50 %s p99 %s, predict p50 %s p99 %s\n", rounds,
			fmtNs(medianOf(results, "nop", p50)), fmtNs(medianOf(results, "nop", p99)),
			fmtNs(medianOf(results, "predict", p50)), fmtNs(medianOf(results, "predict", p99)))
	}
	// The crossing's cost: predict p50 against nop p50 + inference.
	if rounds > 0 && hasInference {
		np, pp, in := medianOf(results, "nop", p50), medianOf(results, "predict", p50), medianOf(results, "predict", inf)
		fmt.Fprintf(c.out, "predict p50 %s = nop p50 %s + inference %s + %s\n", fmtNs(pp), fmtNs(np), fmtNs(in), fmtNs(pp-np-in))
	}
	var sleeps, calls uint64
	for _, r := range results {
		sleeps += r.CallerSleeps
		calls += uint64(r.Count)
	}
	fmt.Fprintf(c.out, "caller slept for its completion (spin ran out) in %d of %d measured calls\n", sleeps, calls)
	if len(jit) > 0 {
		j := sumJitter(jit)
		var rate float64
		for _, r := range results {
			rate = max(rate, r.OpsPerSec)
		}
		fmt.Fprintf(c.out, "machine jitter (same run, after each round): %s; at %.0f requests/s gaps > 25µs alone would delay %.2f%% of requests (a p99 <= 25µs needs < 1%%)\n",
			j, rate, 100*j.hitFraction(rate))
	}
	return nil
}

// sumJitter adds up the rounds' jitter measurements.
func sumJitter(js []jitterResult) jitterResult {
	var s jitterResult
	for _, j := range js {
		s.Threads, s.Pinned = j.Threads, j.Pinned
		s.SpinNs += j.SpinNs
		s.Gaps5us += j.Gaps5us
		s.Gaps25us += j.Gaps25us
		s.Gaps100us += j.Gaps100us
		s.WorstNs = max(s.WorstNs, j.WorstNs)
		s.LostFrac += j.LostFrac * float64(j.SpinNs)
	}
	if s.SpinNs > 0 {
		s.LostFrac /= float64(s.SpinNs)
		s.GapsPerSec = float64(s.Gaps25us) / (float64(s.SpinNs) / 1e9)
	}
	return s
}

func (c *cli) printOpen(rep openLoopReport) error {
	fmt.Fprintf(c.out, "open loop, %d clients: capacity %.0f/s (%d in flight per client, mean batch %s) = %.1fx the one-at-a-time rate %.0f/s\n",
		rep.Clients, rep.Capacity, rep.Depth, fmtOpt(rep.CapacityMeanBatch, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
		rep.Capacity/rep.OneAtATimeRate, rep.OneAtATimeRate)
	tw := c.table()
	fmt.Fprintln(tw, "LOAD\tOFFERED/S\tDONE/S\tCOUNT\tP50\tP99\tLAG P50\tLAG P99\tMEAN BATCH\tLAKED CPU/OP")
	for _, l := range rep.Levels {
		fmt.Fprintf(tw, "%.0f%%\t%.0f\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", 100*l.Load, l.OfferedRate, l.Rate, l.Count,
			fmtNs(l.P50Ns), fmtNs(l.P99Ns), fmtNs(l.LagP50Ns), fmtNs(l.LagP99Ns),
			fmtOpt(l.MeanBatch, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
			fmtOpt(l.LakedCPUNsPerOp, func(v float64) string { return fmtNs(int64(v)) }))
	}
	return tw.Flush()
}

func fmtNs(ns int64) string { return fmtSeconds(float64(ns) / 1e9) }

// opBufs are one worker's request buffers.
type opBufs struct{ in, out []byte }

// runBench issues o.warmup then o.count requests of op from
// o.concurrency goroutines and reports the latency distribution. The
// first error stops it.
//
// sleeps, if not nil, is the client's count of calls that slept; the
// result gets its growth over the measured requests.
func (c *cli) runBench(ctx context.Context, o benchOpts, op func(context.Context, *opBufs) error, newBufs func() *opBufs, sleeps func() uint64) (benchResult, error) {
	// One context for the phase, cancelled by a watchdog when no request
	// completes for --timeout: no context or timer allocated per request
	// (garbage in the measuring process brings GC pauses into the tail).
	var progress atomic.Int64
	rctx, stopWatch := c.watchdog(ctx, &progress)
	defer stopWatch()
	one := func(b *opBufs) error {
		err := op(rctx, b)
		progress.Add(1)
		return err
	}
	bufs := make([]*opBufs, o.concurrency)
	for i := range bufs {
		bufs[i] = &opBufs{}
		if newBufs != nil {
			bufs[i] = newBufs()
		}
	}
	for i := 0; i < o.warmup; i++ {
		if err := one(bufs[0]); err != nil {
			return benchResult{}, err
		}
	}
	var slept uint64
	if sleeps != nil {
		slept = sleeps()
	}
	lat := make([]int64, o.count)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		next     atomic.Int64
		stopped  atomic.Bool
	)
	// Workers take request indices from a counter: a channel from a
	// feeding goroutine would make every request a goroutine hand-off in
	// the measuring process (a woken feeder, possibly another OS thread
	// spinning for work) competing with laked for the CPUs.
	start := time.Now()
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(b *opBufs) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.count || stopped.Load() {
					return
				}
				t := time.Now()
				if err := one(b); err != nil {
					errOnce.Do(func() { firstErr = err; stopped.Store(true) })
					return
				}
				lat[i] = time.Since(t).Nanoseconds()
			}
		}(bufs[w])
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		if cause := context.Cause(rctx); rctx.Err() != nil && cause != nil && cause != rctx.Err() {
			firstErr = fmt.Errorf("%w (%v)", firstErr, cause)
		}
		return benchResult{}, firstErr
	}
	if elapsed <= 0 {
		return benchResult{}, errors.New("clock did not advance")
	}
	r := summarize(lat, elapsed, o)
	r.ElapsedNs = elapsed.Nanoseconds()
	if sleeps != nil {
		r.CallerSleeps = sleeps() - slept
	}
	return r, nil
}

// watchdog returns a context that is cancelled when progress stops
// advancing for c.timeout (a request laked never answers), and the
// function that ends the watch.
func (c *cli) watchdog(ctx context.Context, progress *atomic.Int64) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(c.timeout)
		defer t.Stop()
		last := progress.Load()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if now := progress.Load(); now == last {
					cancel(fmt.Errorf("no request completed within --timeout %v", c.timeout))
					return
				} else {
					last = now
				}
			}
		}
	}()
	return wctx, func() { close(done); cancel(nil) }
}

// summarize computes the nearest-rank percentiles of lat (ns).
func summarize(lat []int64, elapsed time.Duration, o benchOpts) benchResult {
	slices.Sort(lat)
	var sum int64
	for _, v := range lat {
		sum += v
	}
	pct := func(p float64) int64 {
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	return benchResult{
		Count: len(lat), Concurrency: o.concurrency, BusyPoll: o.busyPoll,
		MinNs: lat[0], P50Ns: pct(0.50), P90Ns: pct(0.90), P99Ns: pct(0.99), P999Ns: pct(0.999), MaxNs: lat[len(lat)-1],
		MeanNs:    sum / int64(len(lat)),
		OpsPerSec: float64(len(lat)) / elapsed.Seconds(),
	}
}
