package router

import (
	"testing"

	"github.com/lakeos/lake/liteflow/model"
)

// BenchmarkQuery measures the router's overhead over a bare snapshot run
// (the baseline, in the same run): flowless queries, queries of an existing
// flow, and both in parallel on all cores.
func BenchmarkQuery(b *testing.B) {
	s := snap(b, 1, model.Tanh)
	r, _ := New(Config{InputDim: inDim, OutputDim: outDim})
	if _, err := r.Install(s); err != nil {
		b.Fatal(err)
	}
	x := inputs(1)[0]
	b.Run("snapshot-run-baseline", func(b *testing.B) {
		out := make([]float32, outDim)
		for b.Loop() {
			_ = s.Run(x, out)
		}
	})
	b.Run("router-flowless", func(b *testing.B) {
		out := make([]float32, outDim)
		for b.Loop() {
			_, _ = r.Query(0, x, out)
		}
	})
	b.Run("router-flow", func(b *testing.B) {
		out := make([]float32, outDim)
		_, _ = r.Query(99, x, out)
		for b.Loop() {
			_, _ = r.Query(99, x, out)
		}
	})
	b.Run("router-flowless-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			out := make([]float32, outDim)
			for pb.Next() {
				_, _ = r.Query(0, x, out)
			}
		})
	})
	b.Run("install", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.Install(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
