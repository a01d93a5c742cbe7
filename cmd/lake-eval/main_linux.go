//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lakeos/lake/eval/blktrace"
	"github.com/lakeos/lake/eval/fio"
	"github.com/lakeos/lake/eval/loopdev"
	"github.com/lakeos/lake/eval/recorded"
	"github.com/lakeos/lake/internal/plot"
	"github.com/lakeos/lake/linnos"
)

type options struct {
	jobsDir     string
	outDir      string
	workloads   []string
	runtime     time.Duration
	sizeMiB     int
	device      string
	destructive bool
	trainFrac   float64
	maxTrain    int
	epochs      int
	live        string
	liveRuntime time.Duration
	tmpDir      string
}

func main() {
	var o options
	var wl string
	flag.StringVar(&o.jobsDir, "jobs", "eval/jobs", "directory of fio job files (<workload>.fio)")
	flag.StringVar(&o.outDir, "out", "results/eval", "results folder (table, plots, traces)")
	flag.StringVar(&wl, "workloads", "randread,randread-flush,azure,bingi,cosmos", "comma-separated workloads (job file names without .fio)")
	flag.DurationVar(&o.runtime, "runtime", 8*time.Second, "fio run time per workload")
	flag.IntVar(&o.sizeMiB, "size-mib", 256, "loop device size in MiB (the span fio uses)")
	flag.StringVar(&o.device, "device", "", "use this block device instead of a loop device")
	flag.BoolVar(&o.destructive, "destructive", false, "allow write workloads on -device (destroys its data)")
	flag.Float64Var(&o.trainFrac, "train-frac", 0.5, "fraction of each trace (first part) used for training")
	flag.IntVar(&o.maxTrain, "max-train", 40000, "at most this many training samples (the first ones)")
	flag.IntVar(&o.epochs, "epochs", 4, "training epochs")
	flag.StringVar(&o.live, "live", "randread-flush", "workload to serve live through laked (empty: skip)")
	flag.DurationVar(&o.liveRuntime, "live-runtime", 5*time.Second, "fio run time of the live run")
	flag.StringVar(&o.tmpDir, "tmp", os.TempDir(), "where the loop device's backing file goes")
	flag.Parse()
	for _, w := range strings.Split(wl, ",") {
		if w = strings.TrimSpace(w); w != "" {
			o.workloads = append(o.workloads, w)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lake-eval:", err)
		os.Exit(1)
	}
}

func validate(o *options) error {
	if len(o.workloads) == 0 {
		return errors.New("no workloads")
	}
	for _, w := range o.workloads {
		if strings.ContainsAny(w, "/\\") || strings.HasPrefix(w, ".") {
			return fmt.Errorf("bad workload name %q", w)
		}
		if _, err := os.Stat(filepath.Join(o.jobsDir, w+".fio")); err != nil {
			return fmt.Errorf("workload %q: %w", w, err)
		}
	}
	if o.runtime < time.Second || o.runtime > 10*time.Minute {
		return fmt.Errorf("-runtime %v not in [1s, 10m]", o.runtime)
	}
	if o.sizeMiB < 16 || o.sizeMiB > 4096 {
		return fmt.Errorf("-size-mib %d not in [16, 4096]", o.sizeMiB)
	}
	if !(o.trainFrac > 0 && o.trainFrac < 1) {
		return fmt.Errorf("-train-frac %v not in (0,1)", o.trainFrac)
	}
	if o.maxTrain < 100 || o.epochs < 1 || o.epochs > 100 {
		return fmt.Errorf("-max-train %d (>= 100) or -epochs %d (1..100) out of range", o.maxTrain, o.epochs)
	}
	return nil
}

// jobWrites says whether a job file has a writing job (rw=...write/rw/trim).
func jobWrites(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.ReplaceAll(strings.TrimSpace(l), " ", "")
		if v, ok := strings.CutPrefix(l, "rw="); ok && v != "read" && v != "randread" {
			return true, nil
		}
		if v, ok := strings.CutPrefix(l, "readwrite="); ok && v != "read" && v != "randread" {
			return true, nil
		}
	}
	return false, nil
}

type row struct {
	name        string
	fioReads    uint64
	fioP50Us    float64
	reqs, reads int
	stats       blktrace.Stats
	thrUs       float64
	pct         float64
	train, test int
	m           linnos.Metrics
	res         []*recorded.Result
}

