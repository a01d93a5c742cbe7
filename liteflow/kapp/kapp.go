package kapp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/liteflow/adapt"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/router"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// MaxFileBytes bounds a snapshot file LoadFile reads.
const MaxFileBytes = snapshot.MaxSize

// LoadFile reads and validates a snapshot file (liteflow/SNAPSHOT.md).
func LoadFile(path string) (*snapshot.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("kapp: %s: %d bytes exceeds the snapshot limit %d", path, st.Size(), MaxFileBytes)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	s, err := snapshot.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("kapp: %s: %w", path, err)
	}
	return s, nil
}

// NewModel serves s as a laked model named name: a router with s active
// (predict answers from it) whose image model_fetch hands to the kernel.
func NewModel(name string, s *snapshot.Snapshot) (*laked.LiteFlowModel, error) {
	r, err := router.New(router.Config{InputDim: s.InputDim(), OutputDim: s.OutputDim(), FlowCapacity: 1024})
	if err != nil {
		return nil, err
	}
	if _, err := r.Install(s); err != nil {
		return nil, err
	}
	return laked.NewLiteFlowModel(name, r, s.InputDim(), s.OutputDim())
}

// FloatModel returns the float model a snapshot computes (weights times
// their scales, biases times input and weight scales, the same
// activations): where adaptation starts when only the snapshot is known.
func FloatModel(s *snapshot.Snapshot) (*model.MLP, error) {
	sizes := []int{s.InputDim()}
	acts := make([]model.Activation, len(s.Layers))
	for i, l := range s.Layers {
		sizes = append(sizes, l.Out)
		acts[i] = l.Act
	}
	m, err := model.NewMLP(sizes, acts, 1)
	if err != nil {
		return nil, err
	}
	inScale := float64(s.Input.Scale)
	for i, l := range s.Layers {
		d := &m.Layers[i]
		for o := 0; o < l.Out; o++ {
			ws := float64(l.WScale[0])
			if l.PerChannel {
				ws = float64(l.WScale[o])
			}
			for j := 0; j < l.In; j++ {
				d.W[o*l.In+j] = float32(float64(l.W[o*l.In+j]) * ws)
			}
			d.B[o] = float32(float64(l.Bias[o]) * inScale * ws)
		}
		inScale = float64(l.OutQ.Scale)
	}
	return m, m.Validate()
}

// Install is one snapshot the app shipped.
type Install struct {
	At         time.Time `json:"at"`
	Generation uint64    `json:"generation"`
	Version    uint64    `json:"version"`            // laked's model version after it
	Fidelity   *float64  `json:"fidelity,omitempty"` // nil: not measured (NaN has no JSON)
	Reason     string    `json:"reason"`
}

// Point is one adaptation batch: how far the snapshot the kernel was
// answering with (Served) and the snapshot the app started with (Fixed)
// were from the batch's labels (mean |output - label|), measured before
// the batch trained the model. After a change in conditions both errors
// jump; adaptation has recovered when Served falls back below Fixed.
type Point struct {
	AtMs       int64   `json:"at_ms"` // unix ms
	Served     float64 `json:"served"`
	Fixed      float64 `json:"fixed"`
	Generation uint64  `json:"generation"` // of the served snapshot
}

// MaxTrace is how many Points an app keeps.
const MaxTrace = 1024

// Status is what lakectl shows of an app.
type Status struct {
	Name       string    `json:"name"`
	Model      uint32    `json:"model"`
	Schema     string    `json:"schema"`
	Samples    uint64    `json:"samples"`
	Dropped    uint64    `json:"dropped"`
	Rejected   uint64    `json:"rejected"` // samples with non-finite values
	Batches    uint64    `json:"batches"`
	Fidelity   *float64  `json:"fidelity,omitempty"` // of the last batch; nil before one
	Loss       *float64  `json:"loss,omitempty"`
	LastReason string    `json:"last_reason"`
	Installs   []Install `json:"installs"` // most recent last, at most 32
	Err        string    `json:"error,omitempty"`
	// Pinned: a snapshot loaded by hand is served; the adapter keeps
	// adapting but ships nothing until Unpin (Withheld counts what it
	// would have shipped).
	Pinned   bool    `json:"pinned"`
	Withheld uint64  `json:"withheld"`
	Trace    []Point `json:"trace,omitempty"` // most recent last, at most MaxTrace
}

