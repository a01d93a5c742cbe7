package adapt

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// Installer receives snapshots; *router.Router implements it.
type Installer interface {
	Install(s *snapshot.Snapshot) (version uint64, err error)
}

// Config tunes the adapter.
type Config struct {
	// Window is the number of batches over which stability is judged
	// (default 8).
	Window int
	// StabilityFraction: the model is stable when (max-min)/mean of the
	// smoothed training losses in the window is at most this (default
	// 0.25).
	StabilityFraction float64
	// Smoothing is the weight of a new batch loss in the exponential moving
	// average that stability looks at (default 0.2; 1 disables smoothing).
	// Mini-batch losses are noisy; without smoothing small batches are
	// rarely judged stable.
	Smoothing float64
	// FidelityThreshold: install only when the mean absolute difference
	// between the new model and the installed snapshot on recent inputs
	// exceeds this (required, > 0; in output units).
	FidelityThreshold float64
	// Steps is the number of training steps taken on each batch (default
	// 1). Userspace has time to train more than once per batch; with small,
	// correlated batches several steps track a changed environment faster.
	Steps int
	// MinInstallInterval rate-limits installs (default 1s of Now time).
	MinInstallInterval time.Duration
	// MaxStale, when positive, overrides the stability rule: if the
	// installed snapshot is older than MaxStale and the fidelity loss
	// exceeds the threshold, a new snapshot is installed even though the
	// training loss is not stable. Without it, a bad snapshot that makes the
	// training data (and so the loss) swing can stay installed
	// indefinitely. Zero disables it (the rules of the issue, verbatim).
	MaxStale time.Duration
	// RecentInputs is how many recent inputs are kept for fidelity and as
	// the calibration set of new snapshots (default 512).
	RecentInputs int
	// Quant are the quantization options of new snapshots (Generation is
	// set by the adapter).
	Quant quant.Options
	// Now is the clock for rate limiting (default wall clock since New).
	Now func() time.Duration
}

// Decision reports what Observe did with one batch.
type Decision struct {
	Loss      float64 // training loss of the batch, before the update
	Variation float64 // (max-min)/mean loss over the window; NaN until the window is full
	Stable    bool
	Fidelity  float64 // mean |new model - installed snapshot|; NaN if not computed
	Installed bool
	Version   uint64 // the installed version when Installed
	Reason    string // why it did or did not install
}

// Reasons reported in Decision.Reason.
const (
	ReasonUnstable    = "unstable"
	ReasonFaithful    = "fidelity within threshold"
	ReasonRateLimited = "rate limited"
	ReasonInstalled   = "installed"
	ReasonStale       = "installed (stale override)"
)

// ErrNoSnapshot is returned by Observe before Bootstrap.
var ErrNoSnapshot = errors.New("adapt: no snapshot installed yet (call Bootstrap)")

// Adapter runs the adaptation loop for one model. It is not safe for
// concurrent use: feed it from one goroutine.
type Adapter struct {
	m    model.Model
	inst Installer
	cfg  Config

	losses      []float64
	lossN       int
	ema         float64
	recent      [][]float32
	recentN     int
	installed   *snapshot.Snapshot
	lastInstall time.Duration
	generation  uint64
	out1, out2  []float32
}

// New returns an adapter for m that installs into inst.
func New(m model.Model, inst Installer, cfg Config) (*Adapter, error) {
	if m == nil || inst == nil {
		return nil, errors.New("adapt: nil model or installer")
	}
	if cfg.Window == 0 {
		cfg.Window = 8
	}
	if cfg.StabilityFraction == 0 {
		cfg.StabilityFraction = 0.25
	}
	if cfg.Steps == 0 {
		cfg.Steps = 1
	}
	if cfg.Smoothing == 0 {
		cfg.Smoothing = 0.2
	}
	if cfg.MinInstallInterval == 0 {
		cfg.MinInstallInterval = time.Second
	}
	if cfg.RecentInputs == 0 {
		cfg.RecentInputs = 512
	}
	if cfg.Window < 2 || cfg.StabilityFraction < 0 || math.IsNaN(cfg.StabilityFraction) || !(cfg.Smoothing > 0 && cfg.Smoothing <= 1) || cfg.RecentInputs < 1 || cfg.MinInstallInterval < 0 || cfg.MaxStale < 0 || cfg.Steps < 1 || cfg.Steps > 1000 {
		return nil, fmt.Errorf("adapt: bad config (window %d, stability %v, recent %d, interval %v)", cfg.Window, cfg.StabilityFraction, cfg.RecentInputs, cfg.MinInstallInterval)
	}
	if !(cfg.FidelityThreshold > 0) || math.IsInf(cfg.FidelityThreshold, 0) {
		return nil, fmt.Errorf("adapt: fidelity threshold %v must be positive and finite", cfg.FidelityThreshold)
	}
	if cfg.Now == nil {
		start := time.Now()
		cfg.Now = func() time.Duration { return time.Since(start) }
	}
	f := m.Freeze()
	return &Adapter{m: m, inst: inst, cfg: cfg, losses: make([]float64, cfg.Window),
		out1: make([]float32, f.OutputDim()), out2: make([]float32, f.OutputDim())}, nil
}

