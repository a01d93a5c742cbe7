package retrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/linnos"
)

// Installer serves models: laked, in production.
type Installer interface {
	// Install serves m (trained on meta's threshold and unit) for device
	// dev and returns the version now served.
	Install(dev uint64, m *linnos.IntModel, meta linnos.ModelMeta) (version uint64, err error)
	// Current returns the model served for dev, if any, to compare the new
	// one against on the same held-out reads.
	Current(dev uint64) (*linnos.IntModel, bool)
}

// Config configures a Trainer. Zero values take the defaults in brackets.
type Config struct {
	// Devices limits training to these device keys (the device numbers
	// the kernel records under); empty means every device recorded.
	Devices []uint64
	// MinSamples is how many new samples a device needs before it is
	// (re)trained [4000].
	MinSamples int
	// Window is how many of a device's most recent samples are kept and
	// used [20000].
	Window int
	// HoldOut is the most recent fraction of the window kept out of
	// training and used for the checks [0.2].
	HoldOut float64
	// MinAccuracy is the held-out accuracy a new model needs [0.8].
	MinAccuracy float64
	// MinFidelity is the fraction of held-out reads on which the integer
	// model must decide as the float model does [0.98].
	MinFidelity float64
	// Tolerance is how much lower than the served model's held-out
	// accuracy a new model may be and still replace it [0.01].
	Tolerance float64
	// Pending is the unit the kernel counts pending I/Os in (stored in the
	// model file).
	Pending linnos.PendingUnit
	// Train configures the training itself (threshold, layers, epochs,
	// seed); ThresholdUs 0 finds it per training (linnos.Train).
	Train linnos.TrainConfig
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

func (c *Config) defaults() error {
	if c.MinSamples == 0 {
		c.MinSamples = 4000
	}
	if c.Window == 0 {
		c.Window = 20000
	}
	if c.HoldOut == 0 {
		c.HoldOut = 0.2
	}
	if c.MinAccuracy == 0 {
		c.MinAccuracy = 0.8
	}
	if c.MinFidelity == 0 {
		c.MinFidelity = 0.98
	}
	if c.Tolerance == 0 {
		c.Tolerance = 0.01
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.MinSamples < 200 || c.MinSamples > 1<<24:
		return fmt.Errorf("retrain: min samples %d outside [200, 2^24]", c.MinSamples)
	case c.Window < c.MinSamples || c.Window > 1<<24:
		return fmt.Errorf("retrain: window %d outside [min samples %d, 2^24]", c.Window, c.MinSamples)
	case !(c.HoldOut >= 0.05 && c.HoldOut <= 0.5):
		return fmt.Errorf("retrain: hold-out fraction %v outside [0.05, 0.5]", c.HoldOut)
	case !(c.MinAccuracy > 0 && c.MinAccuracy <= 1), !(c.MinFidelity > 0 && c.MinFidelity <= 1), !(c.Tolerance >= 0 && c.Tolerance < 1):
		return errors.New("retrain: accuracy, fidelity and tolerance must be fractions")
	case c.Pending != linnos.PendingIOs && c.Pending != linnos.PendingPages:
		return fmt.Errorf("retrain: unknown pending unit %d", c.Pending)
	}
	return nil
}

// histKeep is how many completed reads per device are kept to rebuild the
// history of later reads: a read whose arrival was more than this many
// completions before its own completion is skipped.
const histKeep = 4096

// DeviceStatus is what the Trainer reports about one device.
type DeviceStatus struct {
	Device  uint64 `json:"device"`
	Samples int    `json:"samples"` // in the window now
	// Records counts completion records drained for the device;
	// Incomplete those whose history was not recorded (or too old),
	// Uncounted those without ordinals, Invalid those with impossible
	// counters.
	Records    uint64 `json:"records"`
	Incomplete uint64 `json:"incomplete"`
	Uncounted  uint64 `json:"uncounted"`
	Invalid    uint64 `json:"invalid"`
	Restarts   uint64 `json:"restarts"` // ordinals started again (the target was re-created)
	Trainings  uint64 `json:"trainings"`
	Installs   uint64 `json:"installs"`
	Rejects    uint64 `json:"rejects"`
	// The last training: when, on how many reads, its held-out checks, the
	// served model's accuracy on the same reads, and what happened.
	LastTraining    time.Time `json:"last_training,omitzero"`
	TrainedOn       int       `json:"trained_on,omitempty"`
	HeldOut         int       `json:"held_out,omitempty"`
	ThresholdUs     float64   `json:"threshold_us,omitempty"`
	Accuracy        float64   `json:"accuracy,omitempty"`
	FalseSubmitRate float64   `json:"false_submit_rate,omitempty"`
	Fidelity        float64   `json:"fidelity,omitempty"`
	ServedAccuracy  float64   `json:"served_accuracy,omitempty"` // -1: no model was served
	Outcome         string    `json:"outcome,omitempty"`
	Version         uint64    `json:"version,omitempty"` // served version after the last install
}

type histEntry struct{ pending, latency uint32 }

type sample struct {
	x   [linnos.NumInputs]int32
	lat float64
	seq uint32 // done_seq (tests)
}

type device struct {
	st      DeviceStatus
	hist    map[uint32]histEntry // done_seq -> entry, the last histKeep
	maxDone uint32
	win     []sample // ring of cfg.Window
	next    int      // ring write position
	fresh   int      // samples since the last training
}

// Trainer drains completion records and (re)trains per device. Poll and
// Step are safe for concurrent use with Status; Run calls both.
type Trainer struct {
	cfg   Config
	inst  Installer
	drain *features.Drainer
	only  map[uint64]bool

	mu   sync.Mutex // devs, statuses
	devs map[uint64]*device
	// Dropped counts records the registry could not deliver.
	dropped uint64
	batch   features.Batch
}

// New returns a Trainer that drains the linnos.completion schema of reg
// (which must exist: the kernel module or features.NewLinnOS registers it)
// from now on.
func New(reg *features.Registry, inst Installer, cfg Config) (*Trainer, error) {
	if reg == nil || inst == nil {
		return nil, errors.New("retrain: nil registry or installer")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	id, err := reg.Lookup(features.LinnOSCompletionSchema)
	if err != nil {
		return nil, fmt.Errorf("retrain: %w", err)
	}
	info, err := reg.Schema(id)
	if err != nil {
		return nil, fmt.Errorf("retrain: %w", err)
	}
	want := []string{"latency_us", "pending", "arrive_seq", "done_seq", "stale"}
	fs := info.Fields()
	ok := len(fs) == len(want) && info.RecordSize() >= features.LinnOSCompletionBytes
	for i := 0; ok && i < len(fs); i++ {
		ok = fs[i].Name == want[i] && fs[i].Offset == 4*i && fs[i].Type == features.U32
	}
	if !ok {
		return nil, fmt.Errorf("retrain: schema %s does not have the layout of features.LinnOSCompletion (an older kernel module?)", features.LinnOSCompletionSchema)
	}
	d, err := reg.NewDrainer(id, true)
	if err != nil {
		return nil, fmt.Errorf("retrain: %w", err)
	}
	t := &Trainer{cfg: cfg, inst: inst, drain: d, devs: map[uint64]*device{}}
	if len(cfg.Devices) > 0 {
		t.only = map[uint64]bool{}
		for _, k := range cfg.Devices {
			t.only[k] = true
		}
	}
	return t, nil
}

// Poll drains every record recorded since the last call into the devices'
// windows and returns how many it drained.
func (t *Trainer) Poll() (int, error) {
	total := 0
	for {
		if err := t.drain.Drain(1024, &t.batch); err != nil {
			return total, fmt.Errorf("retrain: %w", err)
		}
		t.mu.Lock()
		t.dropped += t.batch.Dropped
		for _, s := range t.batch.Samples {
			if t.only != nil && !t.only[s.Key] {
				continue
			}
			c, err := features.DecodeLinnOSCompletion(s.Data)
			if err != nil {
				continue // cannot happen: New checked the record size
			}
			t.device(s.Key).add(c, t.cfg.Window)
		}
		t.mu.Unlock()
		total += len(t.batch.Samples)
		if len(t.batch.Samples) == 0 {
			return total, nil
		}
	}
}

func (t *Trainer) device(key uint64) *device {
	d := t.devs[key]
	if d == nil {
		d = &device{st: DeviceStatus{Device: key, ServedAccuracy: -1}, hist: map[uint32]histEntry{}}
		t.devs[key] = d
	}
	return d
}

// add turns one completion record into a sample, if its history is known.
func (d *device) add(c features.LinnOSCompletion, window int) {
	d.st.Records++
	if c.DoneSeq == 0 {
		d.st.Uncounted++
		return
	}
	if c.ArriveSeq >= c.DoneSeq || c.Stale > linnos.HistoryLen {
		d.st.Invalid++
		return
	}
	_, dup := d.hist[c.DoneSeq]
	if dup || (d.maxDone > histKeep && c.DoneSeq < d.maxDone-histKeep) {
		// An ordinal seen before, or far behind: the ordinals started
		// again (the target was re-created). History from before must
		// not become the history of the new reads.
		d.st.Restarts++
		clear(d.hist)
		d.maxDone = 0
	}
	d.hist[c.DoneSeq] = histEntry{pending: c.Pending, latency: c.LatencyUs}
	if c.DoneSeq > d.maxDone {
		d.maxDone = c.DoneSeq
		if len(d.hist) > 2*histKeep {
			for s := range d.hist {
				if s+histKeep < d.maxDone {
					delete(d.hist, s)
				}
			}
		}
	}
	// The read's history: the reads with done_seq in (arrive-4, arrive],
	// oldest first; ordinals below 1 are history the device did not have.
	var e linnos.Extractor
	for k := int64(linnos.HistoryLen) - 1; k >= 0; k-- {
		s := int64(c.ArriveSeq) - k
		if s < 1 {
			continue // no such read yet: zeros, as the kernel had
		}
		h, ok := d.hist[uint32(s)]
		if !ok {
			d.st.Incomplete++
			return
		}
		e.Complete(int(h.pending), int(h.latency))
	}
	// the oldest Stale entries had outlived the kernel's history
	// time-to-live: it read them as zeros
	e.Expire(int(c.Stale))
	var sm sample
	e.Features(int(c.Pending), sm.x[:])
	sm.lat, sm.seq = float64(c.LatencyUs), c.DoneSeq
	if len(d.win) < window {
		d.win = append(d.win, sm)
	} else {
		d.win[d.next] = sm
		d.next = (d.next + 1) % window
	}
	d.fresh++
	d.st.Samples = len(d.win)
}

// ordered returns a copy of the window, oldest first (the training reads
// it while Poll goes on filling the window).
func (d *device) ordered() []sample {
	return append(append(make([]sample, 0, len(d.win)), d.win[d.next:]...), d.win[:d.next]...)
}

// Result is what Step did for one device.
type Result struct {
	Status DeviceStatus
	Err    error
}

// Step (re)trains every device with at least MinSamples new samples,
// checks each new model on the device's most recent HoldOut reads and
// installs the ones that pass.
func (t *Trainer) Step(ctx context.Context) []Result {
	type job struct {
		key     uint64
		samples []sample
	}
	var jobs []job
	t.mu.Lock()
	for key, d := range t.devs {
		if d.fresh >= t.cfg.MinSamples && len(d.win) >= t.cfg.MinSamples {
			jobs = append(jobs, job{key, d.ordered()})
			d.fresh = 0
		}
	}
	t.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].key < jobs[j].key })
	var out []Result
	for _, j := range jobs {
		st, err := t.train(ctx, j.key, j.samples)
		t.mu.Lock()
		d := t.devs[j.key]
		keep := d.st
		st.Device, st.Samples = keep.Device, keep.Samples
		st.Records, st.Incomplete, st.Uncounted, st.Invalid, st.Restarts = keep.Records, keep.Incomplete, keep.Uncounted, keep.Invalid, keep.Restarts
		st.Trainings, st.Installs, st.Rejects = keep.Trainings+1, keep.Installs, keep.Rejects
		switch {
		case err != nil:
			st.Rejects++
			st.Outcome = "error: " + err.Error()
			st.Version = keep.Version
		case st.Version != 0:
			st.Installs++
		default:
			st.Rejects++
			st.Version = keep.Version
		}
		d.st = st
		t.mu.Unlock()
		out = append(out, Result{Status: st, Err: err})
	}
	return out
}

