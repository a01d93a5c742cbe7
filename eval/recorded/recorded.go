package recorded

import (
	"bufio"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/lakeos/lake/eval/blktrace"
	"github.com/lakeos/lake/linnos"
)

// Request is one completed request of a recorded trace.
type Request struct {
	// IssueUs is the issue time in µs since the first request of the trace.
	IssueUs float64
	// LatUs is issue-to-completion latency in µs.
	LatUs  float64
	Dev    uint32
	Op     blktrace.Op
	Sector uint64
	Bytes  uint32
	// QD is the number of requests in flight on Dev at issue.
	QD uint32
}

// FromEvents keeps the completion events (each carries its issue time),
// sorted by issue time, with times relative to the first. QD is recomputed
// from the trace itself: the number of traced requests on the same device
// issued before and completed after this one's issue. (The kernel-side
// counter in Event.QueueDepth drifts upwards by every completion the tracer
// missed; the recomputation only undercounts by missed completions still
// in flight, see blktrace.Stats.)
func FromEvents(evs []blktrace.Event) []Request {
	var out []Request
	var t0 uint64 = math.MaxUint64
	for _, e := range evs {
		if e.Kind == blktrace.KindComplete && e.Error == 0 {
			t0 = min(t0, e.IssueNs)
		}
	}
	for _, e := range evs {
		if e.Kind != blktrace.KindComplete || e.Error != 0 {
			continue
		}
		out = append(out, Request{
			IssueUs: float64(e.IssueNs-t0) / 1e3, LatUs: float64(e.LatencyNs()) / 1e3,
			Dev: e.Dev, Op: e.Op, Sector: e.Sector, Bytes: e.Bytes, QD: e.QueueDepth,
		})
	}
	slices.SortStableFunc(out, func(a, b Request) int { return cmpF(a.IssueUs, b.IssueUs) })
	recomputeQD(out)
	return out
}

// recomputeQD sets each request's QD to the number of earlier-issued
// requests on its device still in flight at its issue (reqs sorted by
// issue time).
func recomputeQD(reqs []Request) {
	inflight := map[uint32]*doneHeap{}
	for i := range reqs {
		r := &reqs[i]
		h := inflight[r.Dev]
		if h == nil {
			h = &doneHeap{}
			inflight[r.Dev] = h
		}
		for h.Len() > 0 && (*h)[0] <= r.IssueUs {
			heap.Pop(h)
		}
		r.QD = uint32(h.Len())
		heap.Push(h, r.IssueUs+r.LatUs)
	}
}

type doneHeap []float64

