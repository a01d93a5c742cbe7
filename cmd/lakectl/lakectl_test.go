package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/laked/metrics"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/linnos/retrain"
	"github.com/lakeos/lake/liteflow/kapp"
	"github.com/lakeos/lake/policy"
)

const mlpID = 2

// fixture is an in-process laked: the client socket, the admin API on a
// temp unix socket and /metrics on an httptest server.
type fixture struct {
	unpinned int // LiteFlowUnpin calls that succeeded
	srv      *laked.Server
	eng      *policy.Engine
	sock     string
	admin    string
	metrics  string
	dir      string
}

func loader(kind, path string, blob []byte) (laked.Model, error) {
	return laked.NewMLPModel(filepath.Base(path), blob)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if err := kernels.Register(); err != nil {
		t.Fatal(err)
	}
	eng, err := policy.New(policy.Options{DisableBPF: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	srv, err := laked.New(laked.Config{Backend: cpu.New(backend.Limits{}), Logger: zerolog.Nop(), Placer: &laked.PolicyPlacer{Engine: eng}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterModel(mlpID, m); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &fixture{srv: srv, eng: eng, dir: dir, sock: filepath.Join(dir, "laked.sock"), admin: filepath.Join(dir, "admin.sock")}
	l, err := laked.Listen(f.sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)

	cfg := features.Config{MaxSchemas: 2, MaxKeys: 8, MaxHistory: 8, ArenaBytes: 1 << 15}
	reg, err := features.Create(make([]byte, features.SizeFor(cfg)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := reg.Register(features.Schema{Name: "ssd_io", History: 4, MaxKeys: 8,
		Fields: []features.Field{{Name: "lat_us", Type: features.U32}, {Name: "queue", Type: features.U16, Count: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	si, _ := reg.Schema(sid)
	if err := reg.Record(sid, 1, si.NewRecord()); err != nil {
		t.Fatal(err)
	}

	retrainStatus := func() admin.RetrainResponse {
		return admin.RetrainResponse{Devices: []retrain.DeviceStatus{
			{Device: 8<<20 | 16, Samples: 20000, Trainings: 2, Installs: 1, LastTraining: time.Date(2026, 12, 1, 23, 40, 0, 0, time.UTC),
				Accuracy: 0.931, Fidelity: 1, ServedAccuracy: 0.9, Outcome: "installed", Version: 3},
			{Device: 8<<20 | 32, Samples: 12, ServedAccuracy: -1},
		}, Models: map[string]uint32{"8388624": 11}}
	}
	h, err := admin.New(admin.Deps{Server: srv, Policy: eng, LoadModel: loader, Features: reg, Version: "v0.9.0-test",
		Started: time.Now().Add(-time.Hour), Reload: func() error { return nil }, Retrain: retrainStatus, LiteFlow: liteflowApps,
		LiteFlowUnpin: func(app string, restart bool) error {
			switch {
			case app != "aurora":
				return fmt.Errorf("%w: %q", kapp.ErrNoApp, app)
			case !restart:
				return errors.New("app aurora is not pinned")
			}
			f.unpinned++
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	al, err := admin.Listen(f.admin)
	if err != nil {
		t.Fatal(err)
	}
	hs := admin.NewHTTPServer(h)
	go hs.Serve(al)
	mh, err := metrics.Handler(srv, eng)
	if err != nil {
		t.Fatal(err)
	}
	ms := httptest.NewServer(mh)
	f.metrics = ms.URL + metrics.Path
	t.Cleanup(func() {
		ms.Close()
		hs.Close()
		l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return f
}

// ctl runs lakectl against the fixture and returns its status and output.
func (f *fixture) ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--admin", f.admin, "--socket", f.sock, "--metrics", f.metrics, "--timeout", "10s"}, args...)
	code := run(t.Context(), all, &out, &errb)
	return code, out.String(), errb.String()
}

func (f *fixture) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := f.ctl(t, args...)
	if code != 0 {
		t.Fatalf("lakectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (f *fixture) okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := f.ok(t, append(args, "--json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("lakectl %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// hasLine checks out has a line matching the regexp.
func hasLine(t *testing.T, out, re string) {
	t.Helper()
	if !regexp.MustCompile("(?m)" + re).MatchString(out) {
		t.Errorf("output lacks a line matching %q:\n%s", re, out)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "status")
	hasLine(t, out, `^laked\s+v0\.9\.0-test$`)
	hasLine(t, out, `^uptime\s+1h0m0s$`)
	hasLine(t, out, `^models\s+1$`)
	hasLine(t, out, `^sessions\s+0$`)
	hasLine(t, out, `^policy\s+default \(Go fallback\)$`)
	hasLine(t, out, `^features\s+registry attached$`)

	// With a client attached, the sessions table appears.
	dctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl, err := lakelib.Dial(dctx, f.sock, lakelib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for deadline := time.Now().Add(5 * time.Second); len(f.srv.Sessions()) != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sessions %+v after Dial", f.srv.Sessions())
		}
	}
	out = f.ok(t, "status")
	hasLine(t, out, `^sessions\s+1$`)
	hasLine(t, out, `^CLIENT\s+TRANSPORT\s+CONTEXTS$`)
	hasLine(t, out, fmt.Sprintf(`^%d\s+unix:pid=%d,uid=\d+\s+0$`, cl.ClientID(), os.Getpid()))

	var st admin.StatusResponse
	f.okJSON(t, &st, "status")
	if len(st.Sessions) != 1 || st.Sessions[0].ClientID != cl.ClientID() {
		t.Fatalf("sessions JSON %+v", st.Sessions)
	}
	if st.Version != "v0.9.0-test" || st.Models != 1 || st.Policy == nil || st.Policy.Active != "default" || st.UptimeSeconds < 3599 {
		t.Fatalf("status JSON %+v", st)
	}
}

func TestModels(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "models")
	hasLine(t, out, `^ID\s+NAME\s+VERSION\s+IN\(B\)\s+OUT\(B\)$`)
	hasLine(t, out, `^2\s+mlp-demo\s+1\s+32\s+8$`)

	blob := filepath.Join(f.dir, "small.mlp")
	if err := os.WriteFile(blob, laked.DemoMLPBlob(3, 4, 8, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out = f.ok(t, "models", "load", "7", "mlp", blob)
	hasLine(t, out, `^model 7 \(small\.mlp\) loaded: version 1, 16 bytes in, 4 bytes out$`)
	var m admin.Model
	f.okJSON(t, &m, "models", "load", "--replace", "7", "mlp", blob)
	if m.ID != 7 || m.Version != 2 {
		t.Fatalf("replace JSON %+v", m)
	}
	var list admin.ModelsResponse
	f.okJSON(t, &list, "models", "list")
	if len(list.Models) != 2 || list.Models[1].ID != 7 || list.Models[1].Version != 2 {
		t.Fatalf("list JSON %+v", list)
	}
	code, _, errs := f.ctl(t, "models", "load", "7", "mlp", blob)
	if code != 1 || !strings.Contains(errs, "already served") || !strings.Contains(errs, "HTTP 409") {
		t.Fatalf("duplicate load: %d %s", code, errs)
	}
	out = f.ok(t, "models", "unload", "7")
	hasLine(t, out, `^model 7 \(small\.mlp\) unloaded$`)
	code, _, errs = f.ctl(t, "models", "unload", "7")
	if code != 1 || !strings.Contains(errs, "not served") {
		t.Fatalf("second unload: %d %s", code, errs)
	}
	for _, bad := range [][]string{{"models", "load", "x", "mlp", blob}, {"models", "load", "7"}, {"models", "unload"}, {"models", "list", "extra"}} {
		if code, _, errs := f.ctl(t, bad...); code != 2 || !strings.Contains(errs, "usage") {
			t.Errorf("lakectl %v: %d %s", bad, code, errs)
		}
	}
}

func TestPolicy(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "policy")
	hasLine(t, out, `^active\s+default \(Go fallback\)$`)
	hasLine(t, out, `^params\s+gpu_min_batch=256 gpu_max_util_pct=80 gpu_min_mem_mib=0 gpu_batch_ns=0 kernel_gpu_share_pct=0$`)
	hasLine(t, out, `^shipped\s+costaware, default$`)
	out = f.ok(t, "policy", "shipped", "costaware")
	hasLine(t, out, `^active\s+costaware \(Go fallback\)$`)
	if f.eng.Active() != "costaware" {
		t.Fatalf("engine runs %q", f.eng.Active())
	}
	var p admin.PolicyResponse
	f.okJSON(t, &p, "policy", "params", "--gpu-min-batch", "4")
	if p.Params.GPUMinBatch != 4 || p.Params.GPUMaxUtilPct != 80 || f.eng.Params().GPUMinBatch != 4 {
		t.Fatalf("params JSON %+v", p.Params)
	}
	f.okJSON(t, &p, "policy", "params", "--kernel-gpu-share-pct", "30")
	if p.Params.KernelGPUSharePct != 30 || p.Params.GPUMinBatch != 4 || f.eng.Params().KernelGPUSharePct != 30 {
		t.Fatalf("params JSON %+v", p.Params)
	}
	code, _, errs := f.ctl(t, "policy", "params", "--gpu-max-util-pct", "150")
	if code != 1 || !strings.Contains(errs, "GPUMaxUtilPct 150") {
		t.Fatalf("bad params: %d %s", code, errs)
	}
	if code, _, errs := f.ctl(t, "policy", "params"); code != 2 || !strings.Contains(errs, "at least one") {
		t.Fatalf("empty params: %d %s", code, errs)
	}
	obj := filepath.Join(f.dir, "bad.o")
	os.WriteFile(obj, []byte("not elf"), 0o600)
	code, _, errs = f.ctl(t, "policy", "load", obj)
	if code != 1 || !strings.Contains(errs, "rejected, keeping costaware") || !strings.Contains(errs, "HTTP 422") {
		t.Fatalf("bad object: %d %s", code, errs)
	}
	f.okJSON(t, &p, "policy", "show")
	if p.Status.Active != "costaware" {
		t.Fatalf("policy after a rejected load: %+v", p.Status)
	}
}

func TestFeatures(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "features")
	hasLine(t, out, `^ID\s+NAME\s+KEYS\s+MAX_KEYS\s+HISTORY\s+RECORD\(B\)\s+FIELDS$`)
	hasLine(t, out, `^0\s+ssd_io\s+1\s+8\s+4\s+\d+\s+lat_us:u32 queue:u16\[4\]$`)
	var fr admin.FeaturesResponse
	f.okJSON(t, &fr, "features", "list")
	if len(fr.Schemas) != 1 || fr.Schemas[0].Name != "ssd_io" || fr.Schemas[0].Keys != 1 {
		t.Fatalf("features JSON %+v", fr)
	}
}

func TestRetrain(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "retrain")
	hasLine(t, out, `^DEVICE\s+MODEL\s+VERSION\s+SAMPLES\s+TRAININGS\s+INSTALLS\s+ACCURACY\s+SERVED\s+FIDELITY\s+LAST TRAINING\s+OUTCOME$`)
	hasLine(t, out, `^8:16\s+11\s+3\s+20000\s+2\s+1\s+93\.1%\s+90\.0%\s+100\.0%\s+2026-12-01T23:40:00Z\s+installed$`)
	hasLine(t, out, `^8:32\s+-\s+0\s+12\s+0\s+0\s+-\s+-\s+-\s+never\s*$`)
	var rr admin.RetrainResponse
	f.okJSON(t, &rr, "retrain")
	if len(rr.Devices) != 2 || rr.Devices[0].Version != 3 {
		t.Fatalf("retrain JSON %+v", rr)
	}
}

// liteflowApps is the fixture's one LiteFlow app: two snapshots shipped.
func liteflowApps() []kapp.Status {
	fid, loss := 0.031, 0.0042
	at := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	return []kapp.Status{{Name: "aurora", Model: 3, Schema: "liteflow.aurora", Samples: 640, Dropped: 2, Batches: 20,
		Fidelity: &fid, Loss: &loss, LastReason: "installed", Pinned: true, Withheld: 3,
		Trace: []kapp.Point{{AtMs: 1764630000000, Served: 0.25, Fixed: 0.5, Generation: 2}},
		Installs: []kapp.Install{{At: at, Generation: 0, Version: 1, Reason: "served"},
			{At: at.Add(time.Second), Generation: 2, Version: 2, Fidelity: &fid, Reason: "installed"}}}}
}

// TestLiteFlow shows laked's apps, what they shipped and the kernel's
// report, and says so when the kernel module is not loaded.
func TestLiteFlow(t *testing.T) {
	f := newFixture(t)
	proc := filepath.Join(t.TempDir(), "lake_liteflow")
	os.WriteFile(proc, []byte("app aurora model 3 in 30 out 1 active_version 2\ninstall aurora seq 2 version 2 ok\n"), 0o644)
	out := f.ok(t, "liteflow", "--proc", proc)
	hasLine(t, out, `^APP\s+MODEL\s+SCHEMA\s+SAMPLES\s+DROPPED\s+BATCHES\s+FIDELITY\s+LOSS\s+PINNED\s+LAST DECISION$`)
	hasLine(t, out, `^aurora\s+3\s+liteflow.aurora\s+640\s+2\s+20\s+0.031\s+0.0042\s+yes \(3 withheld\)\s+installed$`)
	if strings.Contains(out, "trace ") {
		t.Errorf("trace printed without --trace:\n%s", out)
	}
	hasLine(t, f.ok(t, "liteflow", "--trace", "--proc", proc), `^trace aurora at_ms 1764630000000 served 0.25000 fixed 0.50000 generation 2$`)
	hasLine(t, out, `^2026-12-01T23:00:00Z\s+0\s+1\s+-\s+served$`)
	hasLine(t, out, `^2026-12-01T23:00:01Z\s+2\s+2\s+0.031\s+installed$`)
	hasLine(t, out, `^app aurora model 3 in 30 out 1 active_version 2$`)
	out = f.ok(t, "liteflow", "--proc", filepath.Join(t.TempDir(), "absent"))
	hasLine(t, out, `^kernel: .* absent \(lake_liteflow.ko not loaded\)$`)
	var lr struct {
		Apps   []kapp.Status `json:"apps"`
		Kernel string        `json:"kernel"`
	}
	f.okJSON(t, &lr, "liteflow", "--proc", proc)
	if len(lr.Apps) != 1 || len(lr.Apps[0].Installs) != 2 || lr.Apps[0].Installs[0].Fidelity != nil || !strings.Contains(lr.Kernel, "active_version 2") {
		t.Fatalf("liteflow JSON %+v", lr)
	}
}

// TestLiteFlowUnpin: lakectl liteflow unpin [--restart] APP, and its
// errors (no such app, not pinned, no app named).
func TestLiteFlowUnpin(t *testing.T) {
	f := newFixture(t)
	hasLine(t, f.ok(t, "liteflow", "unpin", "--restart", "aurora"), `^app aurora unpinned \(restart true\)$`)
	if f.unpinned != 1 {
		t.Fatalf("%d unpins reached laked", f.unpinned)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"liteflow", "unpin", "nope"}, 1, "404"},
		{[]string{"liteflow", "unpin", "aurora"}, 1, "not pinned"},
		{[]string{"liteflow", "unpin"}, 2, "APP"},
	} {
		code, _, errs := f.ctl(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("lakectl %v: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.msg)
		}
	}
	if f.unpinned != 1 {
		t.Fatalf("%d unpins reached laked after the failures", f.unpinned)
	}
}

func TestReload(t *testing.T) {
	f := newFixture(t)
	hasLine(t, f.ok(t, "reload"), `^laked reloaded`)
}

// TestBenchAndStats runs bench (which drives traffic) and checks that
// stats, read from /metrics, saw it.
func TestBenchAndStats(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "bench", "--model", "2", "--n", "3", "--count", "50", "--concurrency", "2", "--warmup", "5")
	hasLine(t, out, `^OP\s+N\s+COUNT\s+CONC\s+P50\s+P90\s+P99\s+MAX\s+MEAN\s+OPS/S\s+ITEMS/S\s+MEAN BATCH\s+INFERENCE\s+LAKED CPU/OP$`)
	hasLine(t, out, `^nop\s+-\s+50\s+2\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+-\s+-\s+-\s+\S+$`)
	hasLine(t, out, `^predict\s+3\s+50\s+2\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+\d+\s+\d+\.\d\s+\S+\s+\S+$`)
	hasLine(t, out, `^predict p50 \S+ = nop p50 \S+ \+ inference \S+ \+ \S+$`)

	var res []benchResult
	f.okJSON(t, &res, "bench", "--count", "20", "--warmup", "0")
	if len(res) != 1 || res[0].Op != "nop" || res[0].Count != 20 || res[0].P50Ns <= 0 ||
		res[0].P50Ns > res[0].P90Ns || res[0].P90Ns > res[0].P99Ns || res[0].P99Ns > res[0].MaxNs || res[0].OpsPerSec <= 0 {
		t.Fatalf("bench JSON %+v", res)
	}

	// 2 x (5 warmup + 50) predicts of 3 items... the predict pass ran
	// 55 predicts; laked counted them.
	var s statsJSON
	f.okJSON(t, &s, "stats")
	st := f.srv.Stats()
	if s.Submissions != st.Submissions || s.Submissions < 55+55+20 {
		t.Fatalf("stats submissions %d (server %d)", s.Submissions, st.Submissions)
	}
	if s.BatchSize.Sum != float64(st.BatchItems) || st.BatchItems != 55*3 {
		t.Fatalf("batch items: metrics %v, server %d, want %d", s.BatchSize.Sum, st.BatchItems, 55*3)
	}
	if s.Completions["ok"] != st.Completions["ok"] || s.Policy == nil || s.Policy.Decisions["cpu"] != st.DecisionsCPU {
		t.Fatalf("stats %+v vs server %+v", s.Snapshot, st)
	}
	if s.Estimates["queue_wait_seconds"].P50 == nil || *s.Estimates["queue_wait_seconds"].P50 <= 0 {
		t.Fatalf("queue wait estimate %+v", s.Estimates["queue_wait_seconds"])
	}
	out = f.ok(t, "stats")
	hasLine(t, out, `^submissions\s+\d+$`)
	hasLine(t, out, `^completions\s+\d+\s+ok \d+$`)
	hasLine(t, out, fmt.Sprintf(`^batches\s+%d\s+mean \d+\.\d items, p50 <=\d+, p99 <=\d+$`, f.srv.Stats().Batches))
	hasLine(t, out, `^queue wait\s+55\s+mean \S+, p50 \S+, p90 \S+, p99 \S+$`)
	hasLine(t, out, `^models\s+1\s+2 mlp-demo v1$`)
	hasLine(t, out, `^policy\s+default\s+Go fallback, cpu \d+, gpu 0, errors 0$`)
}

// TestBenchOpenLoop: bench --open-loop measures capacity and offers each
// load level as Poisson arrivals; every level completes what it offered
// (within the run's tail) and laked's side is read from /metrics.
func TestBenchOpenLoop(t *testing.T) {
	f := newFixture(t)
	var rep struct {
		Closed   []benchResult  `json:"closed_loop"`
		OpenLoop openLoopReport `json:"open_loop"`
	}
	f.okJSON(t, &rep, "bench", "--model", "2", "--count", "200", "--warmup", "0", "--open-loop", "--clients", "2", "--loads", "0.2,0.5", "--duration", "300ms")
	o := rep.OpenLoop
	if len(rep.Closed) != 2 || o.Clients != 2 || o.Capacity <= 0 || o.OneAtATimeRate <= 0 || len(o.Levels) != 2 {
		t.Fatalf("open loop report %+v", rep)
	}
	for _, l := range o.Levels {
		if l.Count == 0 || l.Rate <= 0 || l.P50Ns <= 0 || l.P50Ns > l.P99Ns || l.MeanBatch == nil || *l.MeanBatch < 1 ||
			l.LagP50Ns < 0 || l.LagP50Ns > l.LagP99Ns || l.LagP50Ns > l.P50Ns {
			t.Fatalf("level %+v", l)
		}
		if want := l.OfferedRate * 0.3; float64(l.Count) < want*0.5 {
			t.Fatalf("level %.0f%%: %d completed, offered about %.0f", 100*l.Load, l.Count, want)
		}
	}
	if rep.Closed[1].InferenceNs == nil || *rep.Closed[1].InferenceNs <= 0 {
		t.Fatalf("closed-loop predict without an inference time: %+v", rep.Closed[1])
	}
	out := f.ok(t, "bench", "--model", "2", "--count", "50", "--warmup", "0", "--open-loop", "--clients", "2", "--loads", "0.5", "--duration", "200ms")
	hasLine(t, out, `^open loop, 2 clients: capacity \d+/s \(32 in flight per client, mean batch \S+\) = \S+x the one-at-a-time rate \d+/s$`)
	hasLine(t, out, `^LOAD\s+OFFERED/S\s+DONE/S\s+COUNT\s+P50\s+P99\s+LAG P50\s+LAG P99\s+MEAN BATCH\s+LAKED CPU/OP$`)
	hasLine(t, out, `^50%\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+\d+\.\d\s+\S+$`)
	for _, bad := range [][]string{{"bench", "--open-loop"}, {"bench", "--model", "2", "--open-loop", "--loads", "2"}, {"bench", "--clients", "0"}, {"bench", "--duration", "0s"}} {
		if code, _, errs := f.ctl(t, bad...); code != 2 {
			t.Errorf("lakectl %v: %d %s", bad, code, errs)
		}
	}
}

// TestBenchRounds: --rounds alternates the nop and predict phases and
// prints each round, the medians, the caller's sleeps and the machine's
// own jitter measured in the same run.
func TestBenchRounds(t *testing.T) {
	f := newFixture(t)
	out := f.ok(t, "bench", "--model", "2", "--count", "100", "--warmup", "5", "--rounds", "3")
	nops, preds := 0, 0
	for _, l := range strings.Split(out, "\n") {
		if regexp.MustCompile(`^nop\s+-\s+100\s+1\s`).MatchString(l) {
			nops++
		}
		if regexp.MustCompile(`^predict\s+1\s+100\s+1\s`).MatchString(l) {
			preds++
		}
	}
	if nops != 3 || preds != 3 {
		t.Fatalf("want 3 nop and 3 predict rows, got %d and %d:\n%s", nops, preds, out)
	}
	hasLine(t, out, `^median of 3 rounds \(nop and predict alternating\): nop p50 \S+ p99 \S+, predict p50 \S+ p99 \S+$`)
	hasLine(t, out, `^predict p50 \S+ = nop p50 \S+ \+ inference \S+ \+ \S+$`)
	hasLine(t, out, `^caller slept for its completion \(spin ran out\) in \d+ of 600 measured calls$`)
	hasLine(t, out, `^machine jitter \(same run, after each round\): 2 threads unpinned, \S+ each: gaps > 5µs \d+, > 25µs \d+ \(\d+/s\), > 100µs \d+, worst \S+, \d+\.\d\d% of the time lost; at \d+ requests/s gaps > 25µs alone would delay \d+\.\d\d% of requests \(a p99 <= 25µs needs < 1%\)$`)
	out = f.ok(t, "bench", "--count", "50", "--warmup", "0", "--jitter-pin")
	hasLine(t, out, `^machine jitter \(same run, after each round\): 2 threads pinned, `)
	var res []benchResult
	f.okJSON(t, &res, "bench", "--model", "2", "--count", "20", "--warmup", "0", "--rounds", "2")
	if len(res) != 4 || res[0].Op != "nop" || res[1].Op != "predict" || res[2].Round != 2 || res[3].Round != 2 || res[3].ElapsedNs <= 0 {
		t.Fatalf("bench --rounds 2 JSON %+v", res)
	}
	for _, bad := range []string{"0", "101"} {
		if code, _, errs := f.ctl(t, "bench", "--rounds", bad); code != 2 {
			t.Errorf("bench --rounds %s: %d %s", bad, code, errs)
		}
	}
}

func TestBenchUnknownModel(t *testing.T) {
	f := newFixture(t)
	code, _, errs := f.ctl(t, "bench", "--model", "99", "--count", "5", "--warmup", "0")
	if code != 1 || !strings.Contains(errs, "model 99") {
		t.Fatalf("bench on a missing model: %d %s", code, errs)
	}
	for _, bad := range [][]string{{"bench", "--n", "0"}, {"bench", "--count", "-1"}, {"bench", "--concurrency", "5000"}, {"bench", "--model", "-2"}} {
		if code, _, errs := f.ctl(t, bad...); code != 2 {
			t.Errorf("lakectl %v: %d %s", bad, code, errs)
		}
	}
}

// TestNotRunning: every command says clearly that laked is not there.
func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	ms := httptest.NewServer(http.NotFoundHandler())
	dead := ms.URL + "/metrics"
	ms.Close()
	base := []string{"--admin", filepath.Join(dir, "admin.sock"), "--socket", filepath.Join(dir, "laked.sock"), "--metrics", dead, "--timeout", "2s"}
	for _, args := range [][]string{{"status"}, {"models"}, {"policy"}, {"features"}, {"reload"}} {
		var out, errb bytes.Buffer
		code := run(t.Context(), append(base, args...), &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "laked is not running") {
			t.Errorf("lakectl %v: %d %q", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), append(base, "stats"), &out, &errb); code != 1 || !strings.Contains(errb.String(), "is laked running") {
		t.Errorf("stats: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(t.Context(), append(base, "bench", "--count", "1"), &out, &errb); code != 1 || !strings.Contains(errb.String(), "is laked running") {
		t.Errorf("bench: %d %q", code, errb.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"--bogus", "status"}, {"status", "extra"}, {"--timeout", "0s", "status"}} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: lakectl") {
			t.Errorf("lakectl %v: %d %q", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "commands:") {
		t.Errorf("help: %d %q", code, out.String())
	}
}

func TestParseInterspersed(t *testing.T) {
	c := &cli{}
	for _, tc := range []struct {
		args []string
		pos  string
		json bool
	}{
		{[]string{"a", "--json", "b"}, "a b", true},
		{[]string{"--json", "a"}, "a", true},
		{[]string{"a", "--", "--json", "-1"}, "a --json -1", false},
		{[]string{}, "", false},
	} {
		c.json = false
		fs := newFlagSet("t", c)
		if err := c.parse(fs, tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := strings.Join(fs.Args(), " "); got != tc.pos || c.json != tc.json {
			t.Errorf("%v: positional %q json %v, want %q %v", tc.args, got, c.json, tc.pos, tc.json)
		}
	}
	if err := c.parse(newFlagSet("t", c), []string{"a", "--nope"}); err == nil {
		t.Error("unknown flag after a positional accepted")
	}
}

// TestHelpPerCommand checks that every command answers --help (and help
// COMMAND) on stdout with exit 0, naming its arguments and its own flags
// beside the global ones, without contacting laked.
func TestHelpPerCommand(t *testing.T) {
	dead := []string{"--admin", filepath.Join(t.TempDir(), "none.sock"), "--timeout", "1s"}
	own := map[string][]string{
		"models load":   {"--replace"},
		"policy params": {"--gpu-min-batch", "--gpu-batch-ns"},
		"bench":         {"--model", "--concurrency", "--busy-poll", "--burst", "--burst-ring"},
		"burst":         {"--model", "--clients", "--ring", "--pause", "--duration"},
	}
	for _, cmd := range commands {
		for _, args := range [][]string{
			append(strings.Fields(cmd.name), "--help"),
			append([]string{"help"}, strings.Fields(cmd.name)...),
			append(strings.Fields(cmd.name), "-h"),
		} {
			var out, errb bytes.Buffer
			code := run(t.Context(), append(slices.Clone(dead), args...), &out, &errb)
			text := out.String()
			if code != 0 || errb.Len() != 0 || !strings.HasPrefix(text, "usage: lakectl "+cmd.name) ||
				!strings.Contains(text, cmd.args) || !strings.Contains(text, cmd.about) || !strings.Contains(text, "--json") {
				t.Errorf("lakectl %v: %d\nstdout %s\nstderr %s", args, code, text, errb.String())
			}
			for _, f := range own[cmd.name] {
				if !strings.Contains(text, f) {
					t.Errorf("lakectl %v: help lacks %s:\n%s", args, f, text)
				}
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "commands:") {
		t.Errorf("lakectl --help: %d %q", code, out.String())
	}
}