func run(ctx context.Context, o options, w io.Writer) (err error) {
	if err := validate(&o); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (loop devices and the eBPF tracer)")
	}
	began := time.Now()
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	devPath := o.device
	if devPath == "" {
		fmt.Fprintf(w, "creating a %d MiB loop device (direct I/O) backed by a file in %s...\n", o.sizeMiB, o.tmpDir)
		d, err := loopdev.Create(ctx, o.tmpDir, loopdev.Options{SizeBytes: int64(o.sizeMiB) << 20, DirectIO: true, Fill: true})
		if err != nil {
			return err
		}
		defer func() {
			if derr := d.Detach(); derr != nil && err == nil {
				err = derr
			}
		}()
		devPath = d.Path
	} else {
		for _, wl := range o.workloads {
			writes, err := jobWrites(filepath.Join(o.jobsDir, wl+".fio"))
			if err != nil {
				return err
			}
			if writes && !o.destructive {
				return fmt.Errorf("workload %s writes to %s: pass -destructive to allow it", wl, devPath)
			}
		}
	}
	kdev, err := blktrace.DeviceOf(devPath)
	if err != nil {
		return err
	}
	tr, err := blktrace.Open(blktrace.Options{Devices: []uint32{kdev}, RingBytes: 16 << 20})
	if err != nil {
		return err
	}
	defer tr.Close()
	fmt.Fprintf(w, "tracing %s (dev %d:%d) with the eBPF block tracer\n", devPath, kdev>>20, kdev&(1<<20-1))

	var rows []*row
	models := map[string]*linnos.IntModel{}
	thresholds := map[string]float64{}
	for _, wl := range o.workloads {
		r, im, err := evalWorkload(ctx, o, tr, devPath, wl, w)
		if err != nil {
			return fmt.Errorf("workload %s: %w", wl, err)
		}
		rows = append(rows, r)
		models[wl], thresholds[wl] = im, r.thrUs
	}
	var tbl strings.Builder
	writeTable(&tbl, rows, o)
	fmt.Fprint(w, "\n", tbl.String())
	if err := os.WriteFile(filepath.Join(o.outDir, "results.md"), []byte(tbl.String()), 0o644); err != nil {
		return err
	}
	if o.live != "" {
		im := models[o.live]
		if im == nil {
			return fmt.Errorf("-live %q is not one of the evaluated workloads", o.live)
		}
		var lb strings.Builder
		if err := runLive(ctx, o, tr, devPath, o.live, im, thresholds[o.live], &lb); err != nil {
			return fmt.Errorf("live: %w", err)
		}
		fmt.Fprint(w, "\n", lb.String())
		f, err := os.OpenFile(filepath.Join(o.outDir, "results.md"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := io.WriteString(f, "\n"+lb.String())
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	fmt.Fprintf(w, "\nresults in %s; done in %v\n", o.outDir, time.Since(began).Round(time.Second))
	return nil
}

// traceRun runs one fio job file under the tracer and returns its events.
func traceRun(ctx context.Context, o options, tr *blktrace.Tracer, dev, wl string, runtime time.Duration, fn func(blktrace.Event) error) (*fio.Result, blktrace.Stats, error) {
	if err := tr.Reset(); err != nil { // the device is idle between runs
		return nil, blktrace.Stats{}, err
	}
	before, err := tr.Stats()
	if err != nil {
		return nil, blktrace.Stats{}, err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(rctx, fn) }()
	env := []string{"LAKE_DEV=" + dev, fmt.Sprintf("LAKE_RUNTIME=%d", int(runtime.Seconds())), fmt.Sprintf("LAKE_SIZE=%dm", o.sizeMiB)}
	if o.device != "" {
		env[2] = "LAKE_SIZE=100%"
	}
	res, ferr := fio.RunEnv(ctx, env, filepath.Join(o.jobsDir, wl+".fio"))
	stop()
	rerr := <-done
	if ferr != nil {
		return nil, blktrace.Stats{}, ferr
	}
	if rerr != nil {
		return nil, blktrace.Stats{}, rerr
	}
	after, err := tr.Stats()
	if err != nil {
		return nil, blktrace.Stats{}, err
	}
	d := blktrace.Stats{
		Lost: after.Lost - before.Lost, Unmatched: after.Unmatched - before.Unmatched,
		Issues: after.Issues - before.Issues, Completes: after.Completes - before.Completes,
		TrackFailures: after.TrackFailures - before.TrackFailures, Missed: after.Missed - before.Missed,
		Malformed: after.Malformed - before.Malformed, InFlight: after.InFlight, Replaced: after.Replaced - before.Replaced,
	}
	return res, d, nil
}

func evalWorkload(ctx context.Context, o options, tr *blktrace.Tracer, dev, wl string, w io.Writer) (*row, *linnos.IntModel, error) {
	fmt.Fprintf(w, "\n== %s: fio for %v under the tracer...\n", wl, o.runtime)
	var evs []blktrace.Event
	res, st, err := traceRun(ctx, o, tr, dev, wl, o.runtime, func(e blktrace.Event) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	reqs := recorded.FromEvents(evs)
	if err := writeTraceFile(filepath.Join(o.outDir, wl+".trace"), reqs); err != nil {
		return nil, nil, err
	}
	reads, _ := res.Total()
	r := &row{name: wl, fioReads: reads.IOs, reqs: len(reqs), stats: st}
	for _, j := range res.Jobs {
		if j.Read.IOs > 0 {
			if p, ok := j.Read.Percentile(50); ok {
				r.fioP50Us = p / 1e3
				break
			}
		}
	}
	s := recorded.Samples(reqs)
	r.reads = s.Len()
	fmt.Fprintf(w, "   fio: %d reads; traced %d requests (%d reads), lost events %d, missed %d, never completed %d+%d\n",
		reads.IOs, len(reqs), s.Len(), st.Lost, st.Missed, st.InFlight, st.Replaced)
	trainS, testS, err := recorded.Split(s, o.trainFrac)
	if err != nil {
		return nil, nil, err
	}
	if trainS.Len() > o.maxTrain {
		trainS = &linnos.Samples{Features: trainS.Features[:o.maxTrain*linnos.NumInputs], LatencyUs: trainS.LatencyUs[:o.maxTrain]}
	}
	r.train, r.test = trainS.Len(), testS.Len()
	t0 := time.Now()
	trn, err := linnos.Train(ctx, trainS, linnos.TrainConfig{Epochs: o.epochs, Seed: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	im, err := linnos.Quantize(trn.Model)
	if err != nil {
		return nil, nil, err
	}
	r.thrUs, r.pct = trn.ThresholdUs, trn.Percentile
	fmt.Fprintf(w, "   trained on %d reads in %v: slow above %.0f µs (p%.1f)\n", trainS.Len(), time.Since(t0).Round(time.Millisecond), r.thrUs, r.pct)
	dec, err := recorded.Predict(im, testS)
	if err != nil {
		return nil, nil, err
	}
	if r.m, err = recorded.Classify(testS, dec, r.thrUs); err != nil {
		return nil, nil, err
	}
	if r.res, err = recorded.ReplayReplicas(testS, dec, recorded.ReplayConfig{ThresholdUs: r.thrUs}); err != nil {
		return nil, nil, err
	}
	if err := writeCDF(filepath.Join(o.outDir, wl+"-cdf.png"), wl, r.res, false); err != nil {
		return nil, nil, err
	}
	if err := writeCDF(filepath.Join(o.outDir, wl+"-cdf-tail.png"), wl, r.res, true); err != nil {
		return nil, nil, err
	}
	return r, im, nil
}

func writeTraceFile(path string, reqs []recorded.Request) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := recorded.WriteTrace(f, reqs); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// writeCDF draws the read latency CDFs of res; tail zooms on the slowest
// 10%.
func writeCDF(path, wl string, res []*recorded.Result, tail bool) error {
	var series []plot.Series
	for _, r := range res {
		series = append(series, plot.Series{Label: r.Mode, Points: plot.CDF(r.Latencies, 2000)})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	opt := plot.Options{
		Title: "read latency CDF, " + wl + " (recorded replicas, held-out part)", XLabel: "latency (us)", YLabel: "fraction of reads",
		LogX: true, LegendBottomRight: true,
	}
	if tail {
		opt.Title += ", tail"
		opt.YMin, opt.YMax = 0.9, 1
	}
	err = plot.Encode(f, series, opt)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

func writeTable(w io.Writer, rows []*row, o options) {
	fmt.Fprintf(w, "### LinnOS on recorded real block traces\n\n")
	fmt.Fprintf(w, "fio %v per workload on %d MiB; trained on the first %.0f%% of each trace (at most %d reads, %d epochs), evaluated on the rest; 3 recorded replicas, up to 2 retries.\n\n",
		o.runtime, o.sizeMiB, 100*o.trainFrac, o.maxTrain, o.epochs)
	tw := w
	fmt.Fprintln(tw, "| workload | fio reads | fio p50 µs | traced req | lost | train/test | slow >µs (pct) | accuracy | false submit | false revoke | revoked | base p50/p99/p99.9 µs | linnos p50/p99/p99.9 µs | oracle p99 µs |")
	fmt.Fprintln(tw, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		b, l, or := r.res[0], r.res[1], r.res[2]
		fmt.Fprintf(tw, "| %s | %d | %.0f | %d | %d | %d/%d | %.0f (p%.1f) | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.0f/%.0f/%.0f | %.0f/%.0f/%.0f | %.0f |\n",
			r.name, r.fioReads, r.fioP50Us, r.reqs, r.stats.LostCompletions(), r.train, r.test, r.thrUs, r.pct,
			100*r.m.Accuracy, 100*r.m.FalseSubmitRate, 100*r.m.FalseRevokeRate, 100*float64(l.Revokes)/float64(max(1, len(l.Latencies))),
			b.Percentile(50), b.Percentile(99), b.Percentile(99.9), l.Percentile(50), l.Percentile(99), l.Percentile(99.9), or.Percentile(99))
	}
	fmt.Fprintln(w, "\nlost = lost + missed + never-completed events of the tracer (see eval/blktrace Stats). Plots: <workload>-cdf.png and <workload>-cdf-tail.png; traces: <workload>.trace.")
}

func pctDur(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted)-1)*p/100+0.5))]
}