func (h doneHeap) Len() int           { return len(h) }
func (h doneHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h doneHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *doneHeap) Push(x any)        { *h = append(*h, x.(float64)) }
func (h *doneHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Samples builds LinnOS samples for the reads of reqs (sorted by issue
// time): each read's 31 inputs are, in the layout of package linnos, the
// queue depths at issue and the latencies of the last 4 reads completed on
// its device before it was issued, and its own queue depth at issue (each
// depth counting the read itself); its label is its latency.
func Samples(reqs []Request) *linnos.Samples {
	type ev struct {
		t    float64
		done bool
		i    int
	}
	evs := make([]ev, 0, 2*len(reqs))
	for i, r := range reqs {
		evs = append(evs, ev{r.IssueUs, false, i}, ev{r.IssueUs + r.LatUs, true, i})
	}
	// Completions before issues at the same instant.
	slices.SortStableFunc(evs, func(a, b ev) int {
		if c := cmpF(a.t, b.t); c != 0 {
			return c
		}
		if a.done != b.done {
			if a.done {
				return -1
			}
			return 1
		}
		return 0
	})
	ext := map[uint32]*linnos.Extractor{}
	s := &linnos.Samples{}
	var f [linnos.NumInputs]int32
	for _, e := range evs {
		r := reqs[e.i]
		x := ext[r.Dev]
		if x == nil {
			x = &linnos.Extractor{}
			ext[r.Dev] = x
		}
		if r.Op != blktrace.OpRead {
			continue // writes count in QD, not in the history
		}
		if e.done {
			x.Complete(int(r.QD)+1, int(math.Round(r.LatUs)))
			continue
		}
		x.Features(int(r.QD)+1, f[:])
		s.Features = append(s.Features, f[:]...)
		s.LatencyUs = append(s.LatencyUs, r.LatUs)
	}
	return s
}

// Split returns the first frac of s (in trace order) and the rest.
func Split(s *linnos.Samples, frac float64) (first, rest *linnos.Samples, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("recorded: split fraction %v is not in (0,1)", frac)
	}
	n := s.Len()
	k := int(float64(n) * frac)
	if k == 0 || k == n {
		return nil, nil, fmt.Errorf("recorded: %d samples cannot be split at %v", n, frac)
	}
	first = &linnos.Samples{Features: s.Features[:k*linnos.NumInputs], LatencyUs: s.LatencyUs[:k]}
	rest = &linnos.Samples{Features: s.Features[k*linnos.NumInputs:], LatencyUs: s.LatencyUs[k:]}
	return first, rest, nil
}

// Predict asks p about every sample of s, in batches.
func Predict(p linnos.Predictor, s *linnos.Samples) ([]bool, error) {
	n := s.Len()
	dec := make([]bool, n)
	const batch = 256
	for i := 0; i < n; i += batch {
		m := min(batch, n-i)
		if err := p.Predict(s.Features[i*linnos.NumInputs:(i+m)*linnos.NumInputs], m, dec[i:i+m]); err != nil {
			return nil, fmt.Errorf("recorded: predict: %w", err)
		}
	}
	return dec, nil
}

// Classify scores decisions (true = slow) against the labels of s
// (slow = latency > thresholdUs). Rates are fractions of all samples.
func Classify(s *linnos.Samples, dec []bool, thresholdUs float64) (linnos.Metrics, error) {
	if len(dec) != s.Len() {
		return linnos.Metrics{}, fmt.Errorf("recorded: %d decisions for %d samples", len(dec), s.Len())
	}
	m := linnos.Metrics{N: len(dec)}
	if m.N == 0 {
		return m, nil
	}
	var ok, fs, fr int
	for i, slow := range dec {
		truth := s.LatencyUs[i] > thresholdUs
		switch {
		case slow == truth:
			ok++
		case truth:
			fs++
		default:
			fr++
		}
	}
	n := float64(m.N)
	m.Accuracy, m.FalseSubmitRate, m.FalseRevokeRate = float64(ok)/n, float64(fs)/n, float64(fr)/n
	return m, nil
}

// Result is one replay mode's read latencies.
type Result struct {
	Mode string
	// Latencies in µs, sorted.
	Latencies []float64
	// Revokes is the number of reads sent away from their primary.
	Revokes int
}

// Percentile returns the p-th percentile (0..100) of the latencies.
func (r *Result) Percentile(p float64) float64 {
	return linnos.Percentile(r.Latencies, p/100)
}

// ReplayConfig configures ReplayReplicas.
type ReplayConfig struct {
	Replicas    int     // recorded replicas (default 3)
	MaxRetries  int     // revoke-and-retry attempts after the primary (default 2)
	ThresholdUs float64 // slow threshold, for the oracle mode (required)
	// InferenceUs is added to a read per prediction made for it.
	InferenceUs float64
}

// ReplayReplicas replays the test samples (features and recorded
// latencies) across cfg.Replicas rotated replicas (see the package doc) in
// three modes: "baseline" (every read on its primary), "linnos" (revoke and
// retry on the next replica while dec says slow; after the last try the
// read is forced onto its primary) and "oracle" (the same with perfect
// predictions: an upper bound). dec[j] is the prediction for sample j.
func ReplayReplicas(s *linnos.Samples, dec []bool, cfg ReplayConfig) ([]*Result, error) {
	n := s.Len()
	if len(dec) != n {
		return nil, fmt.Errorf("recorded: %d decisions for %d samples", len(dec), n)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 2
	}
	if cfg.Replicas < 1 || cfg.MaxRetries < 0 || !(cfg.ThresholdUs > 0) || cfg.InferenceUs < 0 {
		return nil, fmt.Errorf("recorded: bad replay config %+v", cfg)
	}
	if n < cfg.Replicas {
		return nil, fmt.Errorf("recorded: %d samples for %d replicas", n, cfg.Replicas)
	}
	tries := min(cfg.Replicas, 1+cfg.MaxRetries)
	shift := n / cfg.Replicas
	base := &Result{Mode: "baseline"}
	ln := &Result{Mode: "linnos"}
	or := &Result{Mode: "oracle"}
	for i := 0; i < n; i++ {
		base.Latencies = append(base.Latencies, s.LatencyUs[i])
		lat, revoked := s.LatencyUs[i]+float64(tries)*cfg.InferenceUs, 0
		for k := 0; k < tries; k++ {
			j := (i + k*shift) % n
			if !dec[j] {
				lat = s.LatencyUs[j] + float64(k+1)*cfg.InferenceUs
				break
			}
			revoked = 1
		}
		ln.Latencies = append(ln.Latencies, lat)
		ln.Revokes += revoked
		olat, orev := s.LatencyUs[i], 0
		for k := 0; k < tries; k++ {
			j := (i + k*shift) % n
			if s.LatencyUs[j] <= cfg.ThresholdUs {
				olat = s.LatencyUs[j]
				break
			}
			orev = 1
		}
		or.Latencies = append(or.Latencies, olat)
		or.Revokes += orev
	}
	res := []*Result{base, ln, or}
	for _, r := range res {
		slices.Sort(r.Latencies)
	}
	return res, nil
}

// ErrTrace is wrapped by every ReadTrace error.
var ErrTrace = errors.New("recorded: bad trace line")

// MaxTraceRequests bounds what ReadTrace accepts.
const MaxTraceRequests = 10_000_000

// WriteTrace writes reqs one per line: issue_us lat_us dev sector bytes op qd.
func WriteTrace(w io.Writer, reqs []Request) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# issue_us lat_us dev sector bytes op qd (dev = major<<20|minor)")
	for _, r := range reqs {
		fmt.Fprintf(bw, "%.3f %.3f %d %d %d %s %d\n", r.IssueUs, r.LatUs, r.Dev, r.Sector, r.Bytes, r.Op, r.QD)
	}
	return bw.Flush()
}

