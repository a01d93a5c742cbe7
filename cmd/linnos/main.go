package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/lakeos/lake/linnos"
)

const usage = `usage: linnos <command> [flags]

commands:
  gen            generate a synthetic trace (ts_us dev offset size op)
  train          replay a trace on the SSD model, train a model, save it
  replay         replay a trace in the baseline, hedging, LinnOS and
                 LinnOS+hedging modes and print the table (and a CDF plot);
                 with -device, replay reads on real files/block devices
  import-header  convert a reference C weight header into the binary format
  demo           the one-call demo (generate, train, replay, table)

run "linnos <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "linnos:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"gen": cmdGen, "train": cmdTrain, "replay": cmdReplay, "import-header": cmdImportHeader, "demo": cmdDemo,
	}
	f, ok := cmds[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return f(ctx, args[1:], stdout, stderr)
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("linnos "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func createOut(path string, stdout io.Writer) (io.Writer, func() error, error) {
	if path == "" || path == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func cmdGen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gen", stderr)
	preset := fs.String("preset", "azure", "trace preset: azure, bingi or cosmos")
	n := fs.Int("n", 100000, "number of I/Os")
	seed := fs.Uint64("seed", 1, "random seed")
	out := fs.String("o", "-", "output file (- = stdout)")
	if err := parse(fs, args); err != nil {
		return err
	}
	p, err := linnos.PresetByName(*preset)
	if err != nil {
		return err
	}
	tr, err := linnos.Generate(p, *n, *seed)
	if err != nil {
		return err
	}
	w, closeFn, err := createOut(*out, stdout)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if err := linnos.WriteTrace(w, tr); err != nil {
		closeFn()
		return err
	}
	return closeFn()
}

// loadTrace reads -trace or generates one from -preset/-n/-seed.
func loadTrace(path, preset string, n int, seed uint64) ([]linnos.IO, error) {
	if path == "" {
		p, err := linnos.PresetByName(preset)
		if err != nil {
			return nil, err
		}
		return linnos.Generate(p, n, seed)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace: %w", err)
	}
	defer f.Close()
	return linnos.ReadTrace(f, 0)
}

// progressBar returns a training progress callback drawing a bar on w.
func progressBar(w io.Writer) func(done, total int) {
	const width = 40
	last := -1
	start := time.Now()
	return func(done, total int) {
		if total <= 0 {
			return
		}
		pct := done * 100 / total
		if pct == last && done != total {
			return
		}
		last = pct
		fill := done * width / total
		fmt.Fprintf(w, "\rtraining [%s%s] %3d%% %d/%d batches %s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill),
			pct, done, total, time.Since(start).Round(100*time.Millisecond))
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

func cmdTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	tracePath := fs.String("trace", "", "trace file (default: generate from -preset)")
	preset := fs.String("preset", "azure", "preset used when -trace is not given")
	n := fs.Int("n", 30000, "I/Os to generate when -trace is not given")
	seed := fs.Uint64("seed", 1, "seed for the trace, the SSD model and training")
	replicas := fs.Int("replicas", 3, "replicas of the SSD model")
	extra := fs.Int("extra", 0, "extra 256-wide hidden layers (0, 1 or 2)")
	epochs := fs.Int("epochs", 8, "training epochs")
	batch := fs.Int("batch", 64, "minibatch size")
	lr := fs.Float64("lr", 1e-3, "Adam learning rate")
	pct := fs.Float64("percentile", 0, "label reads above this latency percentile slow (0 = CDF inflection point)")
	cost := fs.Float64("false-submit-cost", 5, "loss weight of a false submit relative to a false revoke")
	pending := fs.String("pending", "ios", "pending feature unit: ios or pages")
	asInt := fs.Bool("int", false, "save the quantized int64 model instead of float32")
	out := fs.String("o", "linnos.model", "output model file")
	header := fs.String("header", "", "also write the quantized model as a reference C header to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	unit, err := linnos.ParsePendingUnit(*pending)
	if err != nil {
		return err
	}
	tr, err := loadTrace(*tracePath, *preset, *n, *seed)
	if err != nil {
		return err
	}
	var s linnos.Samples
	if _, err := linnos.Replay(ctx, tr, linnos.Baseline, linnos.ReplayConfig{Replicas: *replicas, Seed: *seed, Pending: unit}, &s); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "collected %d read samples\n", s.Len())
	res, err := linnos.Train(ctx, &s, linnos.TrainConfig{
		Extra: *extra, Epochs: *epochs, BatchSize: *batch, LearningRate: *lr, Percentile: *pct,
		FalseSubmitCost: *cost, Seed: *seed, Progress: progressBar(stderr),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "slow threshold: %.0f µs (p%.1f)\n", res.ThresholdUs, res.Percentile)
	fmt.Fprintf(stdout, "held-out 20%% (%d reads): accuracy %.2f%%, false submit %.2f%%, false revoke %.2f%%\n",
		res.Test.N, 100*res.Test.Accuracy, 100*res.Test.FalseSubmitRate, 100*res.Test.FalseRevokeRate)
	meta := linnos.ModelMeta{ThresholdUs: uint32(res.ThresholdUs + 0.5), Pending: unit}
	im, err := linnos.Quantize(res.Model)
	if err != nil {
		return err
	}
	var data []byte
	if *asInt {
		data, err = linnos.EncodeInt(im, meta)
	} else {
		data, err = linnos.EncodeFloat(res.Model, meta)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if *header != "" {
		f, err := os.Create(*header)
		if err != nil {
			return fmt.Errorf("write header: %w", err)
		}
		if err := linnos.WriteHeader(f, im, ""); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write header: %w", err)
		}
	}
	fmt.Fprintf(stdout, "saved %s\n", *out)
	return nil
}

func loadModel(path string) (*linnos.ModelFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	mf, err := linnos.ReadModel(f)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return mf, nil
}

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	tracePath := fs.String("trace", "", "trace file (default: generate from -preset)")
	preset := fs.String("preset", "azure", "preset used when -trace is not given")
	n := fs.Int("n", 30000, "I/Os to generate when -trace is not given")
	seed := fs.Uint64("seed", 2, "seed for the generated trace and the SSD model")
	modelPath := fs.String("model", "", "model file (without it only baseline and hedging run)")
	useFloat := fs.Bool("float", false, "use the float32 path of a float model instead of the integer path")
	replicas := fs.Int("replicas", 3, "replicas")
	threshold := fs.Float64("threshold", 0, "slow threshold in µs for accuracy (default: the model's)")
	hedge := fs.Float64("hedge-after", 0, "hedge delay in µs (default: baseline p95)")
	inference := fs.Float64("inference-us", 0, "time charged per prediction, µs")
	plotPath := fs.String("plot", "", "write the latency CDF PNG here")
	device := fs.String("device", "", "comma-separated files or block devices: replay reads there with O_DIRECT instead of the SSD model")
	qd := fs.Int("qd", 16, "queue depth for -device")
	timeScale := fs.Float64("time-scale", 0, "for -device: multiply trace inter-arrival times (0 = as fast as possible)")
	if err := parse(fs, args); err != nil {
		return err
	}
	tr, err := loadTrace(*tracePath, *preset, *n, *seed)
	if err != nil {
		return err
	}
	var pred linnos.Predictor
	var unit linnos.PendingUnit
	thr := *threshold
	if *modelPath != "" {
		mf, err := loadModel(*modelPath)
		if err != nil {
			return err
		}
		unit = mf.Meta.Pending
		if thr == 0 {
			thr = float64(mf.Meta.ThresholdUs)
		}
		if *useFloat {
			if mf.Float == nil {
				return errors.New("replay: -float needs a float model file")
			}
			pred = mf.Float
		} else if pred, err = mf.IntModel(); err != nil {
			return err
		}
	}
	if *device != "" {
		return replayDevice(ctx, tr, strings.Split(*device, ","), pred, unit, *qd, *timeScale, stdout)
	}
	rep, err := linnos.ReplayAll(ctx, tr, linnos.ReplayConfig{
		Replicas: *replicas, Seed: *seed, ThresholdUs: thr, HedgeAfterUs: *hedge,
		InferenceUs: *inference, Pending: unit, Predictor: pred,
	})
	if err != nil {
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *plotPath != "" {
		if err := rep.WritePlotFile(*plotPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", *plotPath)
	}
	return nil
}

func replayDevice(ctx context.Context, tr []linnos.IO, paths []string, pred linnos.Predictor, unit linnos.PendingUnit, qd int, scale float64, stdout io.Writer) error {
	rep := &linnos.Report{}
	modes := []linnos.Mode{linnos.Baseline}
	if pred != nil {
		modes = append(modes, linnos.LinnOS)
	}
	for _, m := range modes {
		r, err := linnos.ReplayDirect(ctx, tr, linnos.DirectConfig{Paths: paths, Mode: m, Predictor: pred, QueueDepth: qd, Pending: unit, TimeScale: scale})
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, r)
	}
	return rep.WriteTable(stdout)
}

func cmdImportHeader(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import-header", stderr)
	in := fs.String("in", "", "reference C header (required)")
	suffix := fs.String("suffix", "", "only use arrays whose names end with this (e.g. _dev_0)")
	threshold := fs.Uint("threshold", 0, "slow threshold in µs to record in the model file")
	pending := fs.String("pending", "ios", "pending unit the weights were trained with: ios or pages")
	out := fs.String("o", "linnos.model", "output model file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("import-header: -in is required")
	}
	unit, err := linnos.ParsePendingUnit(*pending)
	if err != nil {
		return err
	}
	if *threshold > 1<<31 {
		return errors.New("import-header: threshold too large")
	}
	f, err := os.Open(*in)
	if err != nil {
		return fmt.Errorf("import-header: %w", err)
	}
	m, err := linnos.ReadHeader(f, *suffix)
	f.Close()
	if err != nil {
		return fmt.Errorf("import-header %s: %w", *in, err)
	}
	data, err := linnos.EncodeInt(m, linnos.ModelMeta{ThresholdUs: uint32(*threshold), Pending: unit})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("import-header: %w", err)
	}
	fmt.Fprintf(stdout, "imported %s (+%d variant) into %s\n", *in, m.Extra(), *out)
	return nil
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	preset := fs.String("preset", "azure", "trace preset")
	seed := fs.Uint64("seed", 3, "seed")
	n := fs.Int("n", 25000, "I/Os in the evaluation trace")
	plotPath := fs.String("plot", "", "write the latency CDF PNG here")
	if err := parse(fs, args); err != nil {
		return err
	}
	_, err := linnos.RunDemo(ctx, linnos.DemoConfig{Preset: *preset, Seed: *seed, NumIOs: *n, PlotPath: *plotPath, Progress: progressBar(stderr)}, stdout)
	return err
}
