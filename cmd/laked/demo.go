package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/linnos"
)

// demoConfig is the embedded default job: the Azure-like preset on the
// SSD model, trained and replayed with fixed seeds.
var demoConfig = linnos.DemoConfig{Preset: "azure", Seed: 3}

// runDemo is laked's default job: it starts a laked on a private socket,
// trains and serves a LinnOS model, replays a generated trace through it
// from a lakelib client (every LinnOS decision is a predict through the
// ring), and prints what it did.
func runDemo(cfg *Config, log zerolog.Logger) error {
	return demo(context.Background(), cfg, log, os.Stdout)
}

func demo(ctx context.Context, cfgIn *Config, log zerolog.Logger, w io.Writer) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "laked-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := *cfgIn
	cfg.Socket = filepath.Join(dir, "laked.sock")
	cfg.Device = ""

	fmt.Fprintf(w, "laked demo: training LinnOS on a generated %s trace (seed %d)...\n", demoConfig.Preset, demoConfig.Seed)
	dm, err := linnos.TrainDemoModel(ctx, demoConfig)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	tm := dm.Train.Test
	fmt.Fprintf(w, "  slow threshold %.0f µs; held-out accuracy %.2f%%, false submit %.2f%%, false revoke %.2f%%\n",
		dm.Train.ThresholdUs, 100*tm.Accuracy, 100*tm.FalseSubmitRate, 100*tm.FalseRevokeRate)

	d, err := start(ctx, &cfg, log, dm.Int, nil)
	if err != nil {
		return err
	}
	srv := d.srv
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.stop(sctx)
	}()
	c, err := lakelib.Dial(ctx, cfg.Socket, lakelib.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := c.ModelInfo(ctx, modelLinnOS)
	if err != nil {
		return fmt.Errorf("model info: %w", err)
	}
	fmt.Fprintf(w, "laked: serving model %d (linnos, %d-byte inputs, %d-byte outputs, version %d) on %s\n",
		modelLinnOS, info.InputBytes, info.OutputBytes, info.Version, cfg.Socket)

	p := &lakedPredictor{c: c, model: modelLinnOS}
	src, err := newRegistrySource(d.features, 64)
	if err != nil {
		return fmt.Errorf("feature registry: %w", err)
	}
	dc := demoConfig
	dc.Predictor = p
	dc.Features = src
	dc.ThresholdUs = dm.Train.ThresholdUs
	fmt.Fprintf(w, "placement policy: %s (in the kernel: %v)\n", d.engine.Status().Active, d.engine.Status().Kernel)
	fmt.Fprintln(w, "replaying through laked: I/O arrivals and completions are recorded in the feature registry, and every LinnOS decision is a predict over the shared-memory ring")
	if _, err := linnos.RunDemo(ctx, dc, w); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	st := srv.Stats()
	lat := p.latencies()
	burst, err := demoBurst(ctx, cfg.Socket, srv)
	if err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	fmt.Fprintf(w, "\nlaked did: %d submissions, %d completions (%v), %d predict batches of %.1f items on average, placement cpu=%d gpu=%d (gpu fallbacks %d)\n",
		st.Submissions, st.TotalCompletions(), st.Completions, st.Batches, avg(st.BatchItems, st.Batches),
		st.DecisionsCPU, st.DecisionsGPU, st.GPUFallbacks)
	if len(lat) > 0 {
		fmt.Fprintf(w, "predict latency seen by the caller: p50 %v, p99 %v, max %v over %d calls\n",
			pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1], len(lat))
	}
	fmt.Fprint(w, burst)
	if schemas, err := d.features.Schemas(); err == nil {
		for _, sc := range schemas {
			fmt.Fprintf(w, "feature registry: schema %q\n", sc.Name())
		}
	}
	fmt.Fprintf(w, "done in %v\n", time.Since(began).Round(time.Millisecond))
	return nil
}

func avg(sum, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(float64(len(sorted)-1)*p)].Round(100 * time.Nanosecond)
}

// lakedPredictor is a linnos.Predictor that asks laked.
type lakedPredictor struct {
	c     *lakelib.Client
	model uint32

	mu  sync.Mutex
	lat []time.Duration
	in  []byte
	out []byte
}

// Predict implements linnos.Predictor through lakelib.Predict.
func (p *lakedPredictor) Predict(features []int32, n int, decisions []bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	need := n * linnos.NumInputs
	if len(features) < need || len(decisions) < n {
		return fmt.Errorf("predictor: %d items with %d features and %d decisions", n, len(features), len(decisions))
	}
	if cap(p.in) < 4*need {
		p.in = make([]byte, 4*need)
	}
	if cap(p.out) < 4*n {
		p.out = make([]byte, 4*n)
	}
	in, out := p.in[:4*need], p.out[:4*n]
	for i, v := range features[:need] {
		binary.LittleEndian.PutUint32(in[4*i:], uint32(v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := p.c.Predict(ctx, p.model, n, in, out); err != nil {
		return err
	}
	p.lat = append(p.lat, time.Since(t0))
	for i := 0; i < n; i++ {
		decisions[i] = binary.LittleEndian.Uint32(out[4*i:]) == 1
	}
	return nil
}

func (p *lakedPredictor) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := append([]time.Duration(nil), p.lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l
}

// demoBurst shows cross-client batching: 8 clients (8 regions) each send
// single-I/O predicts as fast as they can for half a second, and laked
// gathers them into batches.
func demoBurst(ctx context.Context, socket string, srv *laked.Server) (string, error) {
	const clients, window = 8, 500 * time.Millisecond
	before := srv.Stats()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	calls := make([]int, clients)
	stop := time.Now().Add(window)
	for k := 0; k < clients; k++ {
		c, err := lakelib.Dial(ctx, socket, lakelib.Options{})
		if err != nil {
			return "", err
		}
		defer c.Close()
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			in := make([]byte, laked.LinnOSInputBytes)
			out := make([]byte, laked.LinnOSOutputBytes)
			for time.Now().Before(stop) {
				in[k%len(in)]++
				if _, err := c.Predict(ctx, modelLinnOS, 1, in, out); err != nil {
					errs <- err
					return
				}
				calls[k]++
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	after := srv.Stats()
	total := 0
	for _, n := range calls {
		total += n
	}
	b := after.Batches - before.Batches
	return fmt.Sprintf("burst: %d clients sent %d single-I/O predicts in %v; laked ran them as %d batches (%.1f items per batch on average)\n",
		clients, total, window, b, avg(after.BatchItems-before.BatchItems, b)), nil
}
