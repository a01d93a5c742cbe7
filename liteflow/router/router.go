package router

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/liteflow/snapshot"
)

// Config configures a Router.
type Config struct {
	// InputDim and OutputDim fix the shape every installed snapshot must have.
	InputDim, OutputDim int
	// FlowCapacity is the maximum number of pinned flows (default 65536).
	// Entries are preallocated (about 100 bytes each with the map).
	FlowCapacity int
	// FlowTTL is the idle time after which a flow expires (default 1s).
	FlowTTL time.Duration
	// Shards is the number of flow-cache shards, rounded up to a power of
	// two (default 64).
	Shards int
	// Now is a monotonic clock (default: time since New). Tests inject one.
	Now func() time.Duration
	// OnFree, if set, is called with the version of each snapshot freed. It
	// may run on a query goroutine, so it must be quick and must not call
	// back into the Router.
	OnFree func(version uint64)
}

// Stats are cumulative counters.
type Stats struct {
	Installs    uint64 // snapshots installed
	Freed       uint64 // snapshots freed
	Flows       int    // flows currently pinned
	NewFlows    uint64 // flows started
	Evictions   uint64 // live flows evicted for capacity
	Expirations uint64 // flows expired (idle > FlowTTL)
	Ended       uint64 // flows removed by EndFlow
}

// Errors returned by the router.
var (
	ErrNoSnapshot = errors.New("router: no snapshot installed")
	ErrShape      = errors.New("router: wrong vector length")
)

type program struct {
	snap    snapshot.Snapshot
	version uint64
	refs    atomic.Int64
}

type slot struct {
	inflight atomic.Int64
	prog     *program // written by Install only while this slot is standby and drained
	_        [48]byte // keep the two slots' counters on separate cache lines
}

// Router serves one application's snapshots. Query and QueryBatch are safe
// for concurrent use with each other and with Install.
type Router struct {
	cfg    Config
	active atomic.Uint32
	_      [60]byte
	slots  [2]slot

	installMu sync.Mutex
	version   uint64
	pool      sync.Pool

	installs, freed atomic.Uint64
	flows           flowCache

	// beforeFlip and afterFlip are test hooks run by Install.
	beforeFlip, afterFlip func()
}

// New returns a Router with no snapshot installed.
func New(cfg Config) (*Router, error) {
	if cfg.InputDim < 1 || cfg.InputDim > snapshot.MaxWidth || cfg.OutputDim < 1 || cfg.OutputDim > snapshot.MaxWidth {
		return nil, fmt.Errorf("router: dimensions %dx%d outside [1, %d]", cfg.InputDim, cfg.OutputDim, snapshot.MaxWidth)
	}
	if cfg.FlowCapacity < 0 || cfg.FlowTTL < 0 || cfg.Shards < 0 {
		return nil, fmt.Errorf("router: negative flow-cache setting (capacity %d, ttl %v, shards %d)", cfg.FlowCapacity, cfg.FlowTTL, cfg.Shards)
	}
	if cfg.FlowCapacity == 0 {
		cfg.FlowCapacity = 65536
	}
	if cfg.FlowTTL == 0 {
		cfg.FlowTTL = time.Second
	}
	if cfg.Shards == 0 {
		cfg.Shards = 64
	}
	n := 1
	for n < cfg.Shards {
		n <<= 1
	}
	cfg.Shards = min(n, 1<<16)
	if cfg.Now == nil {
		start := time.Now()
		cfg.Now = func() time.Duration { return time.Since(start) }
	}
	r := &Router{cfg: cfg}
	r.pool.New = func() any { return new(program) }
	r.flows.init(cfg)
	return r, nil
}

