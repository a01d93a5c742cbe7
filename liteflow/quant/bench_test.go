package quant

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/snapshot"
	"github.com/lakeos/lake/vecmath"
)

// benchShapes are the models lake serves: the Aurora policy, the
// flow-size predictor and a LinnOS-sized classifier.
var benchShapes = []struct {
	name  string
	sizes []int
	acts  []model.Activation
}{
	{"aurora-30-32-16-1-tanh", []int{30, 32, 16, 1}, []model.Activation{model.Tanh, model.Tanh, model.Identity}},
	{"flowsize-5-5-5-1-relu", []int{5, 5, 5, 1}, []model.Activation{model.ReLU, model.ReLU, model.Identity}},
	{"linnos-31-256-2-relu", []int{31, 256, 2}, []model.Activation{model.ReLU, model.Identity}},
}

// threadCPU returns the calling thread's CPU time in ns.
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// loop runs f b.N times on a locked thread and reports cpu_ns/op, the
// thread's CPU time per call (steadier than ns/op on a shared machine).
func loop(b *testing.B, f func(i int)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	c0 := threadCPU()
	for i := 0; i < b.N; i++ {
		f(i)
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu_ns/op")
}

// BenchmarkInference compares one query on the float model (MLP.Forward,
// the userspace baseline) with the int8 snapshot (Snapshot.Run, float in
// and out) and the integer-only entry point (RunQuantized) in the same
// run; the int8 entry points run at every vecmath level, and
// int8-quantized-io/reference is the scalar reference engine.
func BenchmarkInference(b *testing.B) {
	for _, sh := range benchShapes {
		m, err := model.NewMLP(sh.sizes, sh.acts, 1)
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		xs := make([][]float32, 256)
		for i := range xs {
			xs[i] = make([]float32, sh.sizes[0])
			for j := range xs[i] {
				xs[i][j] = float32(r.NormFloat64())
			}
		}
		s, err := Quantize(m, xs, Options{PerChannel: true})
		if err != nil {
			b.Fatal(err)
		}
		out := make([]float32, m.OutputDim())
		b.Run(sh.name+"/float", func(b *testing.B) {
			var sc model.Scratch
			loop(b, func(i int) { _ = m.Forward(xs[i&255], out, &sc) })
		})
		qin := make([][]int32, 256)
		for i := range qin {
			qin[i] = make([]int32, sh.sizes[0])
			for j, v := range xs[i] {
				qin[i][j] = snapshot.QuantizeValue(v, s.Input, s.DType)
			}
		}
		qout := make([]int32, m.OutputDim())
		b.Run(sh.name+"/int8-quantized-io/reference", func(b *testing.B) {
			loop(b, func(i int) { _ = s.RunQuantizedReference(qin[i&255], qout) })
		})
		// A batch of 64 queries per call: the metrics are per query.
		const batch = 64
		bx := make([]float32, batch*sh.sizes[0])
		bq := make([]int32, batch*sh.sizes[0])
		for i := range batch {
			copy(bx[i*sh.sizes[0]:], xs[i])
			copy(bq[i*sh.sizes[0]:], qin[i])
		}
		bout, bqout := make([]float32, batch*m.OutputDim()), make([]int32, batch*m.OutputDim())
		for _, lv := range vecmath.Supported() {
			b.Run(fmt.Sprintf("%s/int8-batch64/%v", sh.name, lv), func(b *testing.B) {
				defer vecmath.SetLevel(must(vecmath.SetLevel(lv)))
				loopBatch(b, batch, func() { _ = s.RunBatch(bx, bout) })
			})
			b.Run(fmt.Sprintf("%s/int8-quantized-io-batch64/%v", sh.name, lv), func(b *testing.B) {
				defer vecmath.SetLevel(must(vecmath.SetLevel(lv)))
				loopBatch(b, batch, func() { _ = s.RunQuantizedBatch(bq, bqout) })
			})
		}
		for _, lv := range vecmath.Supported() {
			b.Run(fmt.Sprintf("%s/int8/%v", sh.name, lv), func(b *testing.B) {
				defer vecmath.SetLevel(must(vecmath.SetLevel(lv)))
				loop(b, func(i int) { _ = s.Run(xs[i&255], out) })
			})
			b.Run(fmt.Sprintf("%s/int8-quantized-io/%v", sh.name, lv), func(b *testing.B) {
				defer vecmath.SetLevel(must(vecmath.SetLevel(lv)))
				loop(b, func(i int) { _ = s.RunQuantized(qin[i&255], qout) })
			})
		}
	}
}

// loopBatch runs f (one batch of n queries) b.N times on a locked thread
// and reports ns/query and cpu_ns/query.
func loopBatch(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	c0, t0 := threadCPU(), time.Now()
	for i := 0; i < b.N; i++ {
		f()
	}
	q := float64(b.N * n)
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/q, "ns/query")
	b.ReportMetric(float64(threadCPU()-c0)/q, "cpu_ns/query")
}

func must(l vecmath.Level, err error) vecmath.Level {
	if err != nil {
		panic(err)
	}
	return l
}