// train trains one device's model and installs it if it passes; the
// returned status carries the training's figures and outcome (Version
// set only when installed).
func (t *Trainer) train(ctx context.Context, key uint64, ss []sample) (DeviceStatus, error) {
	st := DeviceStatus{LastTraining: t.cfg.Now(), ServedAccuracy: -1}
	nHold := int(math.Round(float64(len(ss)) * t.cfg.HoldOut))
	trainPart, hold := ss[:len(ss)-nHold], ss[len(ss)-nHold:]
	st.TrainedOn, st.HeldOut = len(trainPart), len(hold)
	var tr linnos.Samples
	for i := range trainPart {
		tr.Features = append(tr.Features, trainPart[i].x[:]...)
		tr.LatencyUs = append(tr.LatencyUs, trainPart[i].lat)
	}
	res, err := linnos.Train(ctx, &tr, t.cfg.Train)
	if err != nil {
		return st, fmt.Errorf("train: %w", err)
	}
	im, err := linnos.Quantize(res.Model)
	if err != nil {
		return st, fmt.Errorf("quantize: %w", err)
	}
	st.ThresholdUs = res.ThresholdUs
	x := make([]int32, 0, len(hold)*linnos.NumInputs)
	for i := range hold {
		x = append(x, hold[i].x[:]...)
	}
	intDec, err := decide(im, x, len(hold))
	if err != nil {
		return st, err
	}
	floatDec, err := decide(res.Model, x, len(hold))
	if err != nil {
		return st, err
	}
	agree := 0
	for i := range intDec {
		if intDec[i] == floatDec[i] {
			agree++
		}
	}
	st.Fidelity = float64(agree) / float64(len(hold))
	st.Accuracy, st.FalseSubmitRate = score(intDec, hold, res.ThresholdUs)
	if cur, ok := t.inst.Current(key); ok && cur != nil {
		curDec, err := decide(cur, x, len(hold))
		if err == nil {
			st.ServedAccuracy, _ = score(curDec, hold, res.ThresholdUs)
		}
	}
	switch {
	case st.Accuracy < t.cfg.MinAccuracy:
		st.Outcome = fmt.Sprintf("rejected: held-out accuracy %.3f < %.3f", st.Accuracy, t.cfg.MinAccuracy)
	case st.Fidelity < t.cfg.MinFidelity:
		st.Outcome = fmt.Sprintf("rejected: integer/float fidelity %.3f < %.3f", st.Fidelity, t.cfg.MinFidelity)
	case st.ServedAccuracy >= 0 && st.Accuracy < st.ServedAccuracy-t.cfg.Tolerance:
		st.Outcome = fmt.Sprintf("rejected: held-out accuracy %.3f below the served model's %.3f", st.Accuracy, st.ServedAccuracy)
	default:
		meta := linnos.ModelMeta{ThresholdUs: uint32(math.Min(math.Round(res.ThresholdUs), math.MaxUint32)), Pending: t.cfg.Pending}
		v, err := t.inst.Install(key, im, meta)
		if err != nil {
			return st, fmt.Errorf("install: %w", err)
		}
		st.Version = v
		st.Outcome = "installed"
	}
	return st, nil
}

