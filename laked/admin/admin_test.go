package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/linnos/retrain"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/policy"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testLoader loads "mlp" blobs from files, as cmd/laked's loader does.
func testLoader(kind, path string, blob []byte) (laked.Model, error) {
	if kind != KindMLP {
		return nil, fmt.Errorf("kind %s not supported in this test", kind)
	}
	return laked.NewMLPModel(filepath.Base(path), blob)
}

// writeBlob writes a demo MLP (in inputs, out outputs) and returns its path.
func writeBlob(t testing.TB, name string, seed int64, in, out int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, laked.DemoMLPBlob(seed, in, 16, out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type env struct {
	srv     *laked.Server
	eng     *policy.Engine
	h       *Handler
	c       *Client
	reloads atomic.Int32
}

// newEnv builds a laked server with model 2 (8 -> 2 floats), a Go-fallback
// policy engine and the admin API on a temp unix socket.
func newEnv(t testing.TB, mod func(*Deps)) *env {
	t.Helper()
	srv, err := laked.New(laked.Config{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	m, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterModel(2, m); err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{DisableBPF: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	e := &env{srv: srv, eng: eng}
	d := Deps{
		Server: srv, Policy: eng, LoadModel: testLoader, Version: "v1.2.3-test",
		Started: t0, Now: func() time.Time { return t0.Add(90 * time.Second) },
		Reload: func() error { e.reloads.Add(1); return nil },
	}
	if mod != nil {
		mod(&d)
	}
	h, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(h)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	e.c = NewClient(sock, 10*time.Second)
	t.Cleanup(e.c.Close)
	return e
}

// raw sends one request straight to the handler.
func (e *env) raw(method, path, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func wantAPIError(t *testing.T, err error, code int, substr string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v, want an APIError %d", err, code)
	}
	if ae.Code != code || !strings.Contains(ae.Message, substr) {
		t.Fatalf("got %d %q, want %d containing %q", ae.Code, ae.Message, code, substr)
	}
	return ae
}

func TestStatusModelsStats(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	st, err := e.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "v1.2.3-test" || st.UptimeSeconds != 90 || !st.Started.Equal(t0) || st.Models != 1 ||
		len(st.Sessions) != 0 || st.Features || st.Policy == nil || st.Policy.Active != "default" || st.Policy.Kernel {
		t.Fatalf("status %+v (policy %+v)", st, st.Policy)
	}
	models, err := e.c.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 || models[0] != (Model{ID: 2, Name: "mlp-demo", InputBytes: 32, OutputBytes: 8, Version: 1}) {
		t.Fatalf("models %+v", models)
	}
	stats, err := e.c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Submissions != 0 || stats.Completions == nil || len(stats.BatchSize.Counts) != len(stats.BatchSize.Bounds)+1 ||
		len(stats.QueueWait.Bounds) == 0 || stats.ServiceTime.Count != 0 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestLoadReplaceUnloadModel(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	p := writeBlob(t, "small.mlp", 3, 4, 1)
	m, err := e.c.LoadModel(ctx, 5, KindMLP, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if *m != (Model{ID: 5, Name: "small.mlp", InputBytes: 16, OutputBytes: 4, Version: 1}) {
		t.Fatalf("loaded %+v", m)
	}
	// The server serves it.
	if len(e.srv.Models()) != 2 {
		t.Fatalf("server models %+v", e.srv.Models())
	}
	_, err = e.c.LoadModel(ctx, 5, KindMLP, p, false)
	wantAPIError(t, err, http.StatusConflict, "already served")

	p2 := writeBlob(t, "small2.mlp", 4, 4, 1)
	m, err = e.c.LoadModel(ctx, 5, KindMLP, p2, true)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 2 {
		t.Fatalf("replaced model version %d, want 2", m.Version)
	}
	wrongShape := writeBlob(t, "wide.mlp", 5, 6, 1)
	_, err = e.c.LoadModel(ctx, 5, KindMLP, wrongShape, true)
	wantAPIError(t, err, http.StatusConflict, "record sizes")
	_, err = e.c.LoadModel(ctx, 9, KindMLP, p, true)
	wantAPIError(t, err, http.StatusNotFound, "replace model 9")
	_, err = e.c.LoadModel(ctx, 6, KindMLP, filepath.Join(t.TempDir(), "missing.mlp"), false)
	wantAPIError(t, err, http.StatusUnprocessableEntity, "no such file")
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not a model"), 0o600)
	_, err = e.c.LoadModel(ctx, 6, KindMLP, garbage, false)
	wantAPIError(t, err, http.StatusUnprocessableEntity, "load model 6")
	_, err = e.c.LoadModel(ctx, 6, "onnx", p, false)
	wantAPIError(t, err, http.StatusBadRequest, "want one of linnos, mlp")
	_, err = e.c.LoadModel(ctx, 6, KindMLP, "relative/x.mlp", false)
	wantAPIError(t, err, http.StatusBadRequest, "not absolute")
	if len(e.srv.Models()) != 2 {
		t.Fatalf("failed loads changed the registry: %+v", e.srv.Models())
	}

	old, err := e.c.UnloadModel(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != 5 || old.Version != 2 {
		t.Fatalf("unloaded %+v", old)
	}
	_, err = e.c.UnloadModel(ctx, 5)
	wantAPIError(t, err, http.StatusNotFound, "not served")
	for _, bad := range []string{"abc", "007", "-1", "+5", "4294967296"} {
		rec := e.raw(http.MethodDelete, "/v1/models/"+bad, "", "")
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("DELETE /v1/models/%s: %d %s", bad, rec.Code, rec.Body)
		}
	}
	// No id, or more than one path segment: not a model's path.
	for _, bad := range []string{"", "5/x"} {
		rec := e.raw(http.MethodDelete, "/v1/models/"+bad, "", "")
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error":"no endpoint`) {
			t.Errorf("DELETE /v1/models/%s: %d %s", bad, rec.Code, rec.Body)
		}
	}
}

func TestLoadModelWithoutLoader(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.LoadModel = nil; d.Reload = nil })
	_, err := e.c.LoadModel(t.Context(), 5, KindMLP, "/x.mlp", false)
	wantAPIError(t, err, http.StatusNotImplemented, "cannot load")
	err = e.c.Reload(t.Context())
	wantAPIError(t, err, http.StatusNotImplemented, "cannot reload")
}

func TestBadRequestBodies(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, method, path, ctype, body string
		code                            int
		substr                          string
	}{
		{"unknown field", "POST", "/v1/models", "application/json", `{"id":1,"kind":"mlp","path":"/x","extra":1}`, 400, "unknown field"},
		{"trailing data", "POST", "/v1/models", "", `{"id":1,"kind":"mlp","path":"/x"} {}`, 400, "data after"},
		{"not json", "POST", "/v1/models", "", `id=1`, 400, "bad request body"},
		{"empty body", "POST", "/v1/models", "", ``, 400, "empty request body"},
		{"missing id", "POST", "/v1/models", "", `{"kind":"mlp","path":"/x"}`, 400, `is required`},
		{"negative id", "POST", "/v1/models", "", `{"id":-1,"kind":"mlp","path":"/x"}`, 400, "bad request body"},
		{"id too big", "POST", "/v1/models", "", `{"id":4294967296,"kind":"mlp","path":"/x"}`, 400, "bad request body"},
		{"wrong type", "POST", "/v1/models", "", `{"id":"1","kind":"mlp","path":"/x"}`, 400, "bad request body"},
		{"nul in path", "POST", "/v1/models", "", `{"id":1,"kind":"mlp","path":"/x\u0000y"}`, 400, "NUL"},
		{"content type", "POST", "/v1/models", "text/plain", `{}`, 415, "application/json"},
		{"too large", "POST", "/v1/models", "", `{"id":1,"kind":"mlp","path":"/` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, "larger than"},
		{"policy both", "POST", "/v1/policy", "", `{"file":"/a.o","shipped":"default"}`, 400, "exactly one"},
		{"policy neither", "POST", "/v1/policy", "", `{}`, 400, "exactly one"},
		{"params unknown", "PUT", "/v1/policy/params", "", `{"gpu_min_batchh":3}`, 400, "unknown field"},
		{"params overflow", "PUT", "/v1/policy/params", "", `{"gpu_min_batch":4294967296}`, 400, "bad request body"},
		{"reload junk", "POST", "/v1/reload", "", `{"now":true}`, 400, "unknown field"},
		{"unknown path", "GET", "/v2/status", "", ``, 404, "no endpoint"},
		{"query", "GET", "/v1/status?x=1", "", ``, 400, "query"},
	}
	for _, tc := range cases {
		rec := e.raw(tc.method, tc.path, tc.ctype, tc.body)
		if rec.Code != tc.code || rec.Header().Get("Content-Type") != "application/json" ||
			!strings.Contains(rec.Body.String(), `"error":`) || !strings.Contains(rec.Body.String(), tc.substr) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, rec.Code, rec.Body, tc.code, tc.substr)
		}
	}
	// A known path with the wrong method: the mux's 405 and Allow, with
	// the JSON body.
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPut, "/v1/models", "GET, HEAD, POST"},
		{http.MethodDelete, "/v1/status", "GET, HEAD"},
		{http.MethodGet, "/v1/reload", "POST"},
		{http.MethodPost, "/v1/models/3", "DELETE"},
	} {
		rec := e.raw(tc.method, tc.path, "", "")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != tc.allow ||
			rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"error":"`+tc.method+" "+tc.path+`: method not allowed (allowed: `+tc.allow+`)"`) {
			t.Errorf("%s %s: %d Allow=%q %s", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
	// A path the mux would clean is redirected, still with a JSON body.
	rec := e.raw(http.MethodGet, "/v1//status", "", "")
	if rec.Code/100 != 3 || rec.Header().Get("Location") != "/v1/status" || !strings.Contains(rec.Body.String(), `"error":`) {
		t.Errorf("GET /v1//status: %d Location=%q %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	// HEAD of a GET endpoint: its status and headers, no body.
	rec = e.raw(http.MethodHead, "/v1/status", "", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("HEAD /v1/status: %d %v", rec.Code, rec.Header())
	}
	if len(e.srv.Models()) != 1 || e.reloads.Load() != 0 {
		t.Error("a rejected request changed state")
	}
}

func TestPolicyEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	p, err := e.c.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	def := policy.DefaultParams()
	if p.Status.Active != "default" || p.Params.GPUMinBatch != def.GPUMinBatch || p.Params.GPUMaxUtilPct != def.GPUMaxUtilPct ||
		strings.Join(p.Shipped, ",") != "costaware,default" {
		t.Fatalf("policy %+v", p)
	}
	p, err = e.c.LoadPolicy(ctx, LoadPolicyRequest{Shipped: "costaware"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Active != "costaware" || e.eng.Active() != "costaware" {
		t.Fatalf("after load: %+v, engine %q", p.Status, e.eng.Active())
	}
	_, err = e.c.LoadPolicy(ctx, LoadPolicyRequest{Shipped: "nope"})
	wantAPIError(t, err, http.StatusBadRequest, "unknown shipped policy")
	_, err = e.c.LoadPolicy(ctx, LoadPolicyRequest{File: "rel.o"})
	wantAPIError(t, err, http.StatusBadRequest, "not absolute")
	// Without BPF a file cannot load: a LoadError, 422, policy kept.
	obj := filepath.Join(t.TempDir(), "p.o")
	os.WriteFile(obj, []byte("\x7fELF garbage"), 0o600)
	_, err = e.c.LoadPolicy(ctx, LoadPolicyRequest{File: obj})
	wantAPIError(t, err, http.StatusUnprocessableEntity, "rejected, keeping costaware")
	if e.eng.Active() != "costaware" {
		t.Fatalf("active %q after a rejected load", e.eng.Active())
	}

	mb, pct := uint32(8), uint32(50)
	p, err = e.c.SetParams(ctx, ParamsUpdate{GPUMinBatch: &mb})
	if err != nil {
		t.Fatal(err)
	}
	if p.Params.GPUMinBatch != 8 || p.Params.GPUMaxUtilPct != def.GPUMaxUtilPct || e.eng.Params().GPUMinBatch != 8 {
		t.Fatalf("params after partial update %+v", p.Params)
	}
	if _, err := e.c.SetParams(ctx, ParamsUpdate{GPUMaxUtilPct: &pct}); err != nil {
		t.Fatal(err)
	}
	bad := uint32(101)
	_, err = e.c.SetParams(ctx, ParamsUpdate{GPUMaxUtilPct: &bad, GPUMinBatch: &pct})
	wantAPIError(t, err, http.StatusBadRequest, "GPUMaxUtilPct 101")
	if got := e.eng.Params(); got.GPUMaxUtilPct != 50 || got.GPUMinBatch != 8 {
		t.Fatalf("rejected params applied: %+v", got)
	}
}

func TestNoPolicyNoFeatures(t *testing.T) {
	var reg *features.Registry
	e := newEnv(t, func(d *Deps) { d.Policy = nil; d.Features = reg })
	st, err := e.c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Policy != nil {
		t.Fatalf("policy %+v without an engine", st.Policy)
	}
	_, err = e.c.Policy(t.Context())
	wantAPIError(t, err, http.StatusNotFound, "no policy engine")
	_, err = e.c.Features(t.Context())
	wantAPIError(t, err, http.StatusNotFound, "no feature registry")
}

func TestFeatures(t *testing.T) {
	cfg := features.Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 16, ArenaBytes: 1 << 16}
	reg, err := features.Create(make([]byte, features.SizeFor(cfg)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(features.Schema{Name: "io", History: 8, MaxKeys: 4,
		Fields: []features.Field{{Name: "lat_us", Type: features.U32}, {Name: "pending", Type: features.U16, Count: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	si, _ := reg.Schema(id)
	for _, key := range []uint64{7, 9} {
		if err := reg.Record(id, key, si.NewRecord()); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, func(d *Deps) { d.Features = reg })
	fr, err := e.c.Features(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Schemas) != 1 || fr.Error != "" {
		t.Fatalf("features %+v", fr)
	}
	s := fr.Schemas[0]
	if s.Name != "io" || s.History != 8 || s.MaxKeys != 4 || s.Keys != 2 || s.RecordSize != si.RecordSize() || len(s.Fields) != 2 ||
		s.Fields[1] != (FeatureField{Name: "pending", Type: "u16", Count: 4, Offset: 4}) {
		t.Fatalf("schema %+v", s)
	}
	st, _ := e.c.Status(t.Context())
	if !st.Features {
		t.Error("status does not report the registry")
	}
}

// TestRetrain checks GET /v1/retrain: 404 without a retrainer, the
// status the retrainer reports otherwise.
func TestRetrain(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.c.Retrain(t.Context())
	wantAPIError(t, err, http.StatusNotFound, "does not retrain")
	when := time.Date(2026, 12, 1, 23, 40, 0, 0, time.UTC)
	e = newEnv(t, func(d *Deps) {
		d.Retrain = func() RetrainResponse {
			return RetrainResponse{Devices: []retrain.DeviceStatus{{Device: 8<<20 | 16, Samples: 5, Trainings: 1, Installs: 1,
				LastTraining: when, Accuracy: 0.9, ServedAccuracy: -1, Outcome: "installed", Version: 2}},
				Models: map[string]uint32{"8388624": 11}}
		}
	})
	rr, err := e.c.Retrain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Devices) != 1 || rr.Models["8388624"] != 11 {
		t.Fatalf("retrain %+v", rr)
	}
	if d := rr.Devices[0]; d.Device != 8<<20|16 || d.Version != 2 || !d.LastTraining.Equal(when) || d.ServedAccuracy != -1 || d.Outcome != "installed" {
		t.Fatalf("device %+v", d)
	}
}

func TestReload(t *testing.T) {
	fail := errors.New("laked.yaml: unknown key \"batch_sise\"")
	var n atomic.Int32
	e := newEnv(t, func(d *Deps) {
		d.Reload = func() error {
			if n.Add(1) == 2 {
				return fail
			}
			return nil
		}
	})
	if err := e.c.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, e.c.Reload(t.Context()), http.StatusUnprocessableEntity, "batch_sise")
	if rec := e.raw(http.MethodPost, "/v1/reload", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("empty-body reload: %d %s", rec.Code, rec.Body)
	}
	if n.Load() != 3 {
		t.Fatalf("reload called %d times, want 3", n.Load())
	}
}

func TestLoaderPanicIsAnError(t *testing.T) {
	e := newEnv(t, func(d *Deps) {
		d.LoadModel = func(string, string, []byte) (laked.Model, error) { panic("corrupt header") }
	})
	_, err := e.c.LoadModel(t.Context(), 5, KindMLP, writeBlob(t, "x.mlp", 1, 4, 1), false)
	wantAPIError(t, err, http.StatusUnprocessableEntity, "corrupt header")
}

// TestConcurrentAdmin runs reads and state changes at once (for -race).
func TestConcurrentAdmin(t *testing.T) {
	e := newEnv(t, nil)
	p := writeBlob(t, "m.mlp", 1, 4, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < 10; i++ {
				id := uint32(100 + g)
				if _, err := e.c.LoadModel(ctx, id, KindMLP, p, false); err != nil {
					errs <- err
					return
				}
				if _, err := e.c.Status(ctx); err != nil {
					errs <- err
				}
				if _, err := e.c.LoadPolicy(ctx, LoadPolicyRequest{Shipped: []string{"default", "costaware"}[i%2]}); err != nil {
					errs <- err
				}
				if _, err := e.c.UnloadModel(ctx, id); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(e.srv.Models()) != 1 {
		t.Fatalf("models left: %+v", e.srv.Models())
	}
}

func TestNewNeedsServer(t *testing.T) {
	if _, err := New(Deps{}); err == nil {
		t.Fatal("New without a server accepted")
	}
}

func TestClientNotRunning(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	defer c.Close()
	if _, err := c.Status(t.Context()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status with no laked: %v", err)
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"id":3,"kind":"mlp","path":"/x","replace":false}`,
		`{"file":"/p.o"}`,
		`{"shipped":"costaware"}`,
		`{"gpu_min_batch":16,"gpu_max_util_pct":80}`,
		`{"id":1} {}`,
		`[1,2`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&LoadModelRequest{}, &LoadPolicyRequest{}, &ParamsUpdate{}, &struct{}{}} {
			err := decodeBody(strings.NewReader(string(data)), v)
			if err == nil {
				continue
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.code < 400 || ae.code > 499 || ae.msg == "" {
				t.Fatalf("decode error %v is not a 4xx apiError", err)
			}
		}
		// And through the handler: never a 5xx for a bad body.
		e := &env{}
		h, _ := New(Deps{Server: fuzzServer(t)})
		e.h = h
		for _, path := range []string{"/v1/models", "/v1/reload"} {
			if rec := e.raw(http.MethodPost, path, "", string(data)); rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
				t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
			}
		}
	})
}

var (
	fuzzSrvOnce sync.Once
	fuzzSrv     *laked.Server
)

func fuzzServer(t *testing.T) *laked.Server {
	fuzzSrvOnce.Do(func() {
		var err error
		if fuzzSrv, err = laked.New(laked.Config{Logger: zerolog.Nop()}); err != nil {
			t.Fatal(err)
		}
	})
	return fuzzSrv
}

// TestLiteFlowLoadAndUnpin: a liteflow model replacing a LiteFlow app's
// model goes to the app (LiteFlowLoad, which pins it) instead of being
// swapped by the handler; other ids are replaced as usual; a shape error
// is 409; POST /v1/liteflow/{app}/unpin reaches LiteFlowUnpin and maps
// its errors.
func TestLiteFlowLoadAndUnpin(t *testing.T) {
	var loads, unpins []string
	e := newEnv(t, func(d *Deps) {
		d.ModelKinds = []string{KindMLP, KindLiteFlow}
		d.LoadModel = func(kind, path string, blob []byte) (laked.Model, error) {
			return laked.NewMLPModel(filepath.Base(path), blob)
		}
		d.LiteFlowLoad = func(id uint32, m laked.Model) (bool, error) {
			switch id {
			case 3:
				loads = append(loads, m.Info().Name)
				return true, nil
			case 4:
				return false, fmt.Errorf("%w (app is 3 -> 1)", kapp.ErrShape)
			}
			return false, nil
		}
		d.LiteFlowUnpin = func(app string, restart bool) error {
			switch {
			case app != "aurora":
				return fmt.Errorf("%w: %q", kapp.ErrNoApp, app)
			case !restart:
				return errors.New("kapp: app aurora is not pinned")
			}
			unpins = append(unpins, app)
			return nil
		}
	})
	ctx := t.Context()
	p := writeBlob(t, "hand.mlp", 3, 8, 2)
	for _, id := range []uint32{3, 4, 5} {
		if _, err := e.c.LoadModel(ctx, id, KindMLP, p, false); err != nil {
			t.Fatal(err)
		}
	}
	m, err := e.c.LoadModel(ctx, 3, KindLiteFlow, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(loads) != 1 || loads[0] != "hand.mlp" || m.Version != 1 {
		t.Fatalf("app's model: hook calls %v, served version %d (the app serves it, not the handler)", loads, m.Version)
	}
	_, err = e.c.LoadModel(ctx, 4, KindLiteFlow, p, true)
	wantAPIError(t, err, http.StatusConflict, "shape")
	if m, err = e.c.LoadModel(ctx, 5, KindLiteFlow, p, true); err != nil || m.Version != 2 {
		t.Fatalf("not an app's model: replaced as usual, version %v, %v", m, err)
	}
	if m, err = e.c.LoadModel(ctx, 3, KindMLP, p, true); err != nil || m.Version != 2 || len(loads) != 1 {
		t.Fatalf("an mlp replace of model 3 went to the app: %v, %v, hook calls %v", m, err, loads)
	}
	if _, err := e.c.LiteFlowUnpin(ctx, "aurora", true); err != nil || len(unpins) != 1 {
		t.Fatalf("unpin: %v (%d calls)", err, len(unpins))
	}
	_, err = e.c.LiteFlowUnpin(ctx, "aurora", false)
	wantAPIError(t, err, http.StatusConflict, "not pinned")
	_, err = e.c.LiteFlowUnpin(ctx, "nope", true)
	wantAPIError(t, err, http.StatusNotFound, "no such app")
	if rec := e.raw(http.MethodPost, "/v1/liteflow/aurora/unpin", "application/json", `{"restart":true,"x":1}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %s", rec.Code, rec.Body)
	}
	e2 := newEnv(t, nil)
	_, err = e2.c.LiteFlowUnpin(ctx, "aurora", true)
	wantAPIError(t, err, http.StatusNotImplemented, "no LiteFlow app")
}
