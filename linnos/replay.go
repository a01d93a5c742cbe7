package linnos

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"text/tabwriter"
)

// Mode is a replay policy.
type Mode int

// Replay modes.
const (
	// Baseline submits every read to its primary replica.
	Baseline Mode = iota
	// Hedging duplicates a read to the next replica when it has not
	// completed after the hedge delay (the baseline p95 by default).
	Hedging
	// LinnOS asks the predictor before submitting; a read predicted slow is
	// revoked and retried on the next replica, up to MaxRetries times, after
	// which it is forced onto its primary replica without prediction.
	LinnOS
	// LinnOSHedging is LinnOS plus hedging of the read it finally submits.
	LinnOSHedging
)

// Modes lists all modes in report order.
var Modes = []Mode{Baseline, Hedging, LinnOS, LinnOSHedging}

// String returns the mode name used in tables.
func (m Mode) String() string {
	switch m {
	case Baseline:
		return "baseline"
	case Hedging:
		return "hedging"
	case LinnOS:
		return "linnos"
	case LinnOSHedging:
		return "linnos+hedging"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ReplayConfig configures a simulated replay.
type ReplayConfig struct {
	Replicas     int         // replicas of the SSD model (default 3)
	SSD          SSDParams   // device parameters (zero value: DefaultSSDParams)
	Seed         uint64      // device seed; replica r uses Seed+r
	ThresholdUs  float64     // slow threshold for accuracy accounting (required for LinnOS modes)
	HedgeAfterUs float64     // hedge delay; 0 = p95 of the baseline run (ReplayAll) or required (Replay)
	MaxRetries   int         // LinnOS retries on other replicas (default 2; negative = 0)
	InferenceUs  float64     // time added to a read per prediction (default 0)
	Pending      PendingUnit // unit of the pending feature
	Predictor    Predictor   // required for the LinnOS modes
	// Features keeps the per-replica history the 31 inputs come from;
	// nil means an Extractor per replica. laked's demo records it in the
	// lock-free feature registry (package features) instead.
	Features FeatureSource
}

// FeatureSource keeps the feature history of several devices: what an
// Extractor does for one device. dev is the replica index. Replay calls
// Reset(devices) before it starts, so that every run begins with empty
// histories; Complete for every completed read (with the pending count
// the read saw at its arrival, itself included); Features for a read
// arriving with pending outstanding (itself included).
type FeatureSource interface {
	Reset(devices int) error
	Complete(dev, pendingAtArrival, latencyUs int)
	Features(dev, pending int, dst []int32) error
}

// extractors is the default FeatureSource: one Extractor per device.
type extractors []Extractor

func (e *extractors) Reset(devices int) error {
	*e = make(extractors, devices)
	return nil
}

func (e *extractors) Complete(dev, pendingAtArrival, latencyUs int) {
	(*e)[dev].Complete(pendingAtArrival, latencyUs)
}
func (e *extractors) Features(dev, pending int, dst []int32) error {
	(*e)[dev].Features(pending, dst)
	return nil
}

func (c ReplayConfig) withDefaults() ReplayConfig {
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.SSD == (SSDParams{}) {
		c.SSD = DefaultSSDParams()
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 2
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	return c
}

// Samples are training samples collected during a replay: the features of each
// read at submission and its latency in µs.
type Samples struct {
	Features  []int32 // len(LatencyUs)*NumInputs
	LatencyUs []float64
}

// Len returns the number of samples.
func (s *Samples) Len() int { return len(s.LatencyUs) }

// ModeResult is the outcome of one replay.
type ModeResult struct {
	Mode      Mode
	Reads     int
	Latencies []float64 // read latencies in µs, sorted
	AvgUs     float64
	P95Us     float64
	P99Us     float64
	P999Us    float64
	// Prediction accounting (LinnOS modes): a prediction is correct when it
	// says slow exactly when the read would have taken longer than
	// ThresholdUs on that replica at that moment.
	Predictions  int
	Correct      int
	FalseSubmits int // predicted fast, was slow
	FalseRevokes int // predicted slow, was fast
	Revokes      int
	Forced       int
	Hedges       int
}

// Accuracy returns Correct/Predictions (0 without predictions).
func (r *ModeResult) Accuracy() float64 { return ratio(r.Correct, r.Predictions) }

// FalseSubmitRate returns FalseSubmits/Predictions.
func (r *ModeResult) FalseSubmitRate() float64 { return ratio(r.FalseSubmits, r.Predictions) }

// FalseRevokeRate returns FalseRevokes/Predictions.
func (r *ModeResult) FalseRevokeRate() float64 { return ratio(r.FalseRevokes, r.Predictions) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Percentile returns the p-quantile (0..1) of sorted values (nearest rank).
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

type inflight struct {
	done      float64
	lat       float64
	weight    int
	read      bool // only reads enter the LinnOS history
	pendingAt int  // the device's pending count at arrival, this I/O included
}

type inflightHeap []inflight

func (h inflightHeap) Len() int           { return len(h) }
func (h inflightHeap) Less(i, j int) bool { return h[i].done < h[j].done }
func (h inflightHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *inflightHeap) Push(x any)        { *h = append(*h, x.(inflight)) }
func (h *inflightHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type replica struct {
	ssd     *SSD
	dev     int
	ext     FeatureSource
	pending int
	q       inflightHeap
}

// sync retires every I/O that completed by t.
func (r *replica) sync(t float64) {
	for len(r.q) > 0 && r.q[0].done <= t {
		x := heap.Pop(&r.q).(inflight)
		r.pending -= x.weight
		if x.read {
			r.ext.Complete(r.dev, x.pendingAt, int(math.Round(x.lat)))
		}
	}
}

// pendingWith is the pending count a read of size bytes arriving now
// sees, itself included (its features' "pending now").
func (r *replica) pendingWith(size int64, unit PendingUnit) int {
	return r.pending + unit.Weight(size)
}

func (r *replica) submit(t float64, x IO, key uint64, unit PendingUnit) float64 {
	var done float64
	if x.Op == Read {
		done = r.ssd.SubmitRead(t, x.Size, key)
	} else {
		done = r.ssd.SubmitWrite(t, x.Size)
	}
	w := unit.Weight(x.Size)
	r.pending += w
	heap.Push(&r.q, inflight{done: done, lat: done - t, weight: w, read: x.Op == Read, pendingAt: r.pending})
	return done
}

type hedgeEvent struct {
	at      float64
	idx     int     // read index
	replica int     // target replica
	arrival float64 // original arrival
	done    float64 // completion of the submitted read
	x       IO
}

type hedgeHeap []hedgeEvent

func (h hedgeHeap) Len() int           { return len(h) }
func (h hedgeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h hedgeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hedgeHeap) Push(x any)        { *h = append(*h, x.(hedgeEvent)) }
func (h *hedgeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Replay runs trace (sorted by time) through cfg.Replicas simulated SSDs in
// the given mode. Writes go to every replica; a read's primary replica is its
// dev modulo Replicas. When samples is not nil, the features and latency of
// every read submitted to its primary replica are appended to it (use the
// Baseline mode to collect unbiased training data).
func Replay(ctx context.Context, trace []IO, mode Mode, cfg ReplayConfig, samples *Samples) (*ModeResult, error) {
	cfg = cfg.withDefaults()
	if cfg.Replicas < 1 || cfg.Replicas > 64 {
		return nil, fmt.Errorf("linnos: replay: %d replicas not in [1,64]", cfg.Replicas)
	}
	usesModel := mode == LinnOS || mode == LinnOSHedging
	fs := cfg.Features
	if fs == nil {
		fs = new(extractors)
	}
	if err := fs.Reset(cfg.Replicas); err != nil {
		return nil, fmt.Errorf("linnos: replay: features: %w", err)
	}
	usesHedge := mode == Hedging || mode == LinnOSHedging
	if usesModel && cfg.Predictor == nil {
		return nil, errors.New("linnos: replay: LinnOS mode needs a Predictor")
	}
	if usesHedge && !(cfg.HedgeAfterUs > 0) {
		return nil, errors.New("linnos: replay: hedging needs HedgeAfterUs > 0")
	}
	if mode < Baseline || mode > LinnOSHedging {
		return nil, fmt.Errorf("linnos: replay: unknown mode %d", mode)
	}
	reps := make([]*replica, cfg.Replicas)
	for i := range reps {
		s, err := NewSSD(cfg.SSD, cfg.Seed+uint64(i))
		if err != nil {
			return nil, err
		}
		reps[i] = &replica{ssd: s, dev: i, ext: fs}
	}
	res := &ModeResult{Mode: mode}
	var lat []float64
	var hedges hedgeHeap
	feat := make([]int32, NumInputs)
	dec := make([]bool, 1)

	fireHedges := func(upTo float64, inclusive bool) {
		for len(hedges) > 0 && (hedges[0].at < upTo || (inclusive && hedges[0].at <= upTo)) {
			h := heap.Pop(&hedges).(hedgeEvent)
			r := reps[h.replica]
			r.sync(h.at)
			d2 := r.submit(h.at, h.x, uint64(h.idx)<<8|uint64(h.replica)|1<<7, cfg.Pending)
			res.Hedges++
			lat[h.idx] = math.Min(h.done, d2) - h.arrival
		}
	}

	for i, x := range trace {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("linnos: replay: %w", err)
			}
		}
		if i > 0 && x.TsUs < trace[i-1].TsUs {
			return nil, fmt.Errorf("linnos: replay: trace not sorted by time at record %d", i)
		}
		t := x.TsUs
		fireHedges(t, false)
		if x.Op != Read {
			for _, r := range reps {
				r.sync(t)
				r.submit(t, x, 0, cfg.Pending)
			}
			continue
		}
		idx := len(lat)
		lat = append(lat, 0)
		primary := x.Dev % cfg.Replicas
		target := primary
		now := t
		if usesModel {
			tries := 1 + cfg.MaxRetries
			if tries > cfg.Replicas {
				tries = cfg.Replicas
			}
			chosen := -1
			for k := 0; k < tries; k++ {
				rn := (primary + k) % cfg.Replicas
				r := reps[rn]
				r.sync(now)
				if err := r.ext.Features(r.dev, r.pendingWith(x.Size, cfg.Pending), feat); err != nil {
					return nil, fmt.Errorf("linnos: replay: features: %w", err)
				}
				if err := cfg.Predictor.Predict(feat, 1, dec); err != nil {
					return nil, fmt.Errorf("linnos: replay: predict: %w", err)
				}
				truth := r.ssd.PeekRead(now, x.Size, uint64(idx)<<8|uint64(rn)) > cfg.ThresholdUs
				res.Predictions++
				switch {
				case dec[0] == truth:
					res.Correct++
				case truth:
					res.FalseSubmits++
				default:
					res.FalseRevokes++
				}
				now += cfg.InferenceUs
				if !dec[0] {
					chosen = rn
					break
				}
				res.Revokes++
			}
			if chosen < 0 {
				res.Forced++
				chosen = primary
			}
			target = chosen
		}
		r := reps[target]
		r.sync(now)
		if samples != nil && target == primary && !usesModel {
			if err := r.ext.Features(r.dev, r.pendingWith(x.Size, cfg.Pending), feat); err != nil {
				return nil, fmt.Errorf("linnos: replay: features: %w", err)
			}
			samples.Features = append(samples.Features, feat...)
		}
		done := r.submit(now, x, uint64(idx)<<8|uint64(target), cfg.Pending)
		if samples != nil && target == primary && !usesModel {
			samples.LatencyUs = append(samples.LatencyUs, done-now)
		}
		lat[idx] = done - t
		if usesHedge && done-t > cfg.HedgeAfterUs && cfg.Replicas > 1 {
			at := math.Max(t+cfg.HedgeAfterUs, now)
			heap.Push(&hedges, hedgeEvent{at: at, idx: idx, replica: (target + 1) % cfg.Replicas, arrival: t, done: done, x: x})
		}
	}
	fireHedges(math.Inf(1), true)
	res.setLatencies(lat)
	return res, nil
}

// Report holds the results of all modes on one trace.
type Report struct {
	ThresholdUs  float64
	HedgeAfterUs float64
	Results      []*ModeResult
	// Training figures on the held-out 20%, when the report trained a model.
	Training *Metrics
}

// Result returns the result for mode m, or nil.
func (r *Report) Result(m Mode) *ModeResult {
	for _, x := range r.Results {
		if x.Mode == m {
			return x
		}
	}
	return nil
}

// setLatencies sorts lat (read latencies in µs) and fills the result's
// latency figures from it.
func (res *ModeResult) setLatencies(lat []float64) {
	sort.Float64s(lat)
	res.Reads = len(lat)
	res.Latencies = lat
	sum := 0.0
	for _, v := range lat {
		sum += v
	}
	if len(lat) > 0 {
		res.AvgUs = sum / float64(len(lat))
	}
	res.P95Us = Percentile(lat, 0.95)
	res.P99Us = Percentile(lat, 0.99)
	res.P999Us = Percentile(lat, 0.999)
}

// ReplayAll runs the baseline, takes its p95 read latency as the hedge delay
// (unless cfg.HedgeAfterUs is set) and runs the other modes. The LinnOS modes
// are skipped when cfg.Predictor is nil.
func ReplayAll(ctx context.Context, trace []IO, cfg ReplayConfig) (*Report, error) {
	base, err := Replay(ctx, trace, Baseline, cfg, nil)
	if err != nil {
		return nil, err
	}
	if !(cfg.HedgeAfterUs > 0) {
		cfg.HedgeAfterUs = base.P95Us
	}
	rep := &Report{ThresholdUs: cfg.ThresholdUs, HedgeAfterUs: cfg.HedgeAfterUs, Results: []*ModeResult{base}}
	for _, m := range Modes[1:] {
		if (m == LinnOS || m == LinnOSHedging) && cfg.Predictor == nil {
			continue
		}
		r, err := Replay(ctx, trace, m, cfg, nil)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

// WriteTable prints the report as an aligned text table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\treads\tavg µs\tp95 µs\tp99 µs\tp99.9 µs\taccuracy\tfalse submit\tfalse revoke\trevokes\thedges\t\n")
	for _, x := range r.Results {
		acc, fs, fr := "-", "-", "-"
		if x.Predictions > 0 {
			acc = fmt.Sprintf("%.2f%%", 100*x.Accuracy())
			fs = fmt.Sprintf("%.2f%%", 100*x.FalseSubmitRate())
			fr = fmt.Sprintf("%.2f%%", 100*x.FalseRevokeRate())
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%d\t%d\t\n",
			x.Mode, x.Reads, x.AvgUs, x.P95Us, x.P99Us, x.P999Us, acc, fs, fr, x.Revokes, x.Hedges)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	_, err := fmt.Fprintf(w, "slow threshold %.0f µs, hedge after %.0f µs\n", r.ThresholdUs, r.HedgeAfterUs)
	if err == nil && r.Training != nil {
		_, err = fmt.Fprintf(w, "held-out 20%%: accuracy %.2f%%, false submit %.2f%%, false revoke %.2f%% (%d samples)\n",
			100*r.Training.Accuracy, 100*r.Training.FalseSubmitRate, 100*r.Training.FalseRevokeRate, r.Training.N)
	}
	return err
}
