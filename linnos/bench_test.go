package linnos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchSetup returns a model trained like the demo's (quantized) and 4096
// real feature vectors from a baseline replay of the Azure preset, shared by
// the Go and C benchmarks so both see the same inputs.
var benchSetup = sync.OnceValues(func() (*DemoModel, []int32) {
	dm, err := TrainDemoModel(context.Background(), DemoConfig{Seed: 3, TrainIOs: 8000, Epochs: 2})
	if err != nil {
		panic(err)
	}
	p, _ := PresetByName("azure")
	tr, _ := Generate(p, 6000, 42)
	var s Samples
	if _, err := Replay(context.Background(), tr, Baseline, ReplayConfig{Seed: 42}, &s); err != nil {
		panic(err)
	}
	n := min(4096, s.Len())
	return dm, s.Features[:n*NumInputs]
})

// cRefNsPerIO runs the gcc -O2 reference harness over the same vectors for
// about ms milliseconds and returns its ns per I/O. The binary is built once.
func cRefNsPerIO(b *testing.B, batch, ms int) float64 {
	dm, vecs := benchSetup()
	cRefOnce.Do(func() {
		dir, err := os.MkdirTemp("", "linnos-cref-bench")
		if err != nil {
			b.Fatal(err)
		}
		cRefDir = dir
		cRefBin = buildCRefIn(b, dm.Int, dir)
	})
	if cRefBin == "" {
		b.Fatal("C reference did not build")
	}
	cmd := exec.Command(cRefBin, "bench", strconv.Itoa(batch), strconv.Itoa(ms))
	cmd.Stdin = bytes.NewReader(vectorInput(vecs))
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("C bench: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "ns_per_io" {
		b.Fatalf("C bench output %q", out)
	}
	ns, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return ns
}

var (
	cRefOnce sync.Once
	cRefBin  string
	cRefDir  string
)

// TestMain removes the benchmark's C build directory (benchmarks have no
// TempDir that outlives one sub-benchmark).
func TestMain(m *testing.M) {
	code := m.Run()
	if cRefDir != "" {
		os.RemoveAll(cRefDir)
	}
	os.Exit(code)
}

// reportVsC reports Go's ns/io and, on the long (final) round, runs the C
// reference right afterwards for as long as Go ran and reports C÷Go, so that
// both are measured under the same machine conditions.
func reportVsC(b *testing.B, batch int) {
	goNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(batch)
	b.ReportMetric(goNs, "ns/io")
	if _, err := exec.LookPath("gcc"); err != nil || b.Elapsed() < 300*time.Millisecond {
		return
	}
	cNs := cRefNsPerIO(b, batch, int(b.Elapsed().Milliseconds()))
	b.ReportMetric(cNs, "C_ns/io")
	b.ReportMetric(cNs/goNs, "speedup_vs_C")
}

// BenchmarkIntPredict measures the bit-exact integer path; speedup_vs_C is the
// gcc -O2 reference's ns/io divided by Go's, measured in the same run.
func BenchmarkIntPredict(b *testing.B) {
	benchPredict(b, func(dm *DemoModel) batchPredictor { return dm.Int })
}

// batchPredictor is what the predict benchmarks run.
type batchPredictor interface {
	PredictBatch(in, out []int32) error
}

// benchPredict runs the model pick chooses over the benchmark vectors in
// batches of 1 and 64 and reports the speed against the C reference.
func benchPredict(b *testing.B, pick func(*DemoModel) batchPredictor) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			dm, vecs := benchSetup()
			m := pick(dm)
			out := make([]int32, batch)
			nv := len(vecs) / NumInputs
			b.ResetTimer()
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
			b.StopTimer()
			reportVsC(b, batch)
		})
	}
}

// BenchmarkFloatPredict measures the float32 path (speedup_vs_C compares it
// with the integer C reference).
func BenchmarkFloatPredict(b *testing.B) {
	benchPredict(b, func(dm *DemoModel) batchPredictor { return dm.Train.Model })
}

// BenchmarkCReference reports the gcc -O2 reference's own ns/io (it runs the
// compiled C harness for 1 s per batch size; ns/op is meaningless here).
func BenchmarkCReference(b *testing.B) {
	needGCC(b)
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ns := cRefNsPerIO(b, batch, 1000)
			for i := 0; i < b.N; i++ {
			}
			b.ReportMetric(ns, "ns/io")
		})
	}
}
