package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// burstOpts are lakectl burst's flags (and bench --burst's for its
// child).
type burstOpts struct {
	model   int64
	clients int
	ring    int
	pause   time.Duration // after each ring (0: resubmit at once)
	place   placement     // where the bursting process runs (--cpus, --nice)
}

// Burst limits.
const (
	maxBurstClients = 256 // laked's default max_clients
	maxBurstRing    = 4096
	maxBurstPause   = time.Second
)

func (o burstOpts) validate(cmd string) error {
	switch {
	case o.model < 0 || o.model > 1<<32-1:
		return usageErr("%s: --model %d: want a model id", cmd, o.model)
	case o.clients < 1 || o.clients > maxBurstClients:
		return usageErr("%s: %d bursting clients: want 1..%d", cmd, o.clients, maxBurstClients)
	case o.ring < shm.MinEntries || o.ring > maxBurstRing || o.ring&(o.ring-1) != 0:
		return usageErr("%s: ring %d: want a power of two in [%d, %d]", cmd, o.ring, shm.MinEntries, maxBurstRing)
	case o.pause < 0 || o.pause > maxBurstPause:
		return usageErr("%s: --pause %v: want 0..%v", cmd, o.pause, maxBurstPause)
	}
	return o.place.validate(cmd, "--cpus", "--nice")
}

// burstReport is what lakectl burst did. With --json it prints one per
// line: State "bursting" once every client has completed its first ring
// (the counts then are zero), and State "done" when it stopped.
type burstReport struct {
	State   string `json:"state"` // "bursting", then "done"
	Model   uint32 `json:"model"`
	Clients int    `json:"clients"`
	Ring    int    `json:"ring"`
	// Predicts is the predicts answered OK from "bursting" to the stop,
	// over ElapsedNs.
	Predicts       uint64  `json:"predicts"`
	ElapsedNs      int64   `json:"elapsed_ns"`
	PredictsPerSec float64 `json:"predicts_per_sec"`
	// Busy and Failed count the predicts answered busy or with another
	// error status since the start (the first rings included).
	Busy   uint64 `json:"busy"`
	Failed uint64 `json:"failed"`
	// Cycles and CycleP50Ns: the rings completed from "bursting" to the
	// stop (all clients), and the median time from a ring's submission
	// to its last completion.
	Cycles     uint64 `json:"cycles"`
	CycleP50Ns int64  `json:"cycle_p50_ns"`
	// MinClientCycles is the fewest rings one client completed from
	// "bursting" to the stop (0: a client was starved).
	MinClientCycles uint64 `json:"min_client_cycles"`
	// Sleeps counts the bursting clients' waits that slept for their
	// completions (spin ran out), since "bursting".
	Sleeps uint64 `json:"sleeps"`
	// Placement is where the process's threads ran at "done", read back
	// from the kernel (with --cpus or --nice only).
	Placement *placement `json:"placement,omitempty"`
}

// burster is one bursting client: its connection and its ring of
// predicts on arena buffers of its own.
type burster struct {
	cl     *lakelib.Client
	proto  []shm.SQE
	es     []shm.SQE
	cs     []shm.CQE
	ok     atomic.Uint64
	busy   atomic.Uint64
	failed atomic.Uint64
	cycles []int64 // ring cycle times (ns) once measuring
	rings  uint64  // rings completed once measuring
}

// maxCycles bounds the ring cycle times one burster keeps.
const maxCycles = 1 << 20

// dialBurster connects one bursting client: a ring of o.ring entries
// (completion ring the same size), an arena for its ring's inputs and
// outputs, and SpinMax 1µs (it has a ring's worth of completions coming,
// so it sleeps for them rather than spinning).
func (c *cli) dialBurster(ctx context.Context, o burstOpts, inB, outB int) (*burster, error) {
	per := uint64(o.ring) * uint64(roundUp(inB, shm.MinBlock)+roundUp(outB, shm.MinBlock))
	arena := max(uint64(64<<10), nextPow2(2*per))
	if arena > shm.MaxArenaSize {
		return nil, fmt.Errorf("burst: a ring of %d predicts of model %d needs %d bytes of arena", o.ring, o.model, per)
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	cl, err := lakelib.Dial(dctx, c.socket, lakelib.Options{
		Region:  shm.Config{SQEntries: uint32(o.ring), CQEntries: uint32(o.ring), ArenaSize: arena},
		SpinMax: time.Microsecond,
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("burst: connect to laked at %s: %w", c.socket, err)
	}
	in, err := cl.AllocHost(inB * o.ring)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("burst: arena: %w", err)
	}
	out, err := cl.AllocHost(outB * o.ring)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("burst: arena: %w", err)
	}
	b := &burster{cl: cl, proto: make([]shm.SQE, o.ring), es: make([]shm.SQE, o.ring), cs: make([]shm.CQE, o.ring)}
	for i := range b.proto {
		b.proto[i] = shm.SQE{Opcode: shm.OpPredict, Args: [shm.NumArgs]uint64{uint64(o.model), 1,
			in.Offset() + uint64(inB*i), uint64(inB), out.Offset() + uint64(outB*i), uint64(outB)}}
	}
	return b, nil
}

