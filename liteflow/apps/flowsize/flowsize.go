package flowsize

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/lakeos/lake/liteflow/adapt"
	"github.com/lakeos/lake/liteflow/apps"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/router"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// Mode is a way of serving the model (shared by the apps).
type Mode = apps.Mode

// Modes compared by Run.
const (
	Static   = apps.Static
	LiteFlow = apps.LiteFlow
	SlowPath = apps.SlowPath
)

// Config describes a simulation. Zero fields take the defaults noted.
type Config struct {
	Seed  uint64
	Flows int // number of flows (default 20000)
	// Load is the offered load of the link (default 0.8).
	Load float64
	// LinkBytesPerSec is the bottleneck rate (default 1.25e9, 10 Gbit/s).
	LinkBytesPerSec float64
	// Phases is the number of equal-length workload phases (default 3); the
	// model is pre-trained on phase 0 only.
	Phases int
	// CrossingCost is the modelled cost of one kernel/user round trip for
	// the slow path (default 20µs): waking the userspace daemon, two
	// context switches and copying features and result. Measured
	// wake-up-and-reply round trips on Linux are typically 5-50µs.
	CrossingCost time.Duration
	// BatchSize is the number of completed flows per training batch
	// (default 16).
	BatchSize int
	// Modes selects the modes to run, in order (default all three).
	Modes []Mode
}

func (c *Config) defaults() error {
	if c.Flows == 0 {
		c.Flows = 20000
	}
	if c.Load == 0 {
		c.Load = 0.8
	}
	if c.LinkBytesPerSec == 0 {
		c.LinkBytesPerSec = 1.25e9
	}
	if c.Phases == 0 {
		c.Phases = 3
	}
	if c.CrossingCost == 0 {
		c.CrossingCost = 20 * time.Microsecond
	}
	if c.BatchSize == 0 {
		c.BatchSize = 16
	}
	if len(c.Modes) == 0 {
		c.Modes = []Mode{Static, LiteFlow, SlowPath}
	}
	for _, m := range c.Modes {
		if !m.Valid() {
			return fmt.Errorf("flowsize: unknown mode %d", int(m))
		}
	}
	if c.Flows < 100 || !(c.Load > 0 && c.Load < 1) || !(c.LinkBytesPerSec > 0) || c.Phases < 1 || c.CrossingCost < 0 || c.BatchSize < 1 {
		return fmt.Errorf("flowsize: bad config %+v", *c)
	}
	return nil
}

// Outcome is the result of one mode.
type Outcome struct {
	Mode        Mode
	MeanFCT     time.Duration // mean flow completion time, all flows
	MeanFCTTail time.Duration // mean FCT after the first phase (post-shift)
	SmallFCT    time.Duration // mean FCT of flows under 10 KB
	SmallMedian time.Duration // median FCT of flows under 10 KB
	Installs    int           // snapshots installed (liteflow)
	Crossings   int           // kernel/user crossings (slow path)
	CrossTime   time.Duration // total time spent in crossings
}

// Result holds the three outcomes.
type Result struct {
	Config   Config
	Outcomes []Outcome
}

// Get returns the outcome of a mode.
func (r Result) Get(m Mode) Outcome {
	for _, o := range r.Outcomes {
		if o.Mode == m {
			return o
		}
	}
	return Outcome{}
}

// Fprint writes the outcomes as a markdown table.
func (r Result) Fprint(w io.Writer) {
	fmt.Fprintf(w, "flow-size scheduling: %d flows, load %.2f, %d phases, crossing %v\n\n", r.Config.Flows, r.Config.Load, r.Config.Phases, r.Config.CrossingCost)
	fmt.Fprintf(w, "| mode | mean FCT | mean FCT after first shift | mean FCT < 10 KB | median FCT < 10 KB | installs | crossings |\n|---|---|---|---|---|---|---|\n")
	for _, o := range r.Outcomes {
		fmt.Fprintf(w, "| %v | %v | %v | %v | %v | %d | %d |\n", o.Mode, o.MeanFCT.Round(time.Microsecond), o.MeanFCTTail.Round(time.Microsecond), o.SmallFCT.Round(time.Microsecond), o.SmallMedian.Round(100*time.Nanosecond), o.Installs, o.Crossings)
	}
}

// Dimensions of the model: 4 one-hot class inputs and one size hint.
const (
	NumInputs = 5
	classes   = 4
	hidden    = 5
)

type flow struct {
	id      int
	arrival float64 // seconds
	size    float64 // bytes
	x       [NumInputs]float32
	phase   int
}

// phaseBase is log10 of the median size of each class in each phase: the
// mapping from class to size is permuted between phases.
var phaseBase = [][classes]float64{
	{3.0, 4.0, 5.0, 6.0},
	{6.0, 5.0, 4.0, 3.0},
	{4.0, 6.0, 3.0, 5.0},
	{5.0, 3.0, 6.0, 4.0},
}

