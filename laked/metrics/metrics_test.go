package metrics

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/policy"
)

// fakeSource serves fixed stats.
type fakeSource struct {
	st     laked.Stats
	models []laked.ModelStatus
}

func (f *fakeSource) Stats() laked.Stats          { return f.st }
func (f *fakeSource) Models() []laked.ModelStatus { return f.models }

type fakePolicy struct {
	st policy.Status
	c  policy.Counts
}

func (f *fakePolicy) Status() policy.Status { return f.st }
func (f *fakePolicy) Counts() policy.Counts { return f.c }

func fixture() *fakeSource {
	return &fakeSource{
		st: laked.Stats{
			Submissions:    42,
			Completions:    map[string]uint64{"ok": 39, "not found": 2, "unknown": 1},
			Batches:        6,
			DecisionsCPU:   5,
			DecisionsGPU:   1,
			GPUFallbacks:   1,
			Sessions:       3,
			SessionsServed: 9,
			Overflowed:     4,
			SpuriousWakes:  5,
			Refused:        6,
			BatchSize:      laked.HistogramSnapshot{Bounds: []float64{1, 2, 4}, Counts: []uint64{2, 1, 2, 1}, Sum: 20},
			QueueWait:      laked.HistogramSnapshot{Bounds: []float64{1e-6, 1e-3}, Counts: []uint64{1, 4, 0}, Sum: 0.002},
			ServiceTime:    laked.HistogramSnapshot{Bounds: []float64{1e-6, 1e-3}, Counts: []uint64{0, 6, 0}, Sum: 0.0006},
		},
		models: []laked.ModelStatus{
			{ID: 7, Info: laked.ModelInfo{Name: "linnos"}, Version: 3},
			{ID: 2, Info: laked.ModelInfo{Name: "mlp"}, Version: 1},
		},
	}
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestCollectorExposition(t *testing.T) {
	src := fixture()
	pol := &fakePolicy{st: policy.Status{Active: "costaware", Kernel: true}, c: policy.Counts{CPU: 10, GPU: 3, Errors: 2}}
	h, err := Handler(src, pol)
	if err != nil {
		t.Fatal(err)
	}
	body := serve(t, h)
	for _, line := range []string{
		"lake_submissions_total 42",
		`lake_completions_total{status="ok"} 39`,
		`lake_completions_total{status="not_found"} 2`,
		`lake_completions_total{status="unknown"} 1`,
		`lake_completions_total{status="bad_opcode"} 0`,
		"lake_batches_total 6",
		`lake_batch_size_bucket{le="1"} 2`,
		`lake_batch_size_bucket{le="2"} 3`,
		`lake_batch_size_bucket{le="4"} 5`,
		`lake_batch_size_bucket{le="+Inf"} 6`,
		"lake_batch_size_sum 20",
		"lake_batch_size_count 6",
		`lake_queue_wait_seconds_bucket{le="0.001"} 5`,
		"lake_queue_wait_seconds_count 5",
		"lake_service_time_seconds_count 6",
		`lake_decisions_total{side="cpu"} 5`,
		`lake_decisions_total{side="gpu"} 1`,
		"lake_gpu_fallbacks_total 1",
		"lake_completions_overflowed_total 4",
		"lake_handshakes_refused_total 6",
		"lake_sessions 3",
		"lake_sessions_served_total 9",
		`lake_model_version{id="2",name="mlp"} 1`,
		`lake_model_version{id="7",name="linnos"} 3`,
		`lake_policy_info{active="costaware",kernel="true"} 1`,
		`lake_policy_decisions_total{side="gpu"} 3`,
		"lake_policy_errors_total 2",
		"# TYPE go_goroutines gauge",
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("exposition lacks %q", line)
		}
	}

	// Round trip through Parse.
	s, err := Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if s.Submissions != 42 || s.Completions["ok"] != 39 || s.Completions["not_found"] != 2 || s.TotalCompletions() != 42 {
		t.Errorf("parsed counters %+v", s)
	}
	if s.BatchSize.Count != 6 || s.BatchSize.Sum != 20 || len(s.BatchSize.Buckets) != 3 || s.BatchSize.Buckets[2] != (Bucket{4, 5}) {
		t.Errorf("parsed batch size %+v", s.BatchSize)
	}
	if s.Sessions != 3 || s.SessionsServed != 9 || s.GPUFallbacks != 1 || s.Overflowed != 4 || s.SpuriousWakes != 5 || s.Decisions["gpu"] != 1 {
		t.Errorf("parsed %+v", s)
	}
	if len(s.Models) != 2 || s.Models[0] != (ModelVersion{2, "mlp", 1}) || s.Models[1] != (ModelVersion{7, "linnos", 3}) {
		t.Errorf("parsed models %+v", s.Models)
	}
	if s.Policy == nil || s.Policy.Active != "costaware" || !s.Policy.Kernel || s.Policy.Errors != 2 || s.Policy.Decisions["cpu"] != 10 {
		t.Errorf("parsed policy %+v", s.Policy)
	}
}

