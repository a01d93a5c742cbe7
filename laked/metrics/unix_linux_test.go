package metrics_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/metrics"
	"github.com/lakeos/lake/lakelib"
)

// TestScrapeOverUnixSocket: Scrape("unix:/path") reads the endpoint laked
// serves with metrics_addr unix:/path, and a handshake refused at
// max_clients shows in lake_handshakes_refused_total.
func TestScrapeOverUnixSocket(t *testing.T) {
	srv, sock := startLaked(t, laked.Config{MaxClients: 1})
	h, err := metrics.Handler(srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := laked.Listen(ms)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(l)
	defer hs.Close()
	lakedtest.Dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := lakelib.Dial(ctx, sock, lakelib.Options{}); err == nil {
		t.Fatal("a second client attached with max_clients 1")
	}
	// The session is counted once laked attached it, which may be just
	// after the client's Dial returned.
	for deadline := time.Now().Add(5 * time.Second); srv.Usage().Sessions != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	s := scrape(t, "unix:"+ms)
	if s.Sessions != 1 || len(s.Models) != 1 {
		t.Fatalf("snapshot over the unix socket: %+v", s)
	}
	if s.Refused != 1 {
		t.Fatalf("lake_handshakes_refused_total %d, want 1", s.Refused)
	}
}