// cycle submits the whole ring as one Batch and waits for every
// completion; it returns how long that took.
func (b *burster) cycle(ctx context.Context) (time.Duration, error) {
	copy(b.es, b.proto)
	t := time.Now()
	if err := b.cl.Batch(ctx, b.es, b.cs); err != nil {
		return 0, err
	}
	d := time.Since(t)
	for _, c := range b.cs {
		switch c.Status {
		case shm.StatusOK:
			b.ok.Add(1)
		case shm.StatusBusy:
			b.busy.Add(1)
		default:
			b.failed.Add(1)
		}
	}
	return d, nil
}

// burstRun is a running set of bursting clients.
type burstRun struct {
	o        burstOpts
	bs       []*burster
	stop     atomic.Bool
	measure  atomic.Bool // set once every client has cycled its ring
	cycled   atomic.Int64
	ready    chan struct{}
	wg       sync.WaitGroup
	errMu    sync.Mutex
	err      error
	began    time.Time
	okAt     uint64 // OK predicts when measuring began
	sleepsAt uint64
}

func (r *burstRun) fail(err error) {
	r.errMu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.errMu.Unlock()
	r.stop.Store(true)
}

func (r *burstRun) totals() (ok, busy, failed, sleeps uint64) {
	for _, b := range r.bs {
		ok += b.ok.Load()
		busy += b.busy.Load()
		failed += b.failed.Load()
		sleeps += b.cl.Sleeps()
	}
	return
}

// startBurst connects o.clients bursting clients and starts them: each
// resubmits its whole ring as soon as the previous one completed, until
// stopRun. ready is closed once every client has completed one ring.
func (c *cli) startBurst(ctx context.Context, o burstOpts) (*burstRun, error) {
	r := &burstRun{o: o, ready: make(chan struct{})}
	// The model's record sizes, asked on a small connection of its own.
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ic, err := lakelib.Dial(dctx, c.socket, lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 64 << 10}})
	if err != nil {
		return nil, fmt.Errorf("burst: connect to laked at %s (is laked running?): %w", c.socket, err)
	}
	info, err := ic.ModelInfo(dctx, uint32(o.model))
	ic.Close()
	if err != nil {
		return nil, fmt.Errorf("burst: model %d: %w", o.model, err)
	}
	for len(r.bs) < o.clients {
		b, err := c.dialBurster(ctx, o, info.InputBytes, info.OutputBytes)
		if err != nil {
			r.close()
			return nil, err
		}
		r.bs = append(r.bs, b)
	}
	// A ring that laked does not answer within --timeout ends the run
	// (the watchdog); signals only stop it between rings (stopRun).
	var progress atomic.Int64
	bctx, stopWatch := c.watchdog(context.WithoutCancel(ctx), &progress)
	for _, b := range r.bs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			first := true
			for !r.stop.Load() {
				d, err := b.cycle(bctx)
				if err != nil {
					if cause := context.Cause(bctx); bctx.Err() != nil && cause != nil {
						err = fmt.Errorf("%w (%v)", err, cause)
					}
					r.fail(fmt.Errorf("burst: %w", err))
					return
				}
				progress.Add(1)
				if o.pause > 0 {
					time.Sleep(o.pause)
				}
				if r.measure.Load() {
					b.rings++
					if len(b.cycles) < maxCycles {
						b.cycles = append(b.cycles, d.Nanoseconds())
					}
				}
				if first {
					first = false
					if r.cycled.Add(1) == int64(len(r.bs)) {
						r.okAt, _, _, r.sleepsAt = r.totals()
						r.began = time.Now()
						r.measure.Store(true)
						close(r.ready)
					}
				}
			}
		}()
	}
	go func() { r.wg.Wait(); stopWatch() }()
	return r, nil
}