type predictor interface {
	Predict(features []int32, n int, decisions []bool) error
}

func decide(m predictor, x []int32, n int) ([]bool, error) {
	d := make([]bool, n)
	if err := m.Predict(x, n, d); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return d, nil
}

// score returns the accuracy and false-submit rate of decisions (true:
// slow) against the samples' latencies.
func score(dec []bool, ss []sample, thresholdUs float64) (acc, falseSubmit float64) {
	ok, fs := 0, 0
	for i, slow := range dec {
		truth := ss[i].lat > thresholdUs
		switch {
		case slow == truth:
			ok++
		case truth:
			fs++
		}
	}
	n := float64(len(dec))
	return float64(ok) / n, float64(fs) / n
}

// Status returns every device's status, by device key.
func (t *Trainer) Status() []DeviceStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]DeviceStatus, 0, len(t.devs))
	for _, d := range t.devs {
		out = append(out, d.st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// Dropped returns how many records the registry could not deliver (ring
// overrun: the trainer polled too rarely).
func (t *Trainer) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Run drains every pollEvery (often enough that a device's 32-record
// completion ring does not wrap between drains: 1 ms covers 32k reads/s
// per device) and, in a second goroutine, trains every trainEvery the
// devices with enough new samples, so that a training never delays the
// draining. It returns when ctx ends. onResult (may be nil) sees every
// training's result.
func (t *Trainer) Run(ctx context.Context, pollEvery, trainEvery time.Duration, onResult func(Result)) error {
	if pollEvery <= 0 || trainEvery <= 0 {
		return errors.New("retrain: run: intervals must be positive")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(trainEvery)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			for _, r := range t.Step(ctx) {
				if onResult != nil {
					onResult(r)
				}
			}
		}
	}()
	defer func() { <-done }()
	tk := time.NewTicker(pollEvery)
	defer tk.Stop()
	for {
		if _, err := t.Poll(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
}