// Config configures an App.
type Config struct {
	Name  string // kernel app name; the samples' schema is "liteflow.<Name>"
	Model uint32 // laked model id the kernel app fetches
	// Snapshot is the snapshot served at start; adaptation starts from
	// its float model (FloatModel) unless Float is set.
	Snapshot *snapshot.Snapshot
	Float    *model.MLP
	// Batch is the number of samples per adaptation step (default 32) and
	// Interval how often the registry is drained (default 200ms).
	Batch    int
	Interval time.Duration
	// History is the schema's per-key sample history (default 256) and
	// Keys its number of keys (default 4): the kernel region's registry
	// is small (lake_shm's features_kib, 512 KiB by default).
	History int
	Keys    int
	Adapt   adapt.Config
}

// Server is the part of laked an App uses.
type Server interface {
	RegisterModel(id uint32, m laked.Model) error
	ReplaceModel(id uint32, m laked.Model) (uint64, error)
}

// App runs one kernel app's adaptation loop. Every snapshot the app's
// model serves goes through it (serve): the one it starts with, the ones
// the adapter ships, and ones loaded by hand (Load, which pins).
type App struct {
	cfg  Config
	srv  Server
	feed *adapt.RegistryFeed

	// stepMu serialises Step with Load and Unpin (the adapter is not
	// safe for concurrent use).
	stepMu sync.Mutex
	ad     *adapt.Adapter
	m      *model.MLP
	// pending holds drained samples not yet in a full batch (at most one
	// batch): kernel apps record a few samples per interval.
	pending []model.Sample
	served  *snapshot.Snapshot // what the model serves now
	pinned  *snapshot.Snapshot // loaded by hand; nil: not pinned
	out1    []float32
	out2    []float32

	mu sync.Mutex
	st Status
}

// SchemaName is the feature schema of app name.
func SchemaName(app string) string { return "liteflow." + app }

// NewApp serves cfg.Snapshot as model cfg.Model (registering it, or
// replacing what is there) and registers the sample schema in reg (the
// kernel region's registry). Run drives it.
func NewApp(srv Server, reg *features.Registry, cfg Config) (*App, error) {
	if cfg.Snapshot == nil || cfg.Name == "" || cfg.Model == 0 {
		return nil, errors.New("kapp: an app needs a name, a model id and a snapshot")
	}
	if cfg.Batch == 0 {
		cfg.Batch = 32
	}
	if cfg.Interval == 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.History == 0 {
		cfg.History = 256
	}
	if cfg.Keys == 0 {
		cfg.Keys = 4
	}
	if cfg.Batch < 1 || cfg.Batch > 4096 || cfg.Interval < time.Millisecond || cfg.History < 4 || cfg.Keys < 1 {
		return nil, fmt.Errorf("kapp: bad batch %d, interval %v, history %d or keys %d", cfg.Batch, cfg.Interval, cfg.History, cfg.Keys)
	}
	in, out := cfg.Snapshot.InputDim(), cfg.Snapshot.OutputDim()
	m := cfg.Float
	if m == nil {
		var err error
		if m, err = FloatModel(cfg.Snapshot); err != nil {
			return nil, fmt.Errorf("kapp: %w", err)
		}
	}
	if m.InputDim() != in || m.OutputDim() != out {
		return nil, fmt.Errorf("kapp: float model is %d -> %d, snapshot %d -> %d", m.InputDim(), m.OutputDim(), in, out)
	}
	name := SchemaName(cfg.Name)
	id, err := reg.Register(features.Schema{Name: name, History: cfg.History, MaxKeys: cfg.Keys, Fields: []features.Field{
		{Name: "x", Type: features.F32, Count: in}, {Name: "y", Type: features.F32, Count: out}}})
	if errors.Is(err, features.ErrSchemaExists) {
		id, err = reg.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("kapp: schema %s: %w", name, err)
	}
	feed, err := adapt.NewRegistryFeed(reg, id, in, out)
	if err != nil {
		return nil, fmt.Errorf("kapp: %w", err)
	}
	a := &App{cfg: cfg, srv: srv, feed: feed, m: m, out1: make([]float32, out), out2: make([]float32, out)}
	a.st = Status{Name: cfg.Name, Model: cfg.Model, Schema: name}
	if err := a.serve(cfg.Snapshot, "served"); err != nil {
		return nil, err
	}
	ad, err := adapt.New(m, installer{a}, cfg.Adapt)
	if err != nil {
		return nil, fmt.Errorf("kapp: %w", err)
	}
	a.ad = ad
	return a, nil
}

