package metrics

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/policy"
	"github.com/lakeos/lake/shm"
)

// DefaultAddr is where laked serves /metrics unless configured otherwise:
// loopback only, so that counters are not exposed to the network by
// default.
const DefaultAddr = "127.0.0.1:9477"

// Path is the URL path of the endpoint.
const Path = "/metrics"

// Source is what the collector reads; *laked.Server implements it.
type Source interface {
	Stats() laked.Stats
	Models() []laked.ModelStatus
}

// PolicySource is what the collector reads from the policy engine;
// *policy.Engine implements it.
type PolicySource interface {
	Status() policy.Status
	Counts() policy.Counts
}

var (
	descSubmissions = prometheus.NewDesc("lake_submissions_total", "Submissions laked accepted from client rings.", nil, nil)
	descCompletions = prometheus.NewDesc("lake_completions_total", "Completions laked posted, by protocol status.", []string{"status"}, nil)
	descBatches     = prometheus.NewDesc("lake_batches_total", "Predict batches run.", nil, nil)
	descBatchSize   = prometheus.NewDesc("lake_batch_size", "Items per predict batch.", nil, nil)
	descQueueWait   = prometheus.NewDesc("lake_queue_wait_seconds", "Time from accepting a predict request to posting its completion.", nil, nil)
	descService     = prometheus.NewDesc("lake_service_time_seconds", "Time a model spent running one batch.", nil, nil)
	descDecisions   = prometheus.NewDesc("lake_decisions_total", "Placement decisions per batch, by side.", []string{"side"}, nil)
	descFallbacks   = prometheus.NewDesc("lake_gpu_fallbacks_total", "Batches placed on the GPU that ran on the CPU.", nil, nil)
	descOverflowed  = prometheus.NewDesc("lake_completions_overflowed_total", "Completions held back because a client's completion ring was full.", nil, nil)
	descSpurious    = prometheus.NewDesc("lake_spurious_wakeups_total", "Clients' doorbell wake-ups with nothing submitted that laked answered with a backoff sleep.", nil, nil)
	descRefused     = prometheus.NewDesc("lake_handshakes_refused_total", "Handshakes refused: max_clients, a limits budget, or a re-attach fd that is not a sealed memfd.", nil, nil)
	descSessions    = prometheus.NewDesc("lake_sessions", "Clients attached now.", nil, nil)
	descServed      = prometheus.NewDesc("lake_sessions_served_total", "Clients attached since start.", nil, nil)
	descModel       = prometheus.NewDesc("lake_model_version", "Version of each served model (1 at load, +1 per replacement).", []string{"id", "name"}, nil)
	descPolicyInfo  = prometheus.NewDesc("lake_policy_info", "The active placement policy (value is always 1).", []string{"active", "kernel"}, nil)
	descPolicyDec   = prometheus.NewDesc("lake_policy_decisions_total", "Decisions the policy engine made, by side.", []string{"side"}, nil)
	descPolicyErrs  = prometheus.NewDesc("lake_policy_errors_total", "Decisions the BPF policy failed to make (its Go twin answered).", nil, nil)
)

// Collector is a prometheus.Collector over a laked server and, optionally,
// its policy engine. It is safe for concurrent scrapes.
type Collector struct {
	src Source
	pol PolicySource
}

// NewCollector returns a collector reading src and, when pol is not nil,
// the policy engine.
func NewCollector(src Source, pol PolicySource) *Collector {
	return &Collector{src: src, pol: pol}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSubmissions, descCompletions, descBatches, descBatchSize, descQueueWait,
		descService, descDecisions, descFallbacks, descOverflowed, descSpurious, descRefused, descSessions, descServed, descModel} {
		ch <- d
	}
	if c.pol != nil {
		ch <- descPolicyInfo
		ch <- descPolicyDec
		ch <- descPolicyErrs
	}
}

