package linnos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// TrainConfig configures Train. Zero values take the defaults in brackets.
type TrainConfig struct {
	Extra           int     // extra hidden layers, 0..2 [0]
	Epochs          int     // passes over the training split [8]
	BatchSize       int     // minibatch size [64]
	LearningRate    float64 // Adam step size [1e-3]
	FalseSubmitCost float64 // loss weight of slow samples (a false submit costs this many false revokes) [5]
	// Percentile, in (0,100), labels reads above this latency percentile
	// slow; 0 finds the inflection point of the latency CDF automatically.
	Percentile float64
	// ThresholdUs, when > 0, overrides Percentile with a fixed threshold.
	ThresholdUs float64
	Seed        uint64 // shuffling, split and initialisation seed
	// Progress, if set, is called after every minibatch with the number of
	// minibatches done and the total.
	Progress func(done, total int)
}

// Metrics are classification figures on a sample set; the rates are
// fractions of N.
type Metrics struct {
	N               int
	Accuracy        float64
	FalseSubmitRate float64 // slow predicted fast
	FalseRevokeRate float64 // fast predicted slow
}

// TrainResult is the outcome of Train.
type TrainResult struct {
	Model       *FloatModel
	ThresholdUs float64 // latency above which a read is labelled slow
	Percentile  float64 // the percentile that threshold corresponds to
	Train, Test Metrics // on the 80% training and 20% held-out splits
}

// InflectionPercentile finds the knee of the latency CDF: on the curve
// (percentile, latency) for percentiles 50..99.9, both axes scaled to [0,1],
// the point farthest below the chord joining the ends (the Kneedle method).
// It returns a percentile in (0,100); values are not modified.
func InflectionPercentile(latencies []float64) (float64, error) {
	if len(latencies) < 100 {
		return 0, fmt.Errorf("linnos: need at least 100 latencies to find the inflection point, have %d", len(latencies))
	}
	s := append([]float64(nil), latencies...)
	sort.Float64s(s)
	const lo, hi, steps = 50.0, 99.9, 500
	y0, y1 := Percentile(s, lo/100), Percentile(s, hi/100)
	if !(y1 > y0) {
		return 90, nil // flat CDF: no knee, fall back to p90
	}
	best, bestP := -1.0, 90.0
	for i := 0; i <= steps; i++ {
		p := lo + (hi-lo)*float64(i)/steps
		x := (p - lo) / (hi - lo)
		y := (Percentile(s, p/100) - y0) / (y1 - y0)
		if d := x - y; d > best {
			best, bestP = d, p
		}
	}
	return bestP, nil
}

type trainSet struct {
	x     []int32
	label []bool
}