// wait returns once every client has cycled its ring (nil), the run
// failed, or ctx ended.
func (r *burstRun) waitReady(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-r.ready:
		return nil
	case <-done:
		r.errMu.Lock()
		defer r.errMu.Unlock()
		if r.err == nil {
			return errors.New("burst: stopped before every client had cycled its ring")
		}
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopRun stops the clients after their current ring and reports.
func (r *burstRun) stopRun() (burstReport, error) {
	r.stop.Store(true)
	r.wg.Wait()
	end := time.Now()
	ok, busy, failed, sleeps := r.totals()
	rep := burstReport{State: "done", Model: uint32(r.o.model), Clients: len(r.bs), Ring: r.o.ring, Busy: busy, Failed: failed}
	if r.measure.Load() {
		rep.Predicts = ok - r.okAt
		rep.Sleeps = sleeps - r.sleepsAt
		rep.ElapsedNs = end.Sub(r.began).Nanoseconds()
		if rep.ElapsedNs > 0 {
			rep.PredictsPerSec = float64(rep.Predicts) / end.Sub(r.began).Seconds()
		}
		var all []int64
		rep.MinClientCycles = r.bs[0].rings
		for _, b := range r.bs {
			all = append(all, b.cycles...)
			rep.Cycles += b.rings
			rep.MinClientCycles = min(rep.MinClientCycles, b.rings)
		}
		if len(all) > 0 {
			slices.Sort(all)
			rep.CycleP50Ns = all[(len(all)-1)/2]
		}
	}
	r.close()
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return rep, r.err
}

func (r *burstRun) close() {
	for _, b := range r.bs {
		b.cl.Close()
	}
}

// burst is lakectl burst: bursting clients until interrupted.
func (c *cli) burst(ctx context.Context, args []string) error {
	fs := newFlagSet("burst", c)
	o := burstOpts{}
	fs.Int64Var(&o.model, "model", 1, "model id the clients predict with (one item per predict)")
	fs.IntVar(&o.clients, "clients", 31, "bursting clients, each its own connection")
	fs.IntVar(&o.ring, "ring", 64, "each client's ring: predicts submitted at once, as one batch")
	fs.DurationVar(&o.pause, "pause", 0, "each client sleeps this long after every ring (bulk clients slowed down; 0: resubmit at once)")
	var dur time.Duration
	fs.DurationVar(&dur, "duration", 0, "stop after this long (0: at SIGINT/SIGTERM)")
	fs.StringVar(&o.place.CPUs, "cpus", "", "run on these CPUs (a list as taskset -c takes: 0,2-3; empty: unchanged)")
	fs.IntVar(&o.place.Nice, "nice", 0, "run at this nice value, -20..19 (0: unchanged)")
	if err := c.parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := o.validate("burst"); err != nil {
		return err
	}
	if dur < 0 {
		return usageErr("burst: --duration %v: want >= 0", dur)
	}
	if err := o.place.apply(); err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	r, err := c.startBurst(ctx, o)
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx); err != nil {
		if _, serr := r.stopRun(); serr != nil {
			return serr
		}
		return err
	}
	ready := burstReport{State: "bursting", Model: uint32(o.model), Clients: o.clients, Ring: o.ring}
	if c.json {
		if err := c.emitJSONLine(ready); err != nil {
			r.stopRun()
			return err
		}
	} else {
		fmt.Fprintf(c.out, "bursting: %d clients, each resubmitting its ring of %d predicts (model %d) as soon as it completed\n", o.clients, o.ring, o.model)
	}
	var timeout <-chan time.Time
	if dur > 0 {
		t := time.NewTimer(dur)
		defer t.Stop()
		timeout = t.C
	}
	failed := make(chan struct{})
	go func() { r.wg.Wait(); close(failed) }()
	select {
	case <-ctx.Done():
	case <-timeout:
	case <-failed:
	}
	rep, err := r.stopRun()
	if err != nil {
		return err
	}
	if o.place.set() {
		got, err := currentPlacement()
		if err != nil {
			return fmt.Errorf("burst: read back the placement: %w", err)
		}
		rep.Placement = &got
	}
	if c.json {
		return c.emitJSONLine(rep)
	}
	if rep.Placement != nil {
		fmt.Fprintf(c.out, "placement: CPUs %s, nice %d\n", rep.Placement.CPUs, rep.Placement.Nice)
	}
	fmt.Fprintf(c.out, "burst: %d predicts in %s (%.0f/s), %d rings (fewest of one client %d), median ring cycle %s, busy %d, failed %d, slept for completions %d times\n",
		rep.Predicts, fmtNs(rep.ElapsedNs), rep.PredictsPerSec, rep.Cycles, rep.MinClientCycles, fmtNs(rep.CycleP50Ns), rep.Busy, rep.Failed, rep.Sleeps)
	return nil
}

// emitJSONLine prints v as one line of JSON.
func (c *cli) emitJSONLine(v any) error {
	return json.NewEncoder(c.out).Encode(v)
}

func roundUp(n, a int) int { return (n + a - 1) / a * a }

func nextPow2(v uint64) uint64 {
	p := uint64(1)
	for p < v {
		p <<= 1
	}
	return p
}
