package aurora

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
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

// Segment is one environment: link capacity, base RTT, random
// (non-congestive) loss and delay jitter for a duration.
type Segment struct {
	Duration time.Duration
	Mbps     float64
	RTT      time.Duration
	Loss     float64       // fraction of sent data lost at random (e.g. a radio link)
	Jitter   time.Duration // standard deviation of random extra delay
}

// DefaultSchedule is the environment sequence used when Config.Schedule is
// empty: the first segment is the pre-training environment.
var DefaultSchedule = []Segment{
	{8 * time.Second, 20, 30 * time.Millisecond, 0, 0},
	{8 * time.Second, 80, 30 * time.Millisecond, 0.02, 0},
	{8 * time.Second, 10, 60 * time.Millisecond, 0, 3 * time.Millisecond},
	{8 * time.Second, 60, 20 * time.Millisecond, 0.01, 0},
	{8 * time.Second, 120, 40 * time.Millisecond, 0.03, 2 * time.Millisecond},
	{8 * time.Second, 30, 80 * time.Millisecond, 0, 0},
}

// Config describes a simulation. Zero fields take the defaults noted.
type Config struct {
	Seed     uint64
	Schedule []Segment // default DefaultSchedule
	// BufferBytes is the bottleneck buffer (default 375 KB, 100 ms at 30 Mbit/s).
	BufferBytes float64
	// CrossingCost is the slow path's per-decision kernel/user round trip
	// (default 20µs: waking the userspace daemon, two context switches,
	// copying 30 features and the result).
	CrossingCost time.Duration
	// BatchSize is the number of intervals per training batch (default 16).
	BatchSize int
	// Noise is the standard deviation of capacity fluctuation around the
	// segment's value (default 0.05, relative).
	Noise float64
	// PretrainDuration is how long the teacher explores the first
	// environment to collect pre-training samples (default 20s, in two
	// episodes), and PretrainEpochs how many passes training makes over
	// them (default 25).
	PretrainDuration time.Duration
	PretrainEpochs   int
	// Modes selects the modes to run, in order (default all three).
	Modes []Mode
}

func (c *Config) defaults() error {
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = 375e3
	}
	if c.CrossingCost == 0 {
		c.CrossingCost = 20 * time.Microsecond
	}
	if c.BatchSize == 0 {
		c.BatchSize = 16
	}
	if c.Noise == 0 {
		c.Noise = 0.05
	}
	if len(c.Modes) == 0 {
		c.Modes = []Mode{Static, LiteFlow, SlowPath}
	}
	for _, m := range c.Modes {
		if !m.Valid() {
			return fmt.Errorf("aurora: unknown mode %d", int(m))
		}
	}
	if c.PretrainDuration == 0 {
		c.PretrainDuration = 20 * time.Second
	}
	if c.PretrainEpochs == 0 {
		c.PretrainEpochs = 25
	}
	for i, s := range c.Schedule {
		if s.Duration <= 0 || s.Duration > time.Hour || !(s.Mbps > 0.1 && s.Mbps < 1e5) || s.RTT < time.Millisecond || s.RTT > 10*time.Second ||
			!(s.Loss >= 0 && s.Loss < 0.5) || s.Jitter < 0 || s.Jitter > time.Second {
			return fmt.Errorf("aurora: segment %d out of range: %+v", i, s)
		}
	}
	if !(c.BufferBytes > 0) || c.CrossingCost < 0 || c.BatchSize < 1 || !(c.Noise >= 0 && c.Noise < 0.5) ||
		c.PretrainDuration < time.Second || c.PretrainDuration > time.Hour || c.PretrainEpochs < 1 || c.PretrainEpochs > 1000 {
		return fmt.Errorf("aurora: bad config (buffer %v, crossing %v, batch %d, noise %v, pretrain %v x %d)", c.BufferBytes, c.CrossingCost, c.BatchSize, c.Noise, c.PretrainDuration, c.PretrainEpochs)
	}
	return nil
}

