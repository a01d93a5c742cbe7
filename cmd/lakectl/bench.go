package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
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
	MaxNs       int64   `json:"max_ns"`
	MeanNs      int64   `json:"mean_ns"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	ItemsPerSec float64 `json:"items_per_sec,omitempty"`
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
	case o.openLoop && o.model < 0:
		return usageErr("bench: --open-loop needs --model")
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
	if err := c.parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
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
	nop := func(ctx context.Context, _ *opBufs) error { return cl.Nop(ctx) }
	pa := c.probe(ctx, pid)
	r, err := c.runBench(ctx, o, nop, nil)
	if err != nil {
		return fmt.Errorf("bench nop: %w", err)
	}
	r.lakedSide = lakedSide{LakedCPUNsPerOp: delta(pa, c.probe(ctx, pid), o.count).LakedCPUNsPerOp}
	r.Op = "nop"
	results = append(results, r)

	if o.model >= 0 {
		id := uint32(o.model)
		ictx, cancel := context.WithTimeout(ctx, c.timeout)
		info, err := cl.ModelInfo(ictx, id)
		cancel()
		if err != nil {
			return fmt.Errorf("bench predict: model %d: %w", id, err)
		}
		newBufs := func() *opBufs {
			return &opBufs{in: make([]byte, info.InputBytes*o.n), out: make([]byte, info.OutputBytes*o.n)}
		}
		pred := func(ctx context.Context, b *opBufs) error {
			_, err := cl.Predict(ctx, id, o.n, b.in, b.out)
			return err
		}
		pa := c.probe(ctx, pid)
		r, err := c.runBench(ctx, o, pred, newBufs)
		if err != nil {
			return fmt.Errorf("bench predict (model %d, n=%d): %w", id, o.n, err)
		}
		r.lakedSide = delta(pa, c.probe(ctx, pid), o.count)
		r.Op, r.Model, r.BatchN = "predict", &id, o.n
		r.ItemsPerSec = r.OpsPerSec * float64(o.n)
		results = append(results, r)
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
			if err := c.printClosed(results); err != nil {
				return err
			}
			return c.printOpen(rep)
		}
	}
	if c.json {
		return c.emitJSON(results)
	}
	if err := c.printClosed(results); err != nil {
		return err
	}
	if o.model < 0 {
		fmt.Fprintln(c.out, "(predict skipped: give --model ID)")
	}
	return nil
}

func (c *cli) printClosed(results []benchResult) error {
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
	// The crossing's cost: predict p50 against nop p50 + inference.
	if len(results) == 2 && results[1].InferenceNs != nil {
		nop, p := results[0], results[1]
		fmt.Fprintf(c.out, "predict p50 %s = nop p50 %s + inference %s + %s\n", fmtNs(p.P50Ns), fmtNs(nop.P50Ns),
			fmtNs(int64(*p.InferenceNs)), fmtNs(p.P50Ns-nop.P50Ns-int64(*p.InferenceNs)))
	}
	return nil
}

func (c *cli) printOpen(rep openLoopReport) error {
	fmt.Fprintf(c.out, "open loop, %d clients: capacity %.0f/s (%d in flight per client, mean batch %s) = %.1fx the one-at-a-time rate %.0f/s\n",
		rep.Clients, rep.Capacity, rep.Depth, fmtOpt(rep.CapacityMeanBatch, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
		rep.Capacity/rep.OneAtATimeRate, rep.OneAtATimeRate)
	tw := c.table()
	fmt.Fprintln(tw, "LOAD\tOFFERED/S\tDONE/S\tCOUNT\tP50\tP99\tMEAN BATCH\tLAKED CPU/OP")
	for _, l := range rep.Levels {
		fmt.Fprintf(tw, "%.0f%%\t%.0f\t%.0f\t%d\t%s\t%s\t%s\t%s\n", 100*l.Load, l.OfferedRate, l.Rate, l.Count,
			fmtNs(l.P50Ns), fmtNs(l.P99Ns),
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
func (c *cli) runBench(ctx context.Context, o benchOpts, op func(context.Context, *opBufs) error, newBufs func() *opBufs) (benchResult, error) {
	one := func(b *opBufs) error {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		return op(rctx, b)
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
	lat := make([]int64, o.count)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		next     = make(chan int, o.concurrency)
	)
	stop := make(chan struct{})
	start := time.Now()
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func(b *opBufs) {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				if err := one(b); err != nil {
					errOnce.Do(func() { firstErr = err; close(stop) })
					return
				}
				lat[i] = time.Since(t).Nanoseconds()
			}
		}(bufs[w])
	}
feed:
	for i := 0; i < o.count; i++ {
		select {
		case next <- i:
		case <-stop:
			break feed
		case <-ctx.Done():
			errOnce.Do(func() { firstErr = ctx.Err(); close(stop) })
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return benchResult{}, firstErr
	}
	if elapsed <= 0 {
		return benchResult{}, errors.New("clock did not advance")
	}
	return summarize(lat, elapsed, o), nil
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
		MinNs: lat[0], P50Ns: pct(0.50), P90Ns: pct(0.90), P99Ns: pct(0.99), MaxNs: lat[len(lat)-1],
		MeanNs:    sum / int64(len(lat)),
		OpsPerSec: float64(len(lat)) / elapsed.Seconds(),
	}
}
