//go:build linux

package metrics_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/metrics"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/policy"
)

const mlpID = lakedtest.DemoMLP

var startLaked = lakedtest.Start

func scrape(t *testing.T, url string) *metrics.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := metrics.Scrape(ctx, nil, url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestScrapeCountersMoveWithTraffic scrapes /metrics, drives a known
// amount of traffic through lakelib, scrapes again and checks that every
// counter moved by exactly what the traffic implies.
func TestScrapeCountersMoveWithTraffic(t *testing.T) {
	eng, err := policy.New(policy.Options{DisableBPF: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv, sock := startLaked(t, laked.Config{Placer: &laked.PolicyPlacer{Engine: eng}})
	h, err := metrics.Handler(srv, eng)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	url := hs.URL + metrics.Path

	before := scrape(t, url)
	if before.Sessions != 0 || before.Submissions != 0 {
		t.Fatalf("fresh laked: %+v", before)
	}
	if len(before.Models) != 1 || before.Models[0] != (metrics.ModelVersion{ID: mlpID, Name: "mlp-demo", Version: 1}) {
		t.Fatalf("models %+v", before.Models)
	}
	if before.Policy == nil || before.Policy.Active != "default" || before.Policy.Kernel {
		t.Fatalf("policy %+v", before.Policy)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := lakelib.Dial(ctx, sock, lakelib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const nops, predicts, items, bad = 7, 5, 3, 2
	for i := 0; i < nops; i++ {
		if err := c.Nop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	in, out := make([]byte, 32*items), make([]byte, 8*items)
	for i := 0; i < predicts; i++ {
		if _, err := c.Predict(ctx, mlpID, items, in, out); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < bad; i++ {
		if _, err := c.Predict(ctx, 99, 1, in[:32], out[:8]); err == nil {
			t.Fatal("predict on a missing model succeeded")
		}
	}
	// Model replacement shows up as a version bump.
	m2, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(2, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReplaceModel(mlpID, m2); err != nil {
		t.Fatal(err)
	}

	after := scrape(t, url)
	if after.Sessions != 1 || after.SessionsServed != before.SessionsServed+1 {
		t.Errorf("sessions %d served %d, want 1 and %d", after.Sessions, after.SessionsServed, before.SessionsServed+1)
	}
	// Dial may send set-up operations of its own; count from the server.
	st := srv.Stats()
	if after.Submissions != st.Submissions || after.Submissions < before.Submissions+nops+predicts+bad {
		t.Errorf("submissions %d (server %d), want >= %d", after.Submissions, st.Submissions, before.Submissions+nops+predicts+bad)
	}
	if got := after.Completions["not_found"] - before.Completions["not_found"]; got != bad {
		t.Errorf("not_found completions moved by %d, want %d", got, bad)
	}
	if got := after.Completions["ok"] - before.Completions["ok"]; got < nops+predicts {
		t.Errorf("ok completions moved by %d, want >= %d", got, nops+predicts)
	}
	if after.TotalCompletions() != after.Submissions {
		t.Errorf("completions %d != submissions %d", after.TotalCompletions(), after.Submissions)
	}
	// Sequential predicts: one batch each, of exactly `items` items.
	if got := after.Batches - before.Batches; got != predicts {
		t.Errorf("batches moved by %d, want %d", got, predicts)
	}
	if got := after.BatchSize.Count - before.BatchSize.Count; got != predicts {
		t.Errorf("batch size observations moved by %d, want %d", got, predicts)
	}
	if got := after.BatchSize.Sum - before.BatchSize.Sum; got != predicts*items {
		t.Errorf("batch size sum moved by %v, want %d", got, predicts*items)
	}
	if q := after.BatchSize.Quantile(0.5); q <= 2 || q > 4 {
		t.Errorf("batch size median %v, want in (2, 4] (the <=4 bucket)", q)
	}
	if got := after.QueueWait.Count - before.QueueWait.Count; got != predicts {
		t.Errorf("queue wait observations moved by %d, want %d", got, predicts)
	}
	if after.QueueWait.Sum <= before.QueueWait.Sum || after.ServiceTime.Sum <= before.ServiceTime.Sum {
		t.Errorf("queue wait / service time sums did not grow: %v -> %v, %v -> %v",
			before.QueueWait.Sum, after.QueueWait.Sum, before.ServiceTime.Sum, after.ServiceTime.Sum)
	}
	if got := after.ServiceTime.Count - before.ServiceTime.Count; got != predicts {
		t.Errorf("service time observations moved by %d, want %d", got, predicts)
	}
	if got := after.Decisions["cpu"] - before.Decisions["cpu"]; got != predicts {
		t.Errorf("cpu decisions moved by %d, want %d", got, predicts)
	}
	if after.Decisions["gpu"] != 0 || after.GPUFallbacks != 0 {
		t.Errorf("gpu decisions %d fallbacks %d without a GPU", after.Decisions["gpu"], after.GPUFallbacks)
	}
	if got := after.Policy.Decisions["cpu"] - before.Policy.Decisions["cpu"]; got != predicts {
		t.Errorf("policy cpu decisions moved by %d, want %d", got, predicts)
	}
	if len(after.Models) != 1 || after.Models[0].Version != 2 {
		t.Errorf("model versions after replace: %+v", after.Models)
	}

	// Detaching is visible too.
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for scrape(t, url).Sessions != 0 {
		if time.Now().After(deadline) {
			t.Fatal("lake_sessions did not drop after the client closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