// serve makes s the served model (register, or replace): the app's one
// installer.
func (a *App) serve(s *snapshot.Snapshot, reason string) error {
	lm, err := NewModel(SchemaName(a.cfg.Name), s)
	if err != nil {
		return fmt.Errorf("kapp: %w", err)
	}
	v, err := a.srv.ReplaceModel(a.cfg.Model, lm)
	if errors.Is(err, laked.ErrModelNotFound) {
		err = a.srv.RegisterModel(a.cfg.Model, lm)
		v = 1
	}
	if err != nil {
		return fmt.Errorf("kapp: model %d: %w", a.cfg.Model, err)
	}
	a.served = s
	a.mu.Lock()
	a.st.Installs = appendInstall(a.st.Installs, Install{At: time.Now(), Generation: s.Generation, Version: v, Reason: reason})
	a.mu.Unlock()
	return nil
}

// ErrNoApp is what a lookup of an app laked does not run wraps.
var ErrNoApp = errors.New("kapp: no such app")

// ErrShape is returned by Load for a snapshot of another shape.
var ErrShape = errors.New("kapp: snapshot shape differs from the app's")

// Model is the laked model id the app serves.
func (a *App) Model() uint32 { return a.cfg.Model }

// Name is the app's name.
func (a *App) Name() string { return a.cfg.Name }

// Load serves s, a snapshot loaded by hand, and pins the app: the
// adapter keeps training on the kernel's samples but its snapshots are
// withheld until Unpin.
func (a *App) Load(s *snapshot.Snapshot) error {
	if s == nil || s.InputDim() != a.cfg.Snapshot.InputDim() || s.OutputDim() != a.cfg.Snapshot.OutputDim() {
		return fmt.Errorf("%w (app %s is %d -> %d)", ErrShape, a.cfg.Name, a.cfg.Snapshot.InputDim(), a.cfg.Snapshot.OutputDim())
	}
	a.stepMu.Lock()
	defer a.stepMu.Unlock()
	if err := a.serve(s, "loaded by hand (pinned)"); err != nil {
		return err
	}
	a.pinned = s
	a.mu.Lock()
	a.st.Pinned = true
	a.mu.Unlock()
	return nil
}

// Unpin lets the adapter ship again. With restart, adaptation starts
// over from the pinned snapshot (its float model; the next batch
// bootstraps a snapshot of it); without, the adapter's latest snapshot
// is shipped now if it withheld any. Unpinning an app that is not pinned
// is an error.
func (a *App) Unpin(restart bool) error {
	a.stepMu.Lock()
	defer a.stepMu.Unlock()
	if a.pinned == nil {
		return fmt.Errorf("kapp: app %s is not pinned", a.cfg.Name)
	}
	a.mu.Lock()
	withheld := a.st.Withheld
	a.mu.Unlock()
	if restart {
		m, err := FloatModel(a.pinned)
		if err != nil {
			return fmt.Errorf("kapp: restart from the pinned snapshot: %w", err)
		}
		ad, err := adapt.New(m, installer{a}, a.cfg.Adapt)
		if err != nil {
			return fmt.Errorf("kapp: %w", err)
		}
		a.m, a.ad, a.pending = m, ad, nil
	} else if s := a.ad.Installed(); s != nil && withheld > 0 {
		if err := a.serve(s, "shipped on unpin"); err != nil {
			return err
		}
	}
	a.pinned = nil
	a.mu.Lock()
	a.st.Pinned, a.st.Withheld = false, 0
	a.mu.Unlock()
	return nil
}