// workload generates the flows of a run (identical across modes).
func workload(cfg Config) []flow {
	r := rand.New(rand.NewPCG(cfg.Seed, 0xf10))
	// Mean size over classes: E[10^(b + 0.5h + n)] with h~U(0,1), n~N(0,0.25^2).
	var mean float64
	for _, b := range phaseBase[0] {
		mean += math.Pow(10, b)
	}
	mean /= classes
	mean *= (math.Pow(10, 0.5) - 1) / (0.5 * math.Ln10) * math.Exp(0.5*math.Pow(0.25*math.Ln10, 2))
	lambda := cfg.Load * cfg.LinkBytesPerSec / mean
	fs := make([]flow, cfg.Flows)
	t := 0.0
	for i := range fs {
		t += r.ExpFloat64() / lambda
		phase := i * cfg.Phases / cfg.Flows
		c := r.IntN(classes)
		h := r.Float64()
		lg := phaseBase[phase%len(phaseBase)][c] + 0.5*h + 0.25*r.NormFloat64()
		f := flow{id: i + 1, arrival: t, size: math.Pow(10, lg), phase: phase}
		f.x[c] = 1
		f.x[classes] = float32(h)
		fs[i] = f
	}
	return fs
}

// target maps a size to the model's output scale.
func target(size float64) float32 { return float32((math.Log10(size) - 4.5) / 1.5) }

func newModel(cfg Config, fs []flow) (*model.MLP, [][]float32, error) {
	m, err := model.NewMLP([]int{NumInputs, hidden, hidden, 1}, []model.Activation{model.ReLU, model.ReLU, model.Identity}, cfg.Seed+1)
	if err != nil {
		return nil, nil, err
	}
	m.LearningRate = 1e-2
	var train []model.Sample
	var calib [][]float32
	for i := range fs {
		if fs[i].phase != 0 {
			break
		}
		x := fs[i].x[:]
		train = append(train, model.Sample{X: x, Y: []float32{target(fs[i].size)}})
		calib = append(calib, x)
	}
	if len(train) == 0 {
		return nil, nil, errors.New("flowsize: no phase-0 flows to pre-train on")
	}
	if _, err := m.Train(train, 40, 32, cfg.Seed+2); err != nil {
		return nil, nil, err
	}
	m.LearningRate = 1e-2
	return m, calib, nil
}

// PretrainedSnapshot trains the model on the first phase of cfg's workload
// and quantizes it as every mode of Run starts from (per-tensor int8).
func PretrainedSnapshot(cfg Config) (*snapshot.Snapshot, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m, calib, err := newModel(cfg, workload(cfg))
	if err != nil {
		return nil, err
	}
	return quant.Quantize(m.Freeze(), calib, quant.Options{})
}

// Run simulates the three modes on the same workload.
func Run(cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	fs := workload(cfg)
	res := Result{Config: cfg}
	for _, mode := range cfg.Modes {
		o, err := simulate(cfg, fs, mode)
		if err != nil {
			return Result{}, fmt.Errorf("flowsize: %v: %w", mode, err)
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	return res, nil
}

type job struct {
	f         *flow
	key       float32 // predicted size (model output)
	remaining float64 // bytes
	ready     float64 // time it may be scheduled
}

// jobHeap orders ready jobs by predicted size, then arrival (container/heap).
type jobHeap []*job

// Len implements heap.Interface.
func (h jobHeap) Len() int { return len(h) }

// Less implements heap.Interface.
func (h jobHeap) Less(i, j int) bool {
	if h[i].key != h[j].key {
		return h[i].key < h[j].key
	}
	return h[i].f.id < h[j].f.id
}

// Swap implements heap.Interface.
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

// Push implements heap.Interface.
func (h *jobHeap) Push(x any) { *h = append(*h, x.(*job)) }

// Pop implements heap.Interface.
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}

// predictor answers a flow's prediction and learns from completed flows.
type predictor interface {
	predict(f *flow, now float64) (key float32, ready float64, err error)
	learn(f *flow, now float64) error
}

func simulate(cfg Config, fs []flow, mode Mode) (Outcome, error) {
	m, calib, err := newModel(cfg, fs)
	if err != nil {
		return Outcome{}, err
	}
	snap, err := quant.Quantize(m.Freeze(), calib, quant.Options{})
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Mode: mode}
	var p predictor
	var lp *liteflowPred
	var sp *slowPred
	switch mode {
	case Static:
		p = &staticPred{s: snap}
	case LiteFlow:
		if lp, err = newLiteflowPred(cfg, m, calib); err != nil {
			return Outcome{}, err
		}
		p = lp
	case SlowPath:
		sp = &slowPred{m: m, cost: cfg.CrossingCost.Seconds(), bs: cfg.BatchSize}
		p = sp
	}
	// Event loop: a preemptive priority server; jobs become schedulable at
	// their ready time (arrival, or arrival plus crossing for the slow path).
	var ready jobHeap
	var pending []*job // predicted but not yet ready, in ready order
	now := 0.0
	next := 0
	var cur *job
	var sum, sumTail, sumSmall float64
	var nTail, nSmall int
	var small []float64
	rate := cfg.LinkBytesPerSec
	for done := 0; done < len(fs); {
		// Next event: arrival, pending becoming ready, or completion.
		tArr, tReady, tDone := math.Inf(1), math.Inf(1), math.Inf(1)
		if next < len(fs) {
			tArr = fs[next].arrival
		}
		if len(pending) > 0 {
			tReady = pending[0].ready
		}
		if cur != nil {
			tDone = now + cur.remaining/rate
		}
		t := math.Min(tArr, math.Min(tReady, tDone))
		if cur != nil {
			cur.remaining -= (t - now) * rate
		}
		now = t
		switch {
		case t == tDone:
			f := cur.f
			fct := now - f.arrival
			sum += fct
			if f.phase > 0 {
				sumTail += fct
				nTail++
			}
			if f.size < 10e3 {
				sumSmall += fct
				nSmall++
				small = append(small, fct)
			}
			done++
			cur = nil
			if err := p.learn(f, now); err != nil {
				return Outcome{}, err
			}
		case t == tReady:
			j := pending[0]
			pending = pending[1:]
			heap.Push(&ready, j)
		default:
			f := &fs[next]
			next++
			key, rdy, err := p.predict(f, now)
			if err != nil {
				return Outcome{}, err
			}
			j := &job{f: f, key: key, remaining: f.size, ready: rdy}
			if rdy <= now {
				heap.Push(&ready, j)
			} else {
				pending = append(pending, j) // ready times are non-decreasing
			}
		}
		// Preempt if a better job is ready.
		if len(ready) > 0 && (cur == nil || ready[0].key < cur.key) {
			if cur != nil {
				heap.Push(&ready, cur)
			}
			cur = heap.Pop(&ready).(*job)
		}
	}
	if lp != nil {
		out.Installs = int(lp.rt.Stats().Installs)
	}
	if sp != nil {
		out.Crossings, out.CrossTime = sp.n, secs(float64(sp.n)*sp.cost)
	}
	n := float64(len(fs))
	out.MeanFCT = secs(sum / n)
	if nTail > 0 {
		out.MeanFCTTail = secs(sumTail / float64(nTail))
	}
	if nSmall > 0 {
		out.SmallFCT = secs(sumSmall / float64(nSmall))
		sort.Float64s(small)
		out.SmallMedian = secs(small[len(small)/2])
	}
	return out, nil
}