// Install copies s into the standby slot, makes it active and returns its
// version (1, 2, … in install order). It waits, without blocking queries,
// for queries still reading the standby and then the replaced slot to
// finish; the replaced snapshot is freed once no pinned flow uses it.
// Installs are serialised. s is not retained.
func (r *Router) Install(s *snapshot.Snapshot) (uint64, error) {
	if s == nil || len(s.Layers) == 0 {
		return 0, fmt.Errorf("router: install: %w", snapshot.ErrInvalid)
	}
	p := r.pool.Get().(*program)
	s.CopyInto(&p.snap)
	if err := p.snap.Validate(); err != nil {
		r.pool.Put(p)
		return 0, fmt.Errorf("router: install: %w", err)
	}
	if p.snap.InputDim() != r.cfg.InputDim || p.snap.OutputDim() != r.cfg.OutputDim {
		in, out := p.snap.InputDim(), p.snap.OutputDim()
		r.pool.Put(p)
		return 0, fmt.Errorf("router: install: snapshot is %dx%d, router serves %dx%d: %w", in, out, r.cfg.InputDim, r.cfg.OutputDim, ErrShape)
	}
	r.installMu.Lock()
	defer r.installMu.Unlock()
	r.version++
	p.version = r.version
	p.refs.Store(1) // the slot's reference
	cur := r.active.Load()
	standby := &r.slots[1-cur]
	drain(standby)
	standby.prog = p
	if r.beforeFlip != nil {
		r.beforeFlip()
	}
	r.active.Store(1 - cur)
	if r.afterFlip != nil {
		r.afterFlip()
	}
	old := &r.slots[cur]
	drain(old)
	oldProg := old.prog
	old.prog = nil
	r.installs.Add(1)
	if oldProg != nil {
		r.release(oldProg)
	}
	return p.version, nil
}

// drain waits until no query is reading s. Only queries that loaded the
// slot index before the last flip can be there, so the wait is bounded by
// one inference.
func drain(s *slot) {
	for i := 0; s.inflight.Load() != 0; i++ {
		if i < 64 {
			continue
		}
		runtime.Gosched()
	}
}

func (r *Router) release(p *program) {
	if p.refs.Add(-1) == 0 {
		r.freed.Add(1)
		if r.cfg.OnFree != nil {
			r.cfg.OnFree(p.version)
		}
		r.pool.Put(p)
	}
}

// Query answers x into out and returns the version of the snapshot that
// answered. A non-zero flowID pins the flow to the snapshot of its first
// query (see the package documentation). Query does not allocate on its
// fast path (flow id 0 or an existing flow) and never waits for Install.
func (r *Router) Query(flowID uint64, x, out []float32) (uint64, error) {
	if len(x) != r.cfg.InputDim || len(out) != r.cfg.OutputDim {
		return 0, fmt.Errorf("%w: input %d (want %d), output %d (want %d)", ErrShape, len(x), r.cfg.InputDim, len(out), r.cfg.OutputDim)
	}
	var now time.Duration
	if flowID != 0 {
		now = r.cfg.Now()
		if p := r.flows.acquire(r, flowID, now); p != nil {
			err := p.snap.Run(x, out)
			v := p.version
			r.release(p)
			return v, err
		}
	}
	for {
		i := r.active.Load()
		s := &r.slots[i]
		s.inflight.Add(1)
		if r.active.Load() != i {
			s.inflight.Add(-1)
			continue
		}
		p := s.prog
		if p == nil {
			s.inflight.Add(-1)
			return 0, ErrNoSnapshot
		}
		if flowID != 0 {
			if q, ref := r.flows.pin(r, flowID, p, now); ref {
				// Another query of this flow pinned it first; follow it.
				s.inflight.Add(-1)
				err := q.snap.Run(x, out)
				v := q.version
				r.release(q)
				return v, err
			}
		}
		err := p.snap.Run(x, out)
		v := p.version
		s.inflight.Add(-1)
		return v, err
	}
}

// Pin returns the snapshot that answers flowID's queries, pinning a new
// flow to the active snapshot exactly as Query does, without running it:
// for a caller that runs the snapshot elsewhere (laked's GPU path). The
// snapshot stays valid, and Install of the slot behind it waits, until
// release is called; call it once, after running.
func (r *Router) Pin(flowID uint64) (s *snapshot.Snapshot, version uint64, release func(), err error) {
	h, err := r.hold(flowID)
	if err != nil {
		return nil, 0, nil, err
	}
	return &h.p.snap, h.p.version, func() { r.unhold(h) }, nil
}

// held is a program a query may run until unhold: through a reference
// (sl == nil; a pinned flow's) or through its slot's in-flight count.
type held struct {
	p  *program
	sl *slot
}