// Train trains a float model on samples (features and latencies of reads).
// It labels samples, splits them 80/20 after shuffling, trains with Adam on a
// class-weighted cross-entropy and reports metrics on both splits.
func Train(ctx context.Context, s *Samples, cfg TrainConfig) (*TrainResult, error) {
	if s == nil || len(s.Features) != len(s.LatencyUs)*NumInputs {
		return nil, fmt.Errorf("%w: samples have mismatched features and latencies", ErrShape)
	}
	n := len(s.LatencyUs)
	if n < 100 {
		return nil, fmt.Errorf("linnos: train: need at least 100 samples, have %d", n)
	}
	if err := checkExtra(cfg.Extra); err != nil {
		return nil, err
	}
	if cfg.Epochs == 0 {
		cfg.Epochs = 8
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 64
	}
	if cfg.LearningRate == 0 {
		cfg.LearningRate = 1e-3
	}
	if cfg.FalseSubmitCost == 0 {
		cfg.FalseSubmitCost = 5
	}
	switch {
	case cfg.Epochs < 0 || cfg.Epochs > 10000 || cfg.BatchSize < 1 || cfg.BatchSize > 1<<16:
		return nil, errors.New("linnos: train: bad epochs or batch size")
	case !(cfg.LearningRate > 0 && cfg.LearningRate < 1) || !(cfg.FalseSubmitCost > 0 && cfg.FalseSubmitCost < 1e6):
		return nil, errors.New("linnos: train: bad learning rate or false-submit cost")
	case cfg.Percentile < 0 || cfg.Percentile >= 100 || math.IsNaN(cfg.Percentile):
		return nil, errors.New("linnos: train: percentile must be in (0,100) or 0 for automatic")
	}
	for _, v := range s.LatencyUs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("linnos: train: latency is not finite")
		}
	}
	res := &TrainResult{}
	sorted := append([]float64(nil), s.LatencyUs...)
	sort.Float64s(sorted)
	switch {
	case cfg.ThresholdUs > 0:
		res.ThresholdUs = cfg.ThresholdUs
		res.Percentile = 100 * float64(sort.SearchFloat64s(sorted, cfg.ThresholdUs)) / float64(n)
	default:
		p := cfg.Percentile
		if p == 0 {
			var err error
			if p, err = InflectionPercentile(sorted); err != nil {
				return nil, err
			}
		}
		res.Percentile = p
		res.ThresholdUs = Percentile(sorted, p/100)
	}

	r := rand.New(rand.NewPCG(cfg.Seed, 0x747261696e))
	perm := r.Perm(n)
	split := n * 8 / 10
	mk := func(idx []int) trainSet {
		ts := trainSet{x: make([]int32, 0, len(idx)*NumInputs), label: make([]bool, 0, len(idx))}
		for _, i := range idx {
			ts.x = append(ts.x, s.Features[i*NumInputs:(i+1)*NumInputs]...)
			ts.label = append(ts.label, s.LatencyUs[i] > res.ThresholdUs)
		}
		return ts
	}
	train, test := mk(perm[:split]), mk(perm[split:])

	m, err := NewFloatModel(cfg.Extra)
	if err != nil {
		return nil, err
	}
	initWeights(m, r)
	tr := newTrainer(m, cfg)
	order := make([]int, len(train.label))
	for i := range order {
		order[i] = i
	}
	batches := (len(order) + cfg.BatchSize - 1) / cfg.BatchSize
	total, done := batches*cfg.Epochs, 0
	for ep := 0; ep < cfg.Epochs; ep++ {
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for b := 0; b < batches; b++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("linnos: train: %w", err)
			}
			lo, hi := b*cfg.BatchSize, min((b+1)*cfg.BatchSize, len(order))
			tr.step(train, order[lo:hi])
			done++
			if cfg.Progress != nil {
				cfg.Progress(done, total)
			}
		}
	}
	res.Model = m
	res.Train = evaluate(m, train)
	res.Test = evaluate(m, test)
	return res, nil
}

func initWeights(m *FloatModel, r *rand.Rand) {
	for i := range m.W {
		in, _ := LayerDims(m.Extra, i)
		sd := math.Sqrt(2 / float64(in))
		if i == 0 {
			sd /= 4.5 // inputs are digits 0..9, not unit-scaled
		}
		for k := range m.W[i] {
			m.W[i][k] = float32(r.NormFloat64() * sd)
		}
		for k := range m.B[i] {
			m.B[i][k] = 0
		}
	}
}

func evaluate(m *FloatModel, ts trainSet) Metrics {
	out := make([]int32, len(ts.label))
	if err := m.PredictBatch(ts.x, out); err != nil {
		return Metrics{}
	}
	return metricsOf(out, ts.label)
}

func metricsOf(pred []int32, label []bool) Metrics {
	var ok, fs, fr int
	for i, p := range pred {
		slow := p == 1
		switch {
		case slow == label[i]:
			ok++
		case label[i]:
			fs++
		default:
			fr++
		}
	}
	n := len(label)
	return Metrics{N: n, Accuracy: ratio(ok, n), FalseSubmitRate: ratio(fs, n), FalseRevokeRate: ratio(fr, n)}
}

// trainer holds gradients, Adam moments and activations.
type trainer struct {
	m      *FloatModel
	cfg    TrainConfig
	gw, gb [][]float32
	mw, vw [][]float32
	mb, vb [][]float32
	acts   [][]float32 // activations per layer output (hidden layers)
	deltas [][]float32
	nzIdx  []int
	nzVal  []float32
	t      int
}

func newTrainer(m *FloatModel, cfg TrainConfig) *trainer {
	tr := &trainer{m: m, cfg: cfg, nzIdx: make([]int, 0, NumInputs), nzVal: make([]float32, 0, NumInputs)}
	z := func() [][]float32 {
		out := make([][]float32, len(m.W))
		for i := range m.W {
			out[i] = make([]float32, len(m.W[i]))
		}
		return out
	}
	zb := func() [][]float32 {
		out := make([][]float32, len(m.B))
		for i := range m.B {
			out[i] = make([]float32, len(m.B[i]))
		}
		return out
	}
	tr.gw, tr.mw, tr.vw = z(), z(), z()
	tr.gb, tr.mb, tr.vb = zb(), zb(), zb()
	for i := 0; i < len(m.W); i++ {
		_, out := LayerDims(m.Extra, i)
		tr.acts = append(tr.acts, make([]float32, out))
		tr.deltas = append(tr.deltas, make([]float32, out))
	}
	return tr
}

