package linnos

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/lakeos/lake/internal/plot"
)

// DemoConfig configures RunDemo and TrainDemoModel. Zero values take the
// defaults in brackets.
type DemoConfig struct {
	Preset   string // trace preset [azure]
	Seed     uint64 // trace and device seed; the evaluation trace uses Seed+1 [0]
	NumIOs   int    // I/Os in the evaluation trace [25000]
	TrainIOs int    // I/Os in the training trace [15000]
	Epochs   int    // training epochs [4]
	Extra    int    // extra hidden layers of the trained model [0]
	Replicas int    // replicas [3]
	// Predictor, when set, is used for the LinnOS modes instead of the
	// model RunDemo trains (for example a laked-backed predictor serving the
	// model from TrainDemoModel); ThresholdUs must then be the threshold the
	// model was trained with (0 = compute it from the training trace).
	Predictor   Predictor
	ThresholdUs float64
	InferenceUs float64               // time charged per prediction [0]
	PlotPath    string                // if set, write the latency CDF PNG here
	Progress    func(done, total int) // training progress
	// Features, when set, keeps the feature history of the evaluation
	// replay (laked's demo: the lock-free feature registry).
	Features FeatureSource
}

func (c DemoConfig) withDefaults() DemoConfig {
	if c.Preset == "" {
		c.Preset = "azure"
	}
	if c.NumIOs == 0 {
		c.NumIOs = 25000
	}
	if c.TrainIOs == 0 {
		c.TrainIOs = 15000
	}
	if c.Epochs == 0 {
		c.Epochs = 4
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	return c
}

// DemoModel is a model trained by TrainDemoModel.
type DemoModel struct {
	Int   *IntModel
	Train *TrainResult
}

// TrainDemoModel generates the training trace of cfg, replays it on the
// baseline to collect samples and trains a model.
func TrainDemoModel(ctx context.Context, cfg DemoConfig) (*DemoModel, error) {
	cfg = cfg.withDefaults()
	s, err := demoSamples(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tr, err := Train(ctx, s, TrainConfig{Extra: cfg.Extra, Epochs: cfg.Epochs, Seed: cfg.Seed, Progress: cfg.Progress})
	if err != nil {
		return nil, fmt.Errorf("linnos: demo: %w", err)
	}
	im, err := Quantize(tr.Model)
	if err != nil {
		return nil, fmt.Errorf("linnos: demo: %w", err)
	}
	return &DemoModel{Int: im, Train: tr}, nil
}

func demoSamples(ctx context.Context, cfg DemoConfig) (*Samples, error) {
	p, err := PresetByName(cfg.Preset)
	if err != nil {
		return nil, err
	}
	tr, err := Generate(p, cfg.TrainIOs, cfg.Seed)
	if err != nil {
		return nil, err
	}
	var s Samples
	if _, err := Replay(ctx, tr, Baseline, ReplayConfig{Replicas: cfg.Replicas, Seed: cfg.Seed}, &s); err != nil {
		return nil, fmt.Errorf("linnos: demo: collect samples: %w", err)
	}
	return &s, nil
}

// RunDemo generates a trace from a preset, trains a model on a first trace
// (unless cfg.Predictor is given), replays a second trace in the four modes,
// prints the table to w and optionally writes the CDF plot. With the defaults
// it takes a few seconds.
func RunDemo(ctx context.Context, cfg DemoConfig, w io.Writer) (*Report, error) {
	cfg = cfg.withDefaults()
	pred, thr := cfg.Predictor, cfg.ThresholdUs
	var train *Metrics
	if pred == nil {
		dm, err := TrainDemoModel(ctx, cfg)
		if err != nil {
			return nil, err
		}
		pred, thr = dm.Int, dm.Train.ThresholdUs
		train = &dm.Train.Test
	} else if !(thr > 0) {
		s, err := demoSamples(ctx, cfg)
		if err != nil {
			return nil, err
		}
		p, err := InflectionPercentile(s.LatencyUs)
		if err != nil {
			return nil, fmt.Errorf("linnos: demo: %w", err)
		}
		thr = percentileOf(s.LatencyUs, p)
	}
	p, err := PresetByName(cfg.Preset)
	if err != nil {
		return nil, err
	}
	tr, err := Generate(p, cfg.NumIOs, cfg.Seed+1)
	if err != nil {
		return nil, err
	}
	rep, err := ReplayAll(ctx, tr, ReplayConfig{Replicas: cfg.Replicas, Seed: cfg.Seed + 1, ThresholdUs: thr, InferenceUs: cfg.InferenceUs, Predictor: pred, Features: cfg.Features})
	if err != nil {
		return nil, err
	}
	rep.Training = train
	if w != nil {
		fmt.Fprintf(w, "LinnOS demo: preset %s, %d I/Os, %d replicas\n", p.Name, cfg.NumIOs, cfg.Replicas)
		if err := rep.WriteTable(w); err != nil {
			return nil, err
		}
	}
	if cfg.PlotPath != "" {
		if err := rep.WritePlotFile(cfg.PlotPath); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func percentileOf(v []float64, p float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return Percentile(s, p/100)
}

// PlotSeries returns one CDF series per mode (latency µs, fraction).
func (r *Report) PlotSeries() []plot.Series {
	var out []plot.Series
	for _, x := range r.Results {
		out = append(out, plot.Series{Label: x.Mode.String(), Points: plot.CDF(x.Latencies, 2000)})
	}
	return out
}

// WritePlot writes the read-latency CDF of every mode as a PNG (log-scaled
// latency axis).
func (r *Report) WritePlot(w io.Writer) error {
	err := plot.Encode(w, r.PlotSeries(), plot.Options{
		Width: 900, Height: 550, Title: "LinnOS replay: read latency CDF",
		XLabel: "read latency (us, log scale)", YLabel: "CDF", LogX: true, LegendBottomRight: true,
	})
	if err != nil {
		return fmt.Errorf("linnos: plot: %w", err)
	}
	return nil
}

// WritePlotFile writes the CDF plot (see WritePlot) to path.
func (r *Report) WritePlotFile(path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("linnos: plot: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("linnos: plot: %w", cerr)
		}
	}()
	return r.WritePlot(f)
}
