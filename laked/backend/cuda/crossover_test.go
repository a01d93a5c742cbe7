//go:build cuda

package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/linnos"
)

// Crossover batch sizes: 1 … 4096 in powers of two.
var crossoverSizes = func() []int {
	var s []int
	for n := 1; n <= 4096; n *= 2 {
		s = append(s, n)
	}
	return s
}()

// medianOf runs f reps times and returns the median duration.
func medianOf(reps int, f func() error) (time.Duration, error) {
	d := make([]time.Duration, reps)
	for i := range d {
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		d[i] = time.Since(t0)
	}
	slices.Sort(d)
	return d[reps/2], nil
}

// TestGPUCrossover measures, for LinnOS, +1 and +2, the time of one batch
// of 1 … 4096 items on the CPU (linnos.IntModel.PredictBatch, one core,
// as laked runs a CPU batch) and on the GPU (lake_linnos_int including
// both copies: from and to a cuMemHostRegister'ed mapping, as laked's runs
// path copies a registered client arena, and, for comparison, from Go
// memory), the median of several runs each, in the same run. It
// reports the smallest batch from which the GPU is faster and the
// policy parameters that follow (gpu_min_batch; gpu_batch_ns, the GPU's
// fixed cost per batch). It runs only when LAKE_GPU_CROSSOVER names a
// folder for the report (make gpu-check sets it), since it takes a
// while.
func TestGPUCrossover(t *testing.T) {
	dir := os.Getenv("LAKE_GPU_CROSSOVER")
	if dir == "" {
		t.Skip("LAKE_GPU_CROSSOVER not set (make gpu-check runs this)")
	}
	b := newGPU(t, backend.Limits{})
	if onFake(b) {
		t.Skip("the fake CUDA driver runs the kernels on the host CPU: a crossover measured on it says nothing about a GPU")
	}
	maxN := crossoverSizes[len(crossoverSizes)-1]
	size := maxN * 4 * (linnos.NumInputs + 1)
	arena := registeredMapping(t, b, size)
	var rep strings.Builder
	fmt.Fprintf(&rep, "# LinnOS CPU vs GPU crossover on %s\n\n", b.DeviceName())
	fmt.Fprintf(&rep, "Median of the per-batch times (CPU: linnos.IntModel.PredictBatch on one core; GPU: lake_linnos_int with the host-to-device and device-to-host copies, from and to a cuMemHostRegister'ed mapping as laked copies a registered client arena; GPU pageable: the same from Go memory), measured in the same run. The threshold uses the registered column.\n\n")
	for extra := 0; extra <= linnos.MaxExtra; extra++ {
		_, q := linnosModels(t, extra)
		g, err := NewLinnOSInt(b, q)
		if err != nil {
			t.Fatal(err)
		}
		name := []string{"LinnOS", "LinnOS+1", "LinnOS+2"}[extra]
		fmt.Fprintf(&rep, "## %s\n\n| batch | CPU µs | GPU µs | GPU/CPU | GPU pageable µs |\n|---:|---:|---:|---:|---:|\n", name)
		crossover := 0
		var gpu1 time.Duration
		var cpuPer, gpuPer float64
		for _, n := range crossoverSizes {
			in := linnosInputs(n, 11)
			inb := i32bytes(in)
			outI := make([]int32, n)
			outB := make([]byte, 4*n)
			ins := [][]byte{arena[:len(inb)]}
			outs := [][]byte{arena[len(inb) : len(inb)+4*n]}
			copy(ins[0], inb)
			reps := max(5, min(101, 20000/n))
			// Warm both paths first.
			q.PredictBatch(in, outI)
			if err := g.Predict(inb, outB, n); err != nil {
				t.Fatal(err)
			}
			cpu, err := medianOf(reps, func() error { return q.PredictBatch(in, outI) })
			if err != nil {
				t.Fatal(err)
			}
			gpu, err := medianOf(reps, func() error { return g.PredictRuns(ins, outs, n) })
			if err != nil {
				t.Fatal(err)
			}
			pageable, err := medianOf(reps, func() error { return g.Predict(inb, outB, n) })
			if err != nil {
				t.Fatal(err)
			}
			if string(outs[0]) != string(outB) {
				t.Fatalf("%s n=%d: registered and pageable answers differ", name, n)
			}
			if n == 1 {
				gpu1 = gpu
			}
			if gpu < cpu && crossover == 0 {
				crossover = n
			}
			if n == crossoverSizes[len(crossoverSizes)-1] {
				cpuPer, gpuPer = float64(cpu)/float64(n), float64(gpu)/float64(n)
			}
			fmt.Fprintf(&rep, "| %d | %.1f | %.1f | %.3f | %.1f |\n", n, float64(cpu)/1e3, float64(gpu)/1e3, float64(gpu)/float64(cpu), float64(pageable)/1e3)
		}
		g.Close()
		fmt.Fprintf(&rep, "\n%s: GPU faster from batch %d (0: never up to 4096). GPU time of a 1-item batch (≈ gpu_batch_ns): %d ns; per item at 4096: CPU %.0f ns, GPU %.0f ns.\n\n", name, crossover, gpu1.Nanoseconds(), cpuPer, gpuPer)
		t.Logf("%s: crossover at batch %d", name, crossover)
	}
	if err := os.WriteFile(filepath.Join(dir, "crossover.md"), []byte(rep.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.String())
}

// BenchmarkGPULinnOS measures one GPU LinnOS batch (with copies) per
// size, for go test -bench on a GPU machine.
func BenchmarkGPULinnOS(b *testing.B) {
	be := newGPU(b, backend.Limits{})
	if onFake(be) {
		b.Skip("the fake CUDA driver runs the kernels on the host CPU: not a GPU's speed")
	}
	for extra := 0; extra <= linnos.MaxExtra; extra++ {
		_, q := linnosModels(b, extra)
		g, err := NewLinnOSInt(be, q)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 64, 4096} {
			in := i32bytes(linnosInputs(n, 1))
			out := make([]byte, 4*n)
			b.Run(fmt.Sprintf("extra=%d/n=%d", extra, n), func(b *testing.B) {
				for b.Loop() {
					if err := g.Predict(in, out, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		g.Close()
	}
}