// ParseLine parses one WriteTrace line. Every field is validated: finite
// non-negative times (latency at most an hour), size in (0, 64 MiB], op one
// of R, W, D, ?, queue depth at most 1<<20.
func ParseLine(line string) (Request, error) {
	f := strings.Fields(line)
	if len(f) != 7 {
		return Request{}, fmt.Errorf("%w: %d fields, want 7", ErrTrace, len(f))
	}
	var r Request
	var err error
	if r.IssueUs, err = parseTime(f[0], math.MaxFloat64); err != nil {
		return Request{}, fmt.Errorf("%w: issue_us: %w", ErrTrace, err)
	}
	if r.LatUs, err = parseTime(f[1], 3600e6); err != nil {
		return Request{}, fmt.Errorf("%w: lat_us: %w", ErrTrace, err)
	}
	dev, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return Request{}, fmt.Errorf("%w: dev: %w", ErrTrace, err)
	}
	r.Dev = uint32(dev)
	if r.Sector, err = strconv.ParseUint(f[3], 10, 64); err != nil {
		return Request{}, fmt.Errorf("%w: sector: %w", ErrTrace, err)
	}
	b, err := strconv.ParseUint(f[4], 10, 32)
	if err != nil || b == 0 || b > linnos.MaxTraceIOSize {
		return Request{}, fmt.Errorf("%w: size %q not in (0, %d]", ErrTrace, f[4], linnos.MaxTraceIOSize)
	}
	r.Bytes = uint32(b)
	switch f[5] {
	case "R":
		r.Op = blktrace.OpRead
	case "W":
		r.Op = blktrace.OpWrite
	case "D":
		r.Op = blktrace.OpDiscard
	case "?":
		r.Op = blktrace.OpOther
	default:
		return Request{}, fmt.Errorf("%w: op %q", ErrTrace, f[5])
	}
	qd, err := strconv.ParseUint(f[6], 10, 32)
	if err != nil || qd > 1<<20 {
		return Request{}, fmt.Errorf("%w: queue depth %q", ErrTrace, f[6])
	}
	r.QD = uint32(qd)
	return r, nil
}

func parseTime(s string, maxV float64) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || v < 0 || v > maxV {
		return 0, fmt.Errorf("%q out of range [0, %g]", s, maxV)
	}
	return v, nil
}

// ReadTrace reads a WriteTrace file (blank lines and # comments are
// skipped), at most maxReqs requests (0 = MaxTraceRequests), sorted by
// issue time.
func ReadTrace(ctx context.Context, r io.Reader, maxReqs int) ([]Request, error) {
	if maxReqs <= 0 || maxReqs > MaxTraceRequests {
		maxReqs = MaxTraceRequests
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	var out []Request
	for ln := 1; sc.Scan(); ln++ {
		if ln%65536 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if len(out) == maxReqs {
			return nil, fmt.Errorf("recorded: trace has more than %d requests", maxReqs)
		}
		req, err := ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		out = append(out, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("recorded: read trace: %w", err)
	}
	slices.SortStableFunc(out, func(a, b Request) int { return cmpF(a.IssueUs, b.IssueUs) })
	return out, nil
}