// Outcome is the result of one mode.
type Outcome struct {
	Mode        Mode
	GoodputMbps float64       // delivered (not dropped) data rate
	Utilization float64       // goodput / mean capacity
	QueueDelay  time.Duration // mean queueing delay of delivered data
	LossRate    float64       // dropped / sent
	Installs    int
	Crossings   int
	CrossTime   time.Duration
	// SegmentUtil is the utilization in each environment of the schedule.
	SegmentUtil []float64
	// SegmentLoss is the loss rate (dropped / sent) in each environment.
	SegmentLoss []float64
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
	var dur time.Duration
	for _, s := range r.Config.Schedule {
		dur += s.Duration
	}
	fmt.Fprintf(w, "aurora congestion control: %d environments over %v, crossing %v\n\n", len(r.Config.Schedule), dur, r.Config.CrossingCost)
	fmt.Fprintf(w, "| mode | goodput (Mbit/s) | utilization | per-environment utilization | mean queueing delay | loss | installs | crossings (time) |\n|---|---|---|---|---|---|---|---|\n")
	for _, o := range r.Outcomes {
		var segs []string
		for _, u := range o.SegmentUtil {
			segs = append(segs, fmt.Sprintf("%.2f", u))
		}
		fmt.Fprintf(w, "| %v | %.1f | %.3f | %s | %v | %.4f | %d | %d (%v) |\n", o.Mode, o.GoodputMbps, o.Utilization, strings.Join(segs, " "), o.QueueDelay.Round(100*time.Microsecond), o.LossRate, o.Installs, o.Crossings, o.CrossTime)
	}
}

// Model shape.
const (
	History   = 10
	Features  = 3
	NumInputs = History * Features
	delta     = 0.3 // rate step per unit action
	tick      = time.Millisecond
	// The sender's rate is bounded by its NIC (1 Gbit/s) and a floor of
	// 80 kbit/s.
	minRate = 10e3
	maxRate = 125e6
)

// NewPolicy returns an untrained policy network (30-32-16-1, tanh).
func NewPolicy(seed uint64) (*model.MLP, error) {
	return model.NewMLP([]int{NumInputs, 32, 16, 1}, []model.Activation{model.Tanh, model.Tanh, model.Identity}, seed)
}

// link is the fluid bottleneck.
type link struct {
	cfg      Config
	rng      *rand.Rand
	seg      int
	segEnd   time.Duration
	now      time.Duration
	capBps   float64 // bytes per second now
	rtt      time.Duration
	queue    float64 // bytes
	minDelay float64
}

func newLink(cfg Config, seed uint64) *link {
	l := &link{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0xa11)), minDelay: math.Inf(1)}
	l.enter(0)
	return l
}

func (l *link) enter(i int) {
	l.seg = i
	l.segEnd += l.cfg.Schedule[i].Duration
	l.rtt = l.cfg.Schedule[i].RTT
	l.minDelay = math.Inf(1) // a path change resets the min-RTT estimate
}

func (l *link) done() bool { return l.seg >= len(l.cfg.Schedule) }

// interval is what the sender observes over one monitor interval.
type interval struct {
	sent, delivered, dropped float64
	delaySum, delayN         float64
	firstDelay, lastDelay    float64
	capSum                   float64
	ticks                    int
}

// step advances the link by one tick at the given sending rate (bytes/s).
func (l *link) step(rate float64, iv *interval) {
	seg := l.cfg.Schedule[l.seg]
	l.capBps = seg.Mbps * 125e3 * (1 + l.cfg.Noise*l.rng.NormFloat64())
	l.capBps = math.Max(l.capBps, 0.2*seg.Mbps*125e3)
	dt := tick.Seconds()
	in := rate * dt
	var randomLoss float64
	if seg.Loss > 0 {
		randomLoss = in * seg.Loss
	}
	l.queue += in - randomLoss
	served := math.Min(l.queue, l.capBps*dt)
	l.queue -= served
	var dropped float64
	if l.queue > l.cfg.BufferBytes {
		dropped = l.queue - l.cfg.BufferBytes
		l.queue = l.cfg.BufferBytes
	}
	delay := l.rtt.Seconds() + l.queue/l.capBps
	if seg.Jitter > 0 {
		delay += math.Abs(l.rng.NormFloat64()) * seg.Jitter.Seconds()
	}
	l.minDelay = math.Min(l.minDelay, delay)
	iv.sent += in
	iv.delivered += served
	iv.dropped += dropped + randomLoss
	iv.delaySum += (l.queue / l.capBps) * served
	iv.delayN += served
	if iv.ticks == 0 {
		iv.firstDelay = delay
	}
	iv.lastDelay = delay
	iv.capSum += l.capBps
	iv.ticks++
	l.now += tick
	if l.now >= l.segEnd {
		if l.seg+1 < len(l.cfg.Schedule) {
			l.enter(l.seg + 1)
		} else {
			l.seg++
		}
	}
}

