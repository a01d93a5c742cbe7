package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/policy"
)

// BenchmarkScrape measures one /metrics scrape against its baseline, the
// Server.Stats snapshot it is built from (same run, same server):
//
//	go test -run '^$' -bench Scrape -benchtime 2s ./laked/metrics/
//
// Sub-benchmarks: "baseline-stats" (Server.Stats only), "lake-only" (the
// lake_ series, encoded), "full" (plus the Go and process collectors:
// what Handler serves).
func BenchmarkScrape(b *testing.B) {
	srv, err := laked.New(laked.Config{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	for id := uint32(1); id <= 4; id++ {
		m, err := laked.NewMLPModel("m", laked.DemoMLPBlob(int64(id), 8, 16, 2))
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.RegisterModel(id, m); err != nil {
			b.Fatal(err)
		}
	}
	eng, err := policy.New(policy.Options{DisableBPF: true})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	req := httptest.NewRequest(http.MethodGet, Path, nil)
	serve := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	}
	b.Run("baseline-stats", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = srv.Stats()
		}
	})
	b.Run("lake-only", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(srv, eng))
		serve(b, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	})
	b.Run("full", func(b *testing.B) {
		h, err := Handler(srv, eng)
		if err != nil {
			b.Fatal(err)
		}
		serve(b, h)
	})
}