// step runs forward/backward over the samples idx of ts and applies one Adam
// update.
func (tr *trainer) step(ts trainSet, idx []int) {
	m := tr.m
	L := len(m.W)
	for i := range tr.gw {
		clear(tr.gw[i])
		clear(tr.gb[i])
	}
	var wsum float32
	for _, si := range idx {
		x := ts.x[si*NumInputs : (si+1)*NumInputs]
		nzIdx, nzVal := tr.nzIdx[:0], tr.nzVal[:0]
		for k, v := range x {
			if v != 0 {
				nzIdx = append(nzIdx, k)
				nzVal = append(nzVal, float32(v))
			}
		}
		// forward
		for l := 0; l < L; l++ {
			in, out := LayerDims(m.Extra, l)
			a := tr.acts[l]
			w, b := m.W[l], m.B[l]
			for j := 0; j < out; j++ {
				s := b[j]
				row := w[j*in : (j+1)*in]
				if l == 0 {
					for q, k := range nzIdx {
						s += nzVal[q] * row[k]
					}
				} else {
					prev := tr.acts[l-1]
					for k, v := range prev[:in] {
						if v != 0 {
							s += v * row[k]
						}
					}
				}
				if l < L-1 && s < 0 {
					s = 0
				}
				a[j] = s
			}
		}
		// softmax cross-entropy on the two logits, class-weighted
		o := tr.acts[L-1]
		mx := max(o[0], o[1])
		e0, e1 := math.Exp(float64(o[0]-mx)), math.Exp(float64(o[1]-mx))
		p1 := float32(e1 / (e0 + e1))
		y := float32(0)
		wt := float32(1)
		if ts.label[si] {
			y = 1
			wt = float32(tr.cfg.FalseSubmitCost)
		}
		wsum += wt
		d := tr.deltas[L-1]
		d[1] = wt * (p1 - y)
		d[0] = -d[1]
		// backward
		for l := L - 1; l >= 0; l-- {
			in, out := LayerDims(m.Extra, l)
			d := tr.deltas[l]
			gw, gb := tr.gw[l], tr.gb[l]
			for j := 0; j < out; j++ {
				dj := d[j]
				if dj == 0 {
					continue
				}
				gb[j] += dj
				g := gw[j*in : (j+1)*in]
				if l == 0 {
					for q, k := range nzIdx {
						g[k] += dj * nzVal[q]
					}
				} else {
					prev := tr.acts[l-1]
					for k, v := range prev[:in] {
						if v != 0 {
							g[k] += dj * v
						}
					}
				}
			}
			if l == 0 {
				break
			}
			prev := tr.acts[l-1]
			pd := tr.deltas[l-1]
			w := m.W[l]
			clear(pd)
			for j := 0; j < out; j++ {
				dj := d[j]
				if dj == 0 {
					continue
				}
				row := w[j*in : (j+1)*in]
				for k := range pd[:in] {
					pd[k] += dj * row[k]
				}
			}
			for k, v := range prev[:in] {
				if v <= 0 {
					pd[k] = 0
				}
			}
		}
	}
	// Adam
	tr.t++
	const b1, b2, eps = 0.9, 0.999, 1e-8
	lr := tr.cfg.LearningRate * math.Sqrt(1-math.Pow(b2, float64(tr.t))) / (1 - math.Pow(b1, float64(tr.t)))
	inv := 1 / wsum
	upd := func(p, g, mm, vv []float32) {
		for i := range p {
			gi := g[i] * inv
			mm[i] = b1*mm[i] + (1-b1)*gi
			vv[i] = b2*vv[i] + (1-b2)*gi*gi
			p[i] -= float32(lr * float64(mm[i]) / (math.Sqrt(float64(vv[i])) + eps))
		}
	}
	for l := range m.W {
		upd(m.W[l], tr.gw[l], tr.mw[l], tr.vw[l])
		upd(m.B[l], tr.gb[l], tr.mb[l], tr.vb[l])
	}
	m.WeightsChanged()
}
