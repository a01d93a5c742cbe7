package linnos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/vecmath"
)

// benchVectors returns 4096 real feature vectors from a baseline replay of
// the Azure preset, shared by the Go and C benchmarks so both see the same
// inputs.
var benchVectors = sync.OnceValue(func() []int32 {
	p, _ := PresetByName("azure")
	tr, _ := Generate(p, 6000, 42)
	var s Samples
	if _, err := Replay(context.Background(), tr, Baseline, ReplayConfig{Seed: 42}, &s); err != nil {
		panic(err)
	}
	n := min(4096, s.Len())
	return s.Features[:n*NumInputs]
})

// benchModels holds one model trained like the demo's (quantized) per
// number of extra layers.
var benchModels struct {
	sync.Mutex
	m [MaxExtra + 1]*DemoModel
}

func benchModel(extra int) *DemoModel {
	benchModels.Lock()
	defer benchModels.Unlock()
	if benchModels.m[extra] == nil {
		dm, err := TrainDemoModel(context.Background(), DemoConfig{Seed: 3, TrainIOs: 8000, Epochs: 2, Extra: extra})
		if err != nil {
			panic(err)
		}
		benchModels.m[extra] = dm
	}
	return benchModels.m[extra]
}

// cRef is the C reference built at -O3 -march=native -fwrapv for one model.
var cRef struct {
	sync.Mutex
	dir string
	bin [MaxExtra + 1]string
}

// cRefTimes runs the C reference over the benchmark vectors in batches of
// batch for about ms milliseconds and returns its wall and CPU ns per I/O.
// The first call per model builds it and checks that it computes the same
// outputs as Go on those vectors.
func cRefTimes(b *testing.B, extra, batch, ms int) (wall, cpu float64) {
	dm, vecs := benchModel(extra), benchVectors()
	cRef.Lock()
	if cRef.dir == "" {
		dir, err := os.MkdirTemp("", "linnos-cref-bench")
		if err != nil {
			b.Fatal(err)
		}
		cRef.dir = dir
	}
	if cRef.bin[extra] == "" {
		dir := filepath.Join(cRef.dir, strconv.Itoa(extra))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		bin := buildCRefIn(b, dm.Int, dir, "-O3", "-march=native")
		want := make([]int64, 2*len(vecs)/NumInputs)
		if err := dm.Int.Logits(vecs, want); err != nil {
			b.Fatal(err)
		}
		got := runCRefEval(b, bin, vecs)
		if len(got) != len(want) {
			b.Fatalf("C reference printed %d values, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				b.Fatalf("C reference -O3 -march=native output %d = %d, Go %d", i, got[i], want[i])
			}
		}
		cRef.bin[extra] = bin
	}
	bin := cRef.bin[extra]
	cRef.Unlock()
	cmd := exec.Command(bin, "bench", strconv.Itoa(batch), strconv.Itoa(ms))
	cmd.Stdin = bytes.NewReader(vectorInput(vecs))
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("C bench: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 6 || f[0] != "ns_per_io" || f[4] != "cpu_ns_per_io" {
		b.Fatalf("C bench output %q", out)
	}
	wall, err1 := strconv.ParseFloat(f[1], 64)
	cpu, err2 := strconv.ParseFloat(f[5], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("C bench output %q", out)
	}
	return wall, cpu
}

// TestMain removes the benchmark's C build directory (benchmarks have no
// TempDir that outlives one sub-benchmark).
func TestMain(m *testing.M) {
	code := m.Run()
	if cRef.dir != "" {
		os.RemoveAll(cRef.dir)
	}
	os.Exit(code)
}

// threadCPU returns the calling thread's CPU time in ns.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// batchPredictor is what the predict benchmarks run.
type batchPredictor interface {
	PredictBatch(in, out []int32) error
}

// benchPredict runs the model pick chooses over the benchmark vectors in
// batches of 1 and 64, for the base model and +1/+2, at the scalar level and
// the best vecmath level, and reports ns/io (wall) and cpu_ns/io (the
// benchmark thread's CPU time, steadier on a shared machine). For the best
// level it then runs the C reference (gcc -O3 -march=native) for as long as
// Go ran and reports C's times and speedup_vs_C = C cpu ns ÷ Go cpu ns.
func benchPredict(b *testing.B, pick func(*DemoModel) batchPredictor) {
	levels := []vecmath.Level{vecmath.Scalar}
	if vecmath.Detected() != vecmath.Scalar {
		levels = append(levels, vecmath.Detected())
	}
	for extra := 0; extra <= MaxExtra; extra++ {
		for _, batch := range []int{1, 64} {
			for _, lv := range levels {
				b.Run(fmt.Sprintf("extra=%d/batch=%d/level=%v", extra, batch, lv), func(b *testing.B) {
					m, vecs := pick(benchModel(extra)), benchVectors()
					prev, err := vecmath.SetLevel(lv)
					if err != nil {
						b.Fatal(err)
					}
					defer vecmath.SetLevel(prev)
					out := make([]int32, batch)
					nv := len(vecs) / NumInputs
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					b.ResetTimer()
					cpu0 := threadCPU()
					pos := 0
					for i := 0; i < b.N; i++ {
						if pos+batch > nv {
							pos = 0
						}
						if err := m.PredictBatch(vecs[pos*NumInputs:(pos+batch)*NumInputs], out); err != nil {
							b.Fatal(err)
						}
						pos += batch
					}
					cpuNs := float64(threadCPU()-cpu0) / float64(b.N) / float64(batch)
					b.StopTimer()
					goNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(batch)
					b.ReportMetric(goNs, "ns/io")
					b.ReportMetric(cpuNs, "cpu_ns/io")
					if lv != vecmath.Detected() || b.Elapsed() < 300*time.Millisecond {
						return
					}
					if _, err := exec.LookPath("gcc"); err != nil {
						return
					}
					cWall, cCPU := cRefTimes(b, extra, batch, int(b.Elapsed().Milliseconds()))
					b.ReportMetric(cWall, "C_ns/io")
					b.ReportMetric(cCPU, "C_cpu_ns/io")
					b.ReportMetric(cCPU/cpuNs, "speedup_vs_C")
				})
			}
		}
	}
}

// BenchmarkIntPredict measures the bit-exact integer path.
func BenchmarkIntPredict(b *testing.B) {
	benchPredict(b, func(dm *DemoModel) batchPredictor { return dm.Int })
}

// BenchmarkFloatPredict measures the float32 path (speedup_vs_C compares it
// with the integer C reference).
func BenchmarkFloatPredict(b *testing.B) {
	benchPredict(b, func(dm *DemoModel) batchPredictor { return dm.Train.Model })
}

// BenchmarkCReference reports the C reference's own times (gcc -O3
// -march=native; it runs the compiled harness for 1 s per case; ns/op is
// meaningless here).
func BenchmarkCReference(b *testing.B) {
	needGCC(b)
	for extra := 0; extra <= MaxExtra; extra++ {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("extra=%d/batch=%d", extra, batch), func(b *testing.B) {
				wall, cpu := cRefTimes(b, extra, batch, 1000)
				for i := 0; i < b.N; i++ {
				}
				b.ReportMetric(wall, "ns/io")
				b.ReportMetric(cpu, "cpu_ns/io")
			})
		}
	}
}