func appendInstall(h []Install, in Install) []Install {
	h = append(h, in)
	if len(h) > 32 {
		h = h[len(h)-32:]
	}
	return h
}

// installer ships the adapter's snapshots.
type installer struct{ a *App }

func (i installer) Install(s *snapshot.Snapshot) (uint64, error) {
	if i.a.pinned != nil {
		i.a.mu.Lock()
		i.a.st.Withheld++
		i.a.mu.Unlock()
		return s.Generation, nil
	}
	if err := i.a.serve(s, "served"); err != nil {
		return 0, err
	}
	return s.Generation, nil
}

// errorOn is mean |s(x) - y| over batch.
func (a *App) errorOn(s *snapshot.Snapshot, batch []model.Sample, out []float32) (float64, error) {
	var sum float64
	var n int
	for _, b := range batch {
		if err := s.Run(b.X, out); err != nil {
			return 0, err
		}
		for k, v := range out {
			sum += math.Abs(float64(v) - float64(b.Y[k]))
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	return sum / float64(n), nil
}

// trace records one batch's Point.
func (a *App) trace(b []model.Sample) error {
	es, err := a.errorOn(a.served, b, a.out1)
	if err != nil {
		return err
	}
	ef, err := a.errorOn(a.cfg.Snapshot, b, a.out2)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.st.Trace = append(a.st.Trace, Point{AtMs: time.Now().UnixMilli(), Served: es, Fixed: ef, Generation: a.served.Generation})
	if len(a.st.Trace) > MaxTrace {
		a.st.Trace = a.st.Trace[len(a.st.Trace)-MaxTrace:]
	}
	a.mu.Unlock()
	return nil
}

// Step drains what the kernel recorded and runs adaptation steps on full
// batches; it returns how many samples it used.
func (a *App) Step() (int, error) {
	a.stepMu.Lock()
	defer a.stepMu.Unlock()
	samples, err := a.feed.Next(a.cfg.Batch * 16)
	if err != nil {
		return 0, err
	}
	good := a.pending
	var rejected uint64
	for _, s := range samples {
		if finite(s.X) && finite(s.Y) {
			good = append(good, s)
		} else {
			rejected++
		}
	}
	used := 0
	defer func() { a.pending = append(a.pending[:0:0], good...) }()
	for len(good) >= a.cfg.Batch {
		b := good[:a.cfg.Batch]
		good = good[a.cfg.Batch:]
		if err := a.trace(b); err != nil {
			return used, err
		}
		if a.ad.Installed() == nil {
			xs := make([][]float32, len(b))
			for k, s := range b {
				xs[k] = s.X
			}
			if _, err := a.ad.Bootstrap(xs); err != nil {
				return used, err
			}
		}
		d, err := a.ad.Observe(b)
		if err != nil {
			return used, err
		}
		used += len(b)
		a.mu.Lock()
		a.st.Batches++
		a.st.Fidelity, a.st.Loss, a.st.LastReason = number(d.Fidelity), number(d.Loss), d.Reason
		if d.Installed && a.pinned == nil && len(a.st.Installs) > 0 {
			last := &a.st.Installs[len(a.st.Installs)-1]
			last.Fidelity, last.Reason = number(d.Fidelity), d.Reason
		}
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.st.Samples += uint64(len(samples))
	a.st.Rejected += rejected
	a.st.Dropped = a.feed.Dropped
	a.mu.Unlock()
	return used, nil
}

// number is v, or nil when it is not a number JSON can carry.
func number(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// Run calls Step every Interval until ctx ends; errors are kept in the
// status (and Run goes on).
func (a *App) Run(ctx context.Context) {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := a.Step(); err != nil {
			a.mu.Lock()
			a.st.Err = err.Error()
			a.mu.Unlock()
		}
	}
}

// Status returns a copy of the app's status.
func (a *App) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	st.Installs = append([]Install(nil), a.st.Installs...)
	st.Trace = append([]Point(nil), a.st.Trace...)
	return st
}
