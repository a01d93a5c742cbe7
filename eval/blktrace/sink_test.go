package blktrace

import (
	"testing"

	"github.com/lakeos/lake/features"
)

func newLinnOS(t testing.TB) *features.LinnOS {
	t.Helper()
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 32, ArenaBytes: 1 << 18}
	reg, err := features.Create(make([]byte, features.SizeFor(cfg)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := features.NewLinnOS(reg, 8)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestFeatureSink checks that completed reads become the LinnOS history
// (queue depth at issue, the read included, and latency), that completed
// writes do not, and the layout of the vector.
func TestFeatureSink(t *testing.T) {
	s, err := NewFeatureSink(newLinnOS(t))
	if err != nil {
		t.Fatal(err)
	}
	dev := KernelDev(7, 1)
	for i, qd := range []uint32{5, 12, 7, 3} {
		is := Event{Kind: KindIssue, Op: OpRead, Dev: dev, Bytes: 4096, QueueDepth: qd, IssueNs: uint64(i) * 1000}
		if err := s.Record(is); err != nil {
			t.Fatal(err)
		}
		done := is
		done.Kind, done.DoneNs = KindComplete, is.IssueNs+uint64(100+i)*1000 // 100..103 µs
		if err := s.Record(done); err != nil {
			t.Fatal(err)
		}
		w := done
		w.Op, w.QueueDepth, w.DoneNs = OpWrite, 900, w.DoneNs+9000_000 // not history
		if err := s.Record(w); err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.Features(Event{Kind: KindIssue, Dev: dev, QueueDepth: 42, Bytes: 4096}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{0, 0, 6, 0, 1, 3, 0, 0, 8, 0, 0, 4, // last 4 reads' pending at issue (depth+1), oldest first
		0, 4, 3, // pending now: depth 42 + the read
		0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 2, 0, 1, 0, 3} // their latencies
	if len(f) != len(want) {
		t.Fatalf("%d features, want %d", len(f), len(want))
	}
	for i := range want {
		if f[i] != want[i] {
			t.Fatalf("features %v, want %v", f, want)
		}
	}
	if err := s.Record(Event{Kind: 7}); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := NewFeatureSink(nil); err == nil {
		t.Fatal("nil recorder accepted")
	}
}
