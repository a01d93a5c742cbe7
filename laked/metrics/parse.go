package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MaxScrapeBytes bounds a /metrics body Scrape and Parse accept.
const MaxScrapeBytes = 8 << 20

// ErrBadExposition is wrapped when a scraped body is not a valid laked
// exposition.
var ErrBadExposition = errors.New("metrics: bad exposition")

// Snapshot is laked's series read back from the text exposition format:
// what lakectl stats shows.
type Snapshot struct {
	Submissions    uint64            `json:"submissions"`
	Completions    map[string]uint64 `json:"completions"` // by status label
	Batches        uint64            `json:"batches"`
	BatchSize      Histogram         `json:"batch_size"`
	QueueWait      Histogram         `json:"queue_wait_seconds"`
	ServiceTime    Histogram         `json:"service_time_seconds"`
	Decisions      map[string]uint64 `json:"decisions"` // by side
	GPUFallbacks   uint64            `json:"gpu_fallbacks"`
	Overflowed     uint64            `json:"completions_overflowed"`
	SpuriousWakes  uint64            `json:"spurious_wakeups"`
	Refused        uint64            `json:"handshakes_refused"`
	Sessions       int64             `json:"sessions"`
	SessionsServed uint64            `json:"sessions_served"`
	Models         []ModelVersion    `json:"models"`
	Policy         *PolicySnapshot   `json:"policy,omitempty"`
}

// TotalCompletions sums completions over all statuses.
func (s *Snapshot) TotalCompletions() uint64 {
	var n uint64
	for _, v := range s.Completions {
		n += v
	}
	return n
}

// ModelVersion is one lake_model_version series.
type ModelVersion struct {
	ID      uint32 `json:"id"`
	Name    string `json:"name"`
	Version uint64 `json:"version"`
}

// PolicySnapshot is the policy engine's series.
type PolicySnapshot struct {
	Active    string            `json:"active"`
	Kernel    bool              `json:"kernel"`
	Decisions map[string]uint64 `json:"decisions"`
	Errors    uint64            `json:"errors"`
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      uint64  `json:"count"` // observations <= UpperBound
}

// Histogram is a histogram read back from the exposition: cumulative
// buckets in increasing bound order (+Inf excluded; Count is the total).
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []Bucket `json:"buckets"`
}

// Mean is Sum/Count, or 0 without observations.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / float64(h.Count)
}

// Quantile estimates the q-quantile (0 <= q <= 1) the way PromQL's
// histogram_quantile does: linear interpolation inside the bucket that
// holds it, the lower bound of the first bucket taken as 0. It returns
// NaN without observations, and the highest finite bound when the
// quantile falls above it.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 || math.IsNaN(q) || len(h.Buckets) == 0 {
		return math.NaN()
	}
	q = math.Min(math.Max(q, 0), 1)
	rank := q * float64(h.Count)
	lowerBound, lowerCount := 0.0, uint64(0)
	for _, b := range h.Buckets {
		if float64(b.Count) >= rank && b.Count > lowerCount {
			frac := (rank - float64(lowerCount)) / float64(b.Count-lowerCount)
			return lowerBound + (b.UpperBound-lowerBound)*frac
		}
		lowerBound, lowerCount = b.UpperBound, b.Count
	}
	return h.Buckets[len(h.Buckets)-1].UpperBound
}

// UpperBound returns the upper bound of the bucket that holds the
// q-quantile (the "at most" answer for integer-valued histograms such as
// batch size), +Inf when it lies above every bound, NaN without
// observations.
func (h Histogram) UpperBound(q float64) float64 {
	if h.Count == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	rank := math.Min(math.Max(q, 0), 1) * float64(h.Count)
	for _, b := range h.Buckets {
		if float64(b.Count) >= rank && b.Count > 0 {
			return b.UpperBound
		}
	}
	return math.Inf(1)
}

// Parse reads a text exposition (what Handler serves) into a Snapshot.
// The input is untrusted: it is size-limited, and a lake_ series with a
// wrong type, a negative, fractional or non-finite count, or bad labels
// is an error wrapping ErrBadExposition that names the series. Series
// laked does not export are ignored.
func Parse(r io.Reader) (*Snapshot, error) {
	lr := &io.LimitedReader{R: r, N: MaxScrapeBytes + 1}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(lr)
	if lr.N <= 0 {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBadExposition, MaxScrapeBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadExposition, err)
	}
	if _, ok := fams["lake_submissions_total"]; !ok {
		return nil, fmt.Errorf("%w: no lake_submissions_total series (is this laked's /metrics?)", ErrBadExposition)
	}
	s := &Snapshot{Completions: map[string]uint64{}, Decisions: map[string]uint64{}}
	d := decoder{fams: fams}
	s.Submissions = d.counter("lake_submissions_total")
	d.labelled("lake_completions_total", "status", s.Completions)
	s.Batches = d.counter("lake_batches_total")
	s.BatchSize = d.histogram("lake_batch_size")
	s.QueueWait = d.histogram("lake_queue_wait_seconds")
	s.ServiceTime = d.histogram("lake_service_time_seconds")
	d.labelled("lake_decisions_total", "side", s.Decisions)
	s.GPUFallbacks = d.counter("lake_gpu_fallbacks_total")
	s.Overflowed = d.counter("lake_completions_overflowed_total")
	s.SpuriousWakes = d.counter("lake_spurious_wakeups_total")
	s.Refused = d.counter("lake_handshakes_refused_total")
	if g, ok := d.gauge("lake_sessions"); ok {
		if g < -1<<53 || g > 1<<53 || g != math.Trunc(g) {
			d.fail("lake_sessions", "value %v is not an integer", g)
		} else {
			s.Sessions = int64(g)
		}
	}
	s.SessionsServed = d.counter("lake_sessions_served_total")
	s.Models = d.models()
	if f, ok := fams["lake_policy_info"]; ok {
		ps := &PolicySnapshot{Decisions: map[string]uint64{}}
		if len(f.GetMetric()) != 1 {
			d.fail("lake_policy_info", "%d series, want 1", len(f.GetMetric()))
		} else {
			m := f.GetMetric()[0]
			ps.Active = labelValue(m, "active")
			ps.Kernel = labelValue(m, "kernel") == "true"
		}
		d.labelled("lake_policy_decisions_total", "side", ps.Decisions)
		ps.Errors = d.counter("lake_policy_errors_total")
		s.Policy = ps
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// Scrape fetches url (laked's /metrics) and parses it. Errors say
// whether laked could not be reached or answered something else. url
// "unix:/path" scrapes laked's unix-socket endpoint (metrics_addr
// unix:/path); client is then ignored.
func Scrape(ctx context.Context, client *http.Client, url string) (*Snapshot, error) {
	if sock, ok := strings.CutPrefix(url, "unix:"); ok {
		client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
		url = "http://laked" + Path
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: scrape %q: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: scrape %s (is laked running with metrics enabled?): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: scrape %s: HTTP %s", url, resp.Status)
	}
	s, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics: scrape %s: %w", url, err)
	}
	return s, nil
}