// features turns one interval into the three Aurora statistics.
func (l *link) features(iv *interval) [Features]float32 {
	dur := float64(iv.ticks) * tick.Seconds()
	grad := (iv.lastDelay - iv.firstDelay) / dur
	meanDelay := (iv.firstDelay + iv.lastDelay) / 2
	latRatio := meanDelay / l.minDelay
	sendRatio := (iv.sent + 1) / (iv.delivered + 1)
	clip := func(v, lo, hi float64) float32 { return float32(math.Max(lo, math.Min(hi, v))) }
	return [Features]float32{clip(grad, -2, 2), clip(latRatio-1, 0, 4), clip(sendRatio-1, 0, 4)}
}

// targetAction is the trainer's hindsight label for the interval: move the
// rate to 95% of the capacity seen, minus draining the queue in two RTTs.
func targetAction(rate float64, iv *interval, queue float64, rtt time.Duration) float32 {
	capacity := iv.capSum / float64(iv.ticks)
	goal := math.Max(0.1*capacity, 0.95*capacity-queue/(2*rtt.Seconds()))
	var a float64
	if goal >= rate {
		a = (goal/rate - 1) / delta
	} else {
		a = -(rate/goal - 1) / delta
	}
	return float32(math.Max(-1, math.Min(1, a)))
}

func applyAction(rate float64, a float32, minRate, maxRate float64) float64 {
	av := math.Max(-1, math.Min(1, float64(a)))
	if math.IsNaN(av) {
		av = 0
	}
	if av >= 0 {
		rate *= 1 + delta*av
	} else {
		rate /= 1 - delta*av
	}
	return math.Max(minRate, math.Min(maxRate, rate))
}

// policy answers decisions and learns from labelled intervals.
type policy interface {
	decide(x []float32, now time.Duration) (a float32, delay time.Duration, err error)
	learn(s model.Sample, now time.Duration) error
}

// episode runs the sender against the link with the given policy. When
// explore > 0 the teacher's action plus noise drives the rate instead (for
// pre-training data) and the samples are returned.
func episode(cfg Config, seed uint64, p policy, explore float64) (Outcome, []model.Sample, error) {
	l := newLink(cfg, seed)
	r := rand.New(rand.NewPCG(seed, 0xe7))
	rate := cfg.Schedule[0].Mbps * 125e3 * 0.5
	hist := make([]float32, NumInputs)
	var samples []model.Sample
	var out Outcome
	var sent, delivered, dropped, delayW, capSum float64
	var ticks int
	var segDel, segCap, segSent, segDrop []float64
	var pendingA float32
	var pendingAt time.Duration = -1
	for !l.done() {
		miTicks := max(int(l.rtt/tick), 10)
		var iv interval
		seg := l.seg
		for i := 0; i < miTicks && !l.done(); i++ {
			if pendingAt >= 0 && l.now >= pendingAt {
				rate = applyAction(rate, pendingA, minRate, maxRate)
				pendingAt = -1
			}
			l.step(rate, &iv)
		}
		for len(segDel) <= seg {
			segDel, segCap = append(segDel, 0), append(segCap, 0)
			segSent, segDrop = append(segSent, 0), append(segDrop, 0)
		}
		segDel[seg] += iv.delivered
		segSent[seg] += iv.sent
		segDrop[seg] += iv.dropped
		segCap[seg] += iv.capSum * tick.Seconds()
		sent += iv.sent
		delivered += iv.delivered
		dropped += iv.dropped
		delayW += iv.delaySum
		capSum += iv.capSum
		ticks += iv.ticks
		if iv.ticks == 0 {
			break
		}
		f := l.features(&iv)
		copy(hist[Features:], hist[:NumInputs-Features])
		copy(hist[:Features], f[:])
		x := append([]float32(nil), hist...)
		label := targetAction(rate, &iv, l.queue, l.rtt)
		s := model.Sample{X: x, Y: []float32{label}}
		if explore > 0 {
			samples = append(samples, s)
			rate = applyAction(rate, label+float32(explore*r.NormFloat64()), minRate, maxRate)
			continue
		}
		if err := p.learn(s, l.now); err != nil {
			return Outcome{}, nil, err
		}
		a, d, err := p.decide(x, l.now)
		if err != nil {
			return Outcome{}, nil, err
		}
		if d <= 0 {
			rate = applyAction(rate, a, minRate, maxRate)
		} else {
			pendingA, pendingAt = a, l.now+d
		}
	}
	secs := float64(ticks) * tick.Seconds()
	out.GoodputMbps = delivered / secs / 125e3
	out.Utilization = delivered / (capSum * tick.Seconds())
	if delivered > 0 {
		out.QueueDelay = time.Duration(delayW / delivered * 1e9)
	}
	if sent > 0 {
		out.LossRate = dropped / sent
	}
	for i := range segDel {
		out.SegmentUtil = append(out.SegmentUtil, segDel[i]/math.Max(segCap[i], 1))
		out.SegmentLoss = append(out.SegmentLoss, segDrop[i]/math.Max(segSent[i], 1))
	}
	return out, samples, nil
}