// hold finds the program that answers flowID exactly as Query does.
func (r *Router) hold(flowID uint64) (held, error) {
	var now time.Duration
	if flowID != 0 {
		now = r.cfg.Now()
		if p := r.flows.acquire(r, flowID, now); p != nil {
			return held{p: p}, nil
		}
	}
	for {
		i := r.active.Load()
		sl := &r.slots[i]
		sl.inflight.Add(1)
		if r.active.Load() != i {
			sl.inflight.Add(-1)
			continue
		}
		p := sl.prog
		if p == nil {
			sl.inflight.Add(-1)
			return held{}, ErrNoSnapshot
		}
		if flowID != 0 {
			if q, ref := r.flows.pin(r, flowID, p, now); ref {
				sl.inflight.Add(-1)
				return held{p: q}, nil
			}
		}
		return held{p: p, sl: sl}, nil
	}
}

func (r *Router) unhold(h held) {
	if h.sl != nil {
		h.sl.inflight.Add(-1)
	} else {
		r.release(h.p)
	}
}

// batchRun bounds the rows QueryBatch holds before it runs them.
const batchRun = 64

// QueryBatch answers len(flowIDs) queries: row k uses flowIDs[k], input
// xs[k*InputDim:(k+1)*InputDim] and output outs[k*OutputDim:…]; versions[k]
// receives the answering version. Each row is answered exactly as Query
// answers it (a flow's rows by the snapshot the flow is pinned to), but
// consecutive rows answered by the same snapshot run together
// (snapshot.RunBatch: several rows per pass over the weights), up to 64
// at a time. It stops at the first error; the rows before it are
// answered.
func (r *Router) QueryBatch(flowIDs []uint64, xs, outs []float32, versions []uint64) error {
	n := len(flowIDs)
	if len(xs) != n*r.cfg.InputDim || len(outs) != n*r.cfg.OutputDim || len(versions) != n {
		return fmt.Errorf("%w: batch of %d needs %d inputs, %d outputs, %d versions; got %d, %d, %d", ErrShape, n, n*r.cfg.InputDim, n*r.cfg.OutputDim, n, len(xs), len(outs), len(versions))
	}
	in, on := r.cfg.InputDim, r.cfg.OutputDim
	var hs [batchRun]held
	run := hs[:0] // rows start.. held, all by run[0].p
	start := 0
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		p, end := run[0].p, start+len(run)
		err := p.snap.RunBatch(xs[start*in:end*in], outs[start*on:end*on])
		for k := start; k < end; k++ {
			versions[k] = p.version
		}
		for _, h := range run {
			r.unhold(h)
		}
		first := start
		run, start = run[:0], end
		if err != nil {
			return fmt.Errorf("router: batch rows %d-%d: %w", first, end-1, err)
		}
		return nil
	}
	for k, id := range flowIDs {
		h, err := r.hold(id)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("router: batch row %d: %w", k, err)
		}
		if len(run) == batchRun || (len(run) > 0 && run[0].p != h.p) {
			if err := flush(); err != nil {
				r.unhold(h)
				return err
			}
		}
		run = append(run, h)
	}
	return flush()
}

// Active returns the version of the active snapshot (0 if none). It is a
// status call, not a query: it waits for an Install in progress.
func (r *Router) Active() uint64 {
	r.installMu.Lock()
	defer r.installMu.Unlock()
	if p := r.slots[r.active.Load()].prog; p != nil {
		return p.version
	}
	return 0
}

// EndFlow forgets a flow; its next query starts afresh. It reports whether
// the flow was pinned.
func (r *Router) EndFlow(flowID uint64) bool { return r.flows.end(r, flowID) }

// Sweep expires every flow idle for longer than FlowTTL and returns how
// many it removed. Call it periodically so that snapshots pinned only by
// idle flows are freed.
func (r *Router) Sweep() int { return r.flows.sweep(r, r.cfg.Now()) }

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	st := r.flows.stats()
	st.Installs = r.installs.Load()
	st.Freed = r.freed.Load()
	return st
}

// ActiveSnapshot returns a copy of the active snapshot and its version
// (nil, 0 if none), for exporting it (laked's model_fetch). Like Active it
// waits for an Install in progress.
func (r *Router) ActiveSnapshot() (*snapshot.Snapshot, uint64) {
	r.installMu.Lock()
	defer r.installMu.Unlock()
	if p := r.slots[r.active.Load()].prog; p != nil {
		return p.snap.Clone(), p.version
	}
	return nil, 0
}
