package blktrace

import (
	"testing"

	"github.com/lakeos/lake/linnos"
)

// BenchmarkRecordEvent measures what laked pays per traced read to keep
// the LinnOS inputs in the shared feature registry (issue + completion
// recorded, then the 31 inputs built); the "extractor" sub-benchmark is the
// baseline: the same with a private linnos.Extractor (no shared memory).
func BenchmarkRecordEvent(b *testing.B) {
	dev := KernelDev(7, 0)
	is := Event{Kind: KindIssue, Op: OpRead, Dev: dev, Bytes: 4096, QueueDepth: 3, IssueNs: 1000}
	done := is
	done.Kind, done.DoneNs = KindComplete, 251_000
	b.Run("extractor", func(b *testing.B) {
		var x linnos.Extractor
		var f [linnos.NumInputs]int32
		for b.Loop() {
			x.Features(int(is.QueueDepth)+1, f[:])
			x.Complete(int(is.QueueDepth)+1, int(done.LatencyNs()/1000))
		}
	})
	b.Run("registry", func(b *testing.B) {
		s, err := NewFeatureSink(newLinnOS(b))
		if err != nil {
			b.Fatal(err)
		}
		f := make([]int32, 0, linnos.NumInputs)
		for b.Loop() {
			if f, err = s.Features(is, f); err != nil {
				b.Fatal(err)
			}
			if err := s.Record(is); err != nil {
				b.Fatal(err)
			}
			if err := s.Record(done); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		raw := AppendEvent(nil, done)
		for b.Loop() {
			if _, err := DecodeEvent(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