// Bootstrap quantizes the current model with calib as the representative
// set and installs it unconditionally.
func (a *Adapter) Bootstrap(calib [][]float32) (uint64, error) {
	for _, x := range calib {
		a.remember(x)
	}
	return a.install()
}

func (a *Adapter) remember(x []float32) {
	if len(a.recent) < a.cfg.RecentInputs {
		a.recent = append(a.recent, append([]float32(nil), x...))
	} else {
		copy(a.recent[a.recentN%a.cfg.RecentInputs], x)
	}
	a.recentN++
}

func (a *Adapter) install() (uint64, error) {
	a.generation++
	opt := a.cfg.Quant
	opt.Generation = a.generation
	s, err := quant.Quantize(a.m.Freeze(), a.recent, opt)
	if err != nil {
		return 0, fmt.Errorf("adapt: quantize: %w", err)
	}
	v, err := a.inst.Install(s)
	if err != nil {
		return 0, fmt.Errorf("adapt: install: %w", err)
	}
	a.installed = s
	a.lastInstall = a.cfg.Now()
	return v, nil
}

// Stability returns the variation, (max-min)/mean, of the smoothed training
// loss over the window and whether it is within the configured fraction
// (false until the window is full).
func (a *Adapter) Stability() (variation float64, stable bool) {
	if a.lossN < a.cfg.Window {
		return math.NaN(), false
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range a.losses {
		lo, hi, sum = math.Min(lo, l), math.Max(hi, l), sum+l
	}
	mean := sum / float64(len(a.losses))
	if mean <= 0 {
		return 0, true
	}
	v := (hi - lo) / mean
	return v, v <= a.cfg.StabilityFraction
}

// Fidelity returns mean |model(x) - snapshot(x)| over the recent inputs for
// the current float model and the installed snapshot.
func (a *Adapter) Fidelity() (float64, error) {
	if a.installed == nil {
		return 0, ErrNoSnapshot
	}
	var sum float64
	var n int
	for _, x := range a.recent {
		if err := a.m.Evaluate(x, a.out1); err != nil {
			return 0, fmt.Errorf("adapt: fidelity: %w", err)
		}
		if err := a.installed.Run(x, a.out2); err != nil {
			return 0, fmt.Errorf("adapt: fidelity: %w", err)
		}
		for k := range a.out1 {
			sum += math.Abs(float64(a.out1[k] - a.out2[k]))
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return sum / float64(n), nil
}

// Installed returns the snapshot most recently installed (nil before
// Bootstrap). It must not be modified.
func (a *Adapter) Installed() *snapshot.Snapshot { return a.installed }

// Observe trains on one batch and installs a new snapshot if the rules
// allow: stable (or, with MaxStale, the installed snapshot too old),
// fidelity loss above threshold, rate limit respected.
func (a *Adapter) Observe(batch []model.Sample) (Decision, error) {
	d := Decision{Variation: math.NaN(), Fidelity: math.NaN()}
	if a.installed == nil {
		return d, ErrNoSnapshot
	}
	if len(batch) == 0 {
		return d, errors.New("adapt: empty batch")
	}
	loss, err := a.m.Adapt(batch)
	if err != nil {
		return d, fmt.Errorf("adapt: train: %w", err)
	}
	for i := 1; i < a.cfg.Steps; i++ {
		if _, err := a.m.Adapt(batch); err != nil {
			return d, fmt.Errorf("adapt: train: %w", err)
		}
	}
	for _, s := range batch {
		a.remember(s.X)
	}
	d.Loss = loss
	if a.lossN == 0 {
		a.ema = loss
	} else {
		a.ema += a.cfg.Smoothing * (loss - a.ema)
	}
	a.losses[a.lossN%a.cfg.Window] = a.ema
	a.lossN++
	d.Variation, d.Stable = a.Stability()
	stale := a.cfg.MaxStale > 0 && a.cfg.Now()-a.lastInstall > a.cfg.MaxStale
	if !d.Stable && !stale {
		d.Reason = ReasonUnstable
		return d, nil
	}
	if d.Fidelity, err = a.Fidelity(); err != nil {
		return d, err
	}
	if d.Fidelity <= a.cfg.FidelityThreshold {
		d.Reason = ReasonFaithful
		return d, nil
	}
	if a.cfg.Now()-a.lastInstall < a.cfg.MinInstallInterval {
		d.Reason = ReasonRateLimited
		return d, nil
	}
	v, err := a.install()
	if err != nil {
		return d, err
	}
	d.Installed, d.Version, d.Reason = true, v, ReasonInstalled
	if !d.Stable {
		d.Reason = ReasonStale
	}
	return d, nil
}