func secs(s float64) time.Duration { return time.Duration(s * 1e9) }

type staticPred struct {
	s   *snapshot.Snapshot
	out [1]float32
}

func (p *staticPred) predict(f *flow, now float64) (float32, float64, error) {
	err := p.s.Run(f.x[:], p.out[:])
	return p.out[0], now, err
}

func (p *staticPred) learn(*flow, float64) error { return nil }

type liteflowPred struct {
	rt    *router.Router
	ad    *adapt.Adapter
	batch []model.Sample
	bs    int
	now   float64
	out   [1]float32
}

func newLiteflowPred(cfg Config, m *model.MLP, calib [][]float32) (*liteflowPred, error) {
	p := &liteflowPred{bs: cfg.BatchSize}
	rt, ad, err := apps.ServeAdaptive(m, NumInputs, adapt.Config{
		FidelityThreshold:  0.03,
		MinInstallInterval: 20 * time.Millisecond,
		RecentInputs:       256,
		Now:                func() time.Duration { return secs(p.now) },
	}, calib)
	if err != nil {
		return nil, err
	}
	p.rt, p.ad = rt, ad
	return p, nil
}

func (p *liteflowPred) predict(f *flow, now float64) (float32, float64, error) {
	_, err := p.rt.Query(0, f.x[:], p.out[:])
	return p.out[0], now, err
}

func (p *liteflowPred) learn(f *flow, now float64) error {
	p.now = now
	p.batch = append(p.batch, model.Sample{X: f.x[:], Y: []float32{target(f.size)}})
	if len(p.batch) < p.bs {
		return nil
	}
	_, err := p.ad.Observe(p.batch)
	p.batch = p.batch[:0]
	return err
}

// slowPred answers every query with the userspace float model, which is
// trained on every batch (no snapshot, no gating). Each query waits for the
// daemon (one crossing at a time) and then pays the crossing cost.
type slowPred struct {
	m     *model.MLP
	cost  float64
	busy  float64 // time the daemon is free again
	n     int
	batch []model.Sample
	bs    int
	out   [1]float32
}

func (p *slowPred) predict(f *flow, now float64) (float32, float64, error) {
	start := math.Max(now, p.busy)
	p.busy = start + p.cost
	p.n++
	err := p.m.Evaluate(f.x[:], p.out[:])
	return p.out[0], p.busy, err
}

func (p *slowPred) learn(f *flow, now float64) error {
	p.batch = append(p.batch, model.Sample{X: f.x[:], Y: []float32{target(f.size)}})
	if len(p.batch) < p.bs {
		return nil
	}
	_, err := p.m.Adapt(p.batch)
	p.batch = p.batch[:0]
	return err
}