// StatusLabel is the status label value of a protocol status: its name
// with spaces as underscores ("ok", "not_found", "bad_opcode").
func StatusLabel(name string) string { return strings.ReplaceAll(name, " ", "_") }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descSubmissions, st.Submissions)
	// Every known status is exported (zero included) so that rates over
	// a series that first appears mid-range are not lost.
	seen := map[string]bool{}
	for s := shm.StatusOK; int(s) < shm.NumStatuses; s++ {
		name := s.String()
		seen[name] = true
		counter(descCompletions, st.Completions[name], StatusLabel(name))
	}
	extra := make([]string, 0)
	for name := range st.Completions {
		if !seen[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		counter(descCompletions, st.Completions[name], StatusLabel(name))
	}
	counter(descBatches, st.Batches)
	ch <- constHistogram(descBatchSize, st.BatchSize)
	ch <- constHistogram(descQueueWait, st.QueueWait)
	ch <- constHistogram(descService, st.ServiceTime)
	counter(descDecisions, st.DecisionsCPU, "cpu")
	counter(descDecisions, st.DecisionsGPU, "gpu")
	counter(descFallbacks, st.GPUFallbacks)
	counter(descOverflowed, st.Overflowed)
	counter(descSpurious, st.SpuriousWakes)
	counter(descRefused, st.Refused)
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(st.Sessions))
	counter(descServed, st.SessionsServed)
	for _, m := range c.src.Models() {
		ch <- prometheus.MustNewConstMetric(descModel, prometheus.GaugeValue, float64(m.Version), strconv.FormatUint(uint64(m.ID), 10), m.Info.Name)
	}
	if c.pol != nil {
		ps := c.pol.Status()
		ch <- prometheus.MustNewConstMetric(descPolicyInfo, prometheus.GaugeValue, 1, ps.Active, strconv.FormatBool(ps.Kernel))
		pc := c.pol.Counts()
		counter(descPolicyDec, pc.CPU, "cpu")
		counter(descPolicyDec, pc.GPU, "gpu")
		counter(descPolicyErrs, pc.Errors)
	}
}

// constHistogram converts a laked snapshot (per-bucket counts, the last
// above every bound) to a Prometheus histogram (cumulative counts, +Inf
// implied by the total). A malformed snapshot becomes an invalid metric,
// which the registry reports as a scrape error instead of panicking.
func constHistogram(d *prometheus.Desc, h laked.HistogramSnapshot) prometheus.Metric {
	if len(h.Counts) != len(h.Bounds)+1 {
		return prometheus.NewInvalidMetric(d, fmt.Errorf("histogram has %d bounds and %d counts", len(h.Bounds), len(h.Counts)))
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, ub := range h.Bounds {
		cum += h.Counts[i]
		buckets[ub] = cum
	}
	total := cum + h.Counts[len(h.Bounds)]
	m, err := prometheus.NewConstHistogram(d, total, h.Sum, buckets)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

// NewRegistry returns a registry holding a Collector over src (and pol
// when not nil), the Go runtime and process collectors, and extra (for
// example the kernel statistics of package kernelstats).
func NewRegistry(src Source, pol PolicySource, extra ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range append([]prometheus.Collector{
		NewCollector(src, pol),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, extra...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register collector: %w", err)
		}
	}
	return reg, nil
}

// Handler returns the http.Handler for /metrics over src (a
// *laked.Server) and pol (a *policy.Engine, or nil), plus the extra
// collectors. A pol that is a nil *policy.Engine counts as nil.
func Handler(src Source, pol PolicySource, extra ...prometheus.Collector) (http.Handler, error) {
	if s, ok := src.(*laked.Server); src == nil || (ok && s == nil) {
		return nil, fmt.Errorf("metrics: no server to read")
	}
	if e, ok := pol.(*policy.Engine); ok && e == nil {
		pol = nil
	}
	reg, err := NewRegistry(src, pol, extra...)
	if err != nil {
		return nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	}), nil
}