func TestHandlerWithoutPolicy(t *testing.T) {
	var eng *policy.Engine // a nil engine, as laked passes when BPF policies are off
	h, err := Handler(fixture(), eng)
	if err != nil {
		t.Fatal(err)
	}
	body := serve(t, h)
	if strings.Contains(body, "lake_policy_") {
		t.Error("policy series without a policy engine")
	}
	s, err := Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if s.Policy != nil {
		t.Errorf("policy parsed from nothing: %+v", s.Policy)
	}
	var nilServer *laked.Server
	if _, err := Handler(nilServer, nil); err == nil {
		t.Error("Handler with a nil *laked.Server accepted")
	}
	if _, err := Handler(nil, nil); err == nil {
		t.Error("Handler without a source accepted")
	}
}

func TestMalformedHistogramIsAScrapeErrorNotAPanic(t *testing.T) {
	src := fixture()
	src.st.BatchSize = laked.HistogramSnapshot{Bounds: []float64{1, 2}, Counts: []uint64{1}}
	h, err := Handler(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	// ContinueOnError: the rest is still served.
	if !strings.Contains(rec.Body.String(), "lake_submissions_total 42") {
		t.Fatalf("other series lost: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "lake_batch_size_count") {
		t.Error("malformed histogram exported")
	}
}

func TestQuantile(t *testing.T) {
	h := Histogram{Count: 10, Buckets: []Bucket{{1, 0}, {2, 5}, {4, 10}}}
	for _, tc := range []struct{ q, want float64 }{{0.5, 2}, {0.25, 1.5}, {0.75, 3}, {1, 4}, {0, 1}} {
		if got := h.Quantile(tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("q%v = %v, want %v", tc.q, got, tc.want)
		}
	}
	over := Histogram{Count: 4, Buckets: []Bucket{{1, 1}, {2, 2}}} // half above the last bound
	if got := over.Quantile(0.9); got != 2 {
		t.Errorf("quantile above the last bound = %v, want 2", got)
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 2}, {0.51, 4}, {1, 4}, {0, 2}} {
		if got := h.UpperBound(tc.q); got != tc.want {
			t.Errorf("upper bound q%v = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := over.UpperBound(0.9); !math.IsInf(got, 1) {
		t.Errorf("upper bound above the last bucket = %v, want +Inf", got)
	}
	if !math.IsNaN((Histogram{}).Quantile(0.5)) || !math.IsNaN((Histogram{}).UpperBound(0.5)) {
		t.Error("quantile of an empty histogram is not NaN")
	}
	if got := (Histogram{Count: 4, Sum: 10}).Mean(); got != 2.5 {
		t.Errorf("mean %v", got)
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]string{
		"not laked":        "# TYPE up gauge\nup 1\n",
		"syntax":           "lake_submissions_total{ 1\n",
		"negative counter": "# TYPE lake_submissions_total counter\nlake_submissions_total -1\n",
		"fractional":       "# TYPE lake_submissions_total counter\nlake_submissions_total 1.5\n",
		"wrong type":       "# TYPE lake_submissions_total gauge\nlake_submissions_total 1\n",
		"NaN sessions": "# TYPE lake_submissions_total counter\nlake_submissions_total 1\n" +
			"# TYPE lake_sessions gauge\nlake_sessions NaN\n",
		"bad model id": "# TYPE lake_submissions_total counter\nlake_submissions_total 1\n" +
			"# TYPE lake_model_version gauge\nlake_model_version{id=\"x\",name=\"m\"} 1\n",
		"status without label": "# TYPE lake_submissions_total counter\nlake_submissions_total 1\n" +
			"# TYPE lake_completions_total counter\nlake_completions_total 3\n",
		"buckets out of order": "# TYPE lake_submissions_total counter\nlake_submissions_total 1\n" +
			"# TYPE lake_batch_size histogram\nlake_batch_size_bucket{le=\"1\"} 5\nlake_batch_size_bucket{le=\"2\"} 3\n" +
			"lake_batch_size_bucket{le=\"+Inf\"} 5\nlake_batch_size_sum 3\nlake_batch_size_count 5\n",
	}
	for name, in := range cases {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrBadExposition) {
			t.Errorf("%s: err %v, want ErrBadExposition", name, err)
		}
	}
	huge := io.MultiReader(strings.NewReader("# TYPE lake_submissions_total counter\nlake_submissions_total 1\n"),
		bytes.NewReader(bytes.Repeat([]byte("# comment line that pads the body\n"), MaxScrapeBytes/30)))
	if _, err := Parse(huge); !errors.Is(err, ErrBadExposition) {
		t.Errorf("oversized body: %v", err)
	}
}

func TestScrapeErrors(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusInternalServerError)
	}))
	defer hs.Close()
	if _, err := Scrape(t.Context(), nil, hs.URL); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("HTTP 500: %v", err)
	}
	hs.Close()
	if _, err := Scrape(t.Context(), nil, hs.URL); err == nil || !strings.Contains(err.Error(), "is laked running") {
		t.Errorf("closed server: %v", err)
	}
	if _, err := Scrape(t.Context(), nil, "::bad url"); err == nil {
		t.Error("bad url accepted")
	}
}