// Pretrain trains a policy on the first environment of the schedule, from
// the teacher's actions with exploration noise.
func Pretrain(cfg Config) (*model.MLP, [][]float32, error) {
	if err := cfg.defaults(); err != nil {
		return nil, nil, err
	}
	pre := cfg
	pre.Schedule = []Segment{cfg.Schedule[0]}
	pre.Schedule[0].Duration = cfg.PretrainDuration / 2
	var all []model.Sample
	for k := uint64(0); k < 2; k++ {
		_, s, err := episode(pre, cfg.Seed*7+k+100, nil, 0.5)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, s...)
	}
	m, err := NewPolicy(cfg.Seed + 1)
	if err != nil {
		return nil, nil, err
	}
	m.LearningRate = 3e-3
	if _, err := m.Train(all, cfg.PretrainEpochs, 32, cfg.Seed+2); err != nil {
		return nil, nil, err
	}
	m.LearningRate = 2e-3
	calib := make([][]float32, len(all))
	for i, s := range all {
		calib[i] = s.X
	}
	return m, calib, nil
}

// PretrainedSnapshot pre-trains the policy on cfg's first environment and
// quantizes it as Run's static mode ships it (per-channel int8): the
// snapshot a kernel datapath starts from. It also returns the float model
// and its calibration inputs, from which adaptation continues.
func PretrainedSnapshot(cfg Config) (*snapshot.Snapshot, *model.MLP, [][]float32, error) {
	if err := cfg.defaults(); err != nil {
		return nil, nil, nil, err
	}
	pre, calib, snap, err := pretrainedSnapshot(cfg)
	return snap, pre, calib, err
}

func pretrainedSnapshot(cfg Config) (*model.MLP, [][]float32, *snapshot.Snapshot, error) {
	pre, calib, err := Pretrain(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("aurora: pretrain: %w", err)
	}
	snap, err := quant.Quantize(pre, calib, quant.Options{PerChannel: true})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("aurora: quantize: %w", err)
	}
	return pre, calib, snap, nil
}

