package recorded

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"

	"github.com/lakeos/lake/eval/blktrace"
	"github.com/lakeos/lake/linnos"
)

func TestFromEventsAndSamples(t *testing.T) {
	dev := blktrace.KernelDev(7, 0)
	ev := func(op blktrace.Op, issueUs, latUs, qd uint32) blktrace.Event {
		return blktrace.Event{Kind: blktrace.KindComplete, Op: op, Dev: dev, Bytes: 4096, QueueDepth: qd,
			IssueNs: 1e9 + uint64(issueUs)*1000, DoneNs: 1e9 + uint64(issueUs+latUs)*1000}
	}
	evs := []blktrace.Event{
		ev(blktrace.OpRead, 100, 50, 1), // done at 150
		ev(blktrace.OpRead, 0, 120, 0),  // done at 120
		{Kind: blktrace.KindIssue, Op: blktrace.OpRead, Dev: dev, Bytes: 4096, IssueNs: 1e9}, // ignored
		ev(blktrace.OpWrite, 130, 10, 2), // done at 140
		ev(blktrace.OpRead, 200, 30, 3),
	}
	reqs := FromEvents(evs)
	if len(reqs) != 4 || reqs[0].IssueUs != 0 || reqs[1].IssueUs != 100 || reqs[1].LatUs != 50 || reqs[2].Op != blktrace.OpWrite {
		t.Fatalf("requests %+v", reqs)
	}
	s := Samples(reqs)
	if s.Len() != 3 {
		t.Fatalf("%d samples, want 3 reads", s.Len())
	}
	if s.LatencyUs[0] != 120 || s.LatencyUs[1] != 50 || s.LatencyUs[2] != 30 {
		t.Fatalf("labels %v", s.LatencyUs)
	}
	// Queue depths are recomputed from the intervals (the kernel counter
	// in the events, 0..3, is ignored): at t=100 the read issued at 0 is in
	// flight (1); at 130 only the one issued at 100 (1); at 200 none (0).
	for i, want := range []uint32{0, 1, 1, 0} {
		if reqs[i].QD != want {
			t.Fatalf("request %d: qd %d, want %d", i, reqs[i].QD, want)
		}
	}
	// The last read (issued at 200, qd 0: pending 1 with itself) has seen
	// two reads complete: the one issued at 0 (qd 0, pending 1, 120 µs)
	// and the one issued at 100 (qd 1, pending 2, 50 µs); the write that
	// completed at 140 is not history.
	f := s.Features[2*linnos.NumInputs : 3*linnos.NumInputs]
	want := []int32{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 5, 0}
	for i := range want {
		if f[i] != want[i] {
			t.Fatalf("features %v, want %v", f, want)
		}
	}
}

func samples(lat []float64) *linnos.Samples {
	return &linnos.Samples{Features: make([]int32, len(lat)*linnos.NumInputs), LatencyUs: lat}
}

func TestSplitAndClassify(t *testing.T) {
	s := samples([]float64{10, 20, 300, 40, 500})
	a, b, err := Split(s, 0.6)
	if err != nil || a.Len() != 3 || b.Len() != 2 || b.LatencyUs[0] != 40 {
		t.Fatalf("split %v %v %v", a, b, err)
	}
	if _, _, err := Split(s, 1); err == nil {
		t.Fatal("fraction 1 accepted")
	}
	m, err := Classify(s, []bool{false, true, false, false, true}, 100)
	if err != nil {
		t.Fatal(err)
	}
	// correct: 0, 3, 4; false revoke: 1; false submit: 2.
	if m.N != 5 || m.Accuracy != 0.6 || m.FalseSubmitRate != 0.2 || m.FalseRevokeRate != 0.2 {
		t.Fatalf("metrics %+v", m)
	}
	if _, err := Classify(s, []bool{true}, 100); err == nil {
		t.Fatal("length mismatch accepted")
	}
}

func TestReplayReplicas(t *testing.T) {
	// 6 reads, 3 replicas: replica r of read i is sample (i+2r) mod 6.
	lat := []float64{1000, 10, 20, 30, 40, 2000}
	dec := []bool{true, false, false, false, false, true} // a perfect predictor at 100 µs
	res, err := ReplayReplicas(samples(lat), dec, ReplayConfig{ThresholdUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	base, ln, or := res[0], res[1], res[2]
	if base.Mode != "baseline" || ln.Mode != "linnos" || or.Mode != "oracle" {
		t.Fatalf("modes %s %s %s", base.Mode, ln.Mode, or.Mode)
	}
	if base.Latencies[5] != 2000 || base.Revokes != 0 {
		t.Fatalf("baseline %+v", base)
	}
	// read 0 -> sample 2 (20); read 5 -> sample 1 (10).
	wantLN := []float64{10, 10, 20, 20, 30, 40}
	for i, v := range wantLN {
		if ln.Latencies[i] != v || or.Latencies[i] != v {
			t.Fatalf("linnos %v oracle %v, want %v", ln.Latencies, or.Latencies, wantLN)
		}
	}
	if ln.Revokes != 2 || math.Abs(ln.Percentile(100)-40) > 0 {
		t.Fatalf("revokes %d p100 %v", ln.Revokes, ln.Percentile(100))
	}
	// Every try says slow: forced onto the primary, plus inference time.
	all := []bool{true, true, true, true, true, true}
	res, err = ReplayReplicas(samples(lat), all, ReplayConfig{ThresholdUs: 100, InferenceUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res[1].Latencies[5] != 2003 {
		t.Fatalf("forced read latency %v, want 2003", res[1].Latencies[5])
	}
	if _, err := ReplayReplicas(samples(lat), dec, ReplayConfig{}); err == nil {
		t.Fatal("missing threshold accepted")
	}
}

func TestTraceRoundTrip(t *testing.T) {
	in := []Request{
		{IssueUs: 0, LatUs: 250.5, Dev: 7 << 20, Op: blktrace.OpRead, Sector: 8, Bytes: 4096, QD: 2},
		{IssueUs: 12.25, LatUs: 1000, Dev: 7 << 20, Op: blktrace.OpWrite, Sector: 64, Bytes: 131072, QD: 17},
	}
	var buf bytes.Buffer
	if err := WriteTrace(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadTrace(context.Background(), &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip %+v", out)
	}
	if _, err := ReadTrace(context.Background(), bytes.NewBufferString("1 1 1 1 1 R 1\n2 2 2 2 2 W 2\n"), 1); err == nil {
		t.Fatal("limit not enforced")
	}
	if _, err := ReadTrace(context.Background(), bytes.NewBufferString("1 1 1 1 0 R 1\n"), 0); !errors.Is(err, ErrTrace) {
		t.Fatalf("zero size: %v", err)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("1.5 250 7340032 8 4096 R 2")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseLine(line)
		if err != nil {
			if !errors.Is(err, ErrTrace) {
				t.Fatalf("error %v does not wrap ErrTrace", err)
			}
			return
		}
		if r.Bytes == 0 || r.Bytes > linnos.MaxTraceIOSize || math.IsNaN(r.IssueUs) || r.IssueUs < 0 || r.LatUs < 0 || r.LatUs > 3600e6 || r.QD > 1<<20 {
			t.Fatalf("accepted %+v from %q", r, line)
		}
	})
}
