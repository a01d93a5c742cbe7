package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetricsOnUnixSocket: metrics_addr "unix:/path" serves /metrics on
// a unix socket of mode 0600 instead of loopback TCP (which every local
// user can read).
func TestMetricsOnUnixSocket(t *testing.T) {
	ms := filepath.Join(t.TempDir(), "metrics.sock")
	startLaked(t, "--metrics-addr", "unix:"+ms)
	var fi os.FileInfo
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err = os.Stat(ms); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("metrics socket mode %#o, want 0600", perm)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ms)
	}}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://laked/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "lake_") {
		t.Fatalf("metrics over the unix socket: %d %.200s", resp.StatusCode, b)
	}
}