// Run simulates the three modes on the same schedule and seed.
func Run(cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Config: cfg}
	pre, calib, snap, err := pretrainedSnapshot(cfg)
	if err != nil {
		return Result{}, err
	}
	for _, mode := range cfg.Modes {
		m := pre.Freeze() // each mode adapts its own copy
		var p policy
		var lp *liteflowPolicy
		var sp *slowPolicy
		switch mode {
		case Static:
			p = &staticPolicy{s: snap}
		case LiteFlow:
			if lp, err = newLiteflowPolicy(cfg, m, calib); err != nil {
				return Result{}, err
			}
			p = lp
		case SlowPath:
			sp = &slowPolicy{m: m, cost: cfg.CrossingCost, bs: cfg.BatchSize, rp: newReplay(cfg.Seed)}
			p = sp
		}
		o, _, err := episode(cfg, cfg.Seed, p, 0)
		if err != nil {
			return Result{}, fmt.Errorf("aurora: %v: %w", mode, err)
		}
		o.Mode = mode
		if lp != nil {
			o.Installs = int(lp.rt.Stats().Installs)
		}
		if sp != nil {
			o.Crossings, o.CrossTime = sp.n, time.Duration(sp.n)*sp.cost
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	return res, nil
}

type staticPolicy struct {
	s   *snapshot.Snapshot
	out [1]float32
}

func (p *staticPolicy) decide(x []float32, _ time.Duration) (float32, time.Duration, error) {
	err := p.s.Run(x, p.out[:])
	return p.out[0], 0, err
}

func (p *staticPolicy) learn(model.Sample, time.Duration) error { return nil }

type liteflowPolicy struct {
	rt    *router.Router
	ad    *adapt.Adapter
	batch []model.Sample
	bs    int
	now   time.Duration
	out   [1]float32
	rp    *replay
}

func newLiteflowPolicy(cfg Config, m *model.MLP, calib [][]float32) (*liteflowPolicy, error) {
	p := &liteflowPolicy{bs: cfg.BatchSize, rp: newReplay(cfg.Seed)}
	rt, ad, err := apps.ServeAdaptive(m, NumInputs, adapt.Config{
		FidelityThreshold:  0.05,
		MinInstallInterval: 200 * time.Millisecond,
		RecentInputs:       256,
		Quant:              quant.Options{PerChannel: true},
		Steps:              trainSteps,
		Window:             4,
		StabilityFraction:  0.5,
		Now:                func() time.Duration { return p.now },
	}, calib)
	if err != nil {
		return nil, err
	}
	p.rt, p.ad = rt, ad
	return p, nil
}

func (p *liteflowPolicy) decide(x []float32, _ time.Duration) (float32, time.Duration, error) {
	// Flow id 0: each monitor interval's decision is its own query, so the
	// long-lived connection picks up every installed snapshot. (Pinning the
	// connection in the flow cache would keep it on its first snapshot until
	// it idles past the TTL.)
	_, err := p.rt.Query(0, x, p.out[:])
	return p.out[0], 0, err
}

func (p *liteflowPolicy) learn(s model.Sample, now time.Duration) error {
	p.now = now
	p.batch = append(p.batch, s)
	if len(p.batch) < p.bs {
		return nil
	}
	_, err := p.ad.Observe(p.rp.mix(p.batch))
	p.batch = p.batch[:0]
	return err
}

// slowPolicy answers each decision with the userspace float model, trained
// on every batch; the decision takes effect after the crossing cost.
type slowPolicy struct {
	m     *model.MLP
	cost  time.Duration
	n     int
	batch []model.Sample
	bs    int
	out   [1]float32
	rp    *replay
}

func (p *slowPolicy) decide(x []float32, _ time.Duration) (float32, time.Duration, error) {
	p.n++
	err := p.m.Evaluate(x, p.out[:])
	return p.out[0], p.cost, err
}

func (p *slowPolicy) learn(s model.Sample, _ time.Duration) error {
	p.batch = append(p.batch, s)
	if len(p.batch) < p.bs {
		return nil
	}
	b := p.rp.mix(p.batch)
	p.batch = p.batch[:0]
	for i := 0; i < trainSteps; i++ {
		if _, err := p.m.Adapt(b); err != nil {
			return err
		}
	}
	return nil
}

// replay mixes each batch of new samples with older ones from a bounded
// buffer: consecutive monitor intervals are strongly correlated, and one
// optimiser step on them alone forgets the rest of the state space.
type replay struct {
	buf []model.Sample
	n   int
	rng *rand.Rand
	out []model.Sample
}

// trainSteps is the number of optimiser steps per batch in both adaptive
// modes.
const trainSteps = 8

const (
	replaySize  = 1024
	replayExtra = 3 // old samples per new sample
)

func newReplay(seed uint64) *replay {
	return &replay{rng: rand.New(rand.NewPCG(seed, 0x4e9))}
}

func (r *replay) mix(batch []model.Sample) []model.Sample {
	r.out = append(r.out[:0], batch...)
	if len(r.buf) > 0 {
		for i := 0; i < replayExtra*len(batch); i++ {
			r.out = append(r.out, r.buf[r.rng.IntN(len(r.buf))])
		}
	}
	for _, s := range batch {
		if len(r.buf) < replaySize {
			r.buf = append(r.buf, s)
		} else {
			r.buf[r.n%replaySize] = s
		}
		r.n++
	}
	return r.out
}