func FuzzParse(f *testing.F) {
	h, err := Handler(fixture(), &fakePolicy{st: policy.Status{Active: "default"}})
	if err != nil {
		f.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	f.Add(rec.Body.Bytes())
	f.Add([]byte("# TYPE lake_submissions_total counter\nlake_submissions_total 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBadExposition) {
				t.Fatalf("error %v does not wrap ErrBadExposition", err)
			}
			return
		}
		for _, hist := range []Histogram{s.BatchSize, s.QueueWait, s.ServiceTime} {
			_ = hist.Quantile(0.99)
			for _, b := range hist.Buckets {
				if b.Count > hist.Count {
					t.Fatalf("bucket %+v above total %d", b, hist.Count)
				}
			}
		}
	})
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
		ok   bool
	}{
		{"127.0.0.1:9477", true, true},
		{"[::1]:9477", true, true},
		{"localhost:9477", true, true},
		{"127.3.4.5:80", true, true},
		{"0.0.0.0:9477", false, true},
		{":9477", false, true},
		{"10.0.0.1:9477", false, true},
		{"example.com:9477", false, false},
		{"127.0.0.1", false, false},
		{"127.0.0.1:0", false, false},
		{"127.0.0.1:99999", false, false},
	} {
		got, err := IsLoopback(tc.addr)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("IsLoopback(%q) = %v, %v; want %v, ok=%v", tc.addr, got, err, tc.want, tc.ok)
		}
	}
}

func TestNewHTTPServerRoutes(t *testing.T) {
	h, err := Handler(fixture(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(DefaultAddr, h)
	if srv.Addr != DefaultAddr || srv.ReadHeaderTimeout == 0 {
		t.Fatalf("server %+v", srv)
	}
	for path, want := range map[string]int{Path: 200, "/": 404, "/debug/pprof/": 404} {
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
}