// decoder reads typed values out of the parsed families, remembering the
// first error.
type decoder struct {
	fams map[string]*dto.MetricFamily
	err  error
}

func (d *decoder) fail(name, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrBadExposition, name, fmt.Sprintf(format, args...))
	}
}

// count converts a sample value to a count.
func (d *decoder) count(name string, v float64) uint64 {
	if math.IsNaN(v) || v < 0 || v >= 1<<64 || v != math.Trunc(v) {
		d.fail(name, "value %v is not a count", v)
		return 0
	}
	return uint64(v)
}

// family returns the named family, checking its type; nil when absent.
func (d *decoder) family(name string, t dto.MetricType) *dto.MetricFamily {
	f, ok := d.fams[name]
	if !ok {
		return nil
	}
	if f.GetType() != t {
		d.fail(name, "type %s, want %s", f.GetType(), t)
		return nil
	}
	return f
}

func (d *decoder) counter(name string) uint64 {
	f := d.family(name, dto.MetricType_COUNTER)
	if f == nil {
		return 0
	}
	if len(f.GetMetric()) != 1 {
		d.fail(name, "%d series, want 1", len(f.GetMetric()))
		return 0
	}
	return d.count(name, f.GetMetric()[0].GetCounter().GetValue())
}

func (d *decoder) gauge(name string) (float64, bool) {
	f := d.family(name, dto.MetricType_GAUGE)
	if f == nil {
		return 0, false
	}
	if len(f.GetMetric()) != 1 {
		d.fail(name, "%d series, want 1", len(f.GetMetric()))
		return 0, false
	}
	v := f.GetMetric()[0].GetGauge().GetValue()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail(name, "value %v", v)
		return 0, false
	}
	return v, true
}

// labelled reads a counter family with one label into dst.
func (d *decoder) labelled(name, label string, dst map[string]uint64) {
	f := d.family(name, dto.MetricType_COUNTER)
	if f == nil {
		return
	}
	for _, m := range f.GetMetric() {
		k := labelValue(m, label)
		if k == "" {
			d.fail(name, "series without a %q label", label)
			return
		}
		if _, dup := dst[k]; dup {
			d.fail(name, "duplicate series %s=%q", label, k)
			return
		}
		dst[k] = d.count(name, m.GetCounter().GetValue())
	}
}

func (d *decoder) histogram(name string) Histogram {
	f := d.family(name, dto.MetricType_HISTOGRAM)
	if f == nil {
		return Histogram{}
	}
	if len(f.GetMetric()) != 1 {
		d.fail(name, "%d series, want 1", len(f.GetMetric()))
		return Histogram{}
	}
	h := f.GetMetric()[0].GetHistogram()
	out := Histogram{Count: d.count(name, float64(h.GetSampleCount())), Sum: h.GetSampleSum()}
	if math.IsNaN(out.Sum) || math.IsInf(out.Sum, 0) {
		d.fail(name, "sum %v", out.Sum)
	}
	prevBound, prevCount := math.Inf(-1), uint64(0)
	for _, b := range h.GetBucket() {
		ub, c := b.GetUpperBound(), b.GetCumulativeCount()
		if math.IsInf(ub, +1) {
			continue
		}
		if math.IsNaN(ub) || ub <= prevBound || c < prevCount || c > out.Count {
			d.fail(name, "bucket le=%v count %d is out of order", ub, c)
			return Histogram{}
		}
		out.Buckets = append(out.Buckets, Bucket{UpperBound: ub, Count: c})
		prevBound, prevCount = ub, c
	}
	return out
}

func (d *decoder) models() []ModelVersion {
	f := d.family("lake_model_version", dto.MetricType_GAUGE)
	if f == nil {
		return nil
	}
	out := make([]ModelVersion, 0, len(f.GetMetric()))
	for _, m := range f.GetMetric() {
		id, err := strconv.ParseUint(labelValue(m, "id"), 10, 32)
		if err != nil {
			d.fail("lake_model_version", "id label %q: %v", labelValue(m, "id"), err)
			return nil
		}
		out = append(out, ModelVersion{ID: uint32(id), Name: labelValue(m, "name"),
			Version: d.count("lake_model_version", m.GetGauge().GetValue())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
