package admin

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAdmin measures admin API calls through Client over the unix
// socket against a baseline handler that answers "{}" on the same kind of
// socket (the HTTP-over-unix-socket cost):
//
//	go test -run '^$' -bench Admin -benchtime 2s ./laked/admin/
func BenchmarkAdmin(b *testing.B) {
	serve := func(b *testing.B, h http.Handler) *Client {
		sock := filepath.Join(b.TempDir(), "a.sock")
		l, err := Listen(sock)
		if err != nil {
			b.Fatal(err)
		}
		hs := NewHTTPServer(h)
		go hs.Serve(l)
		b.Cleanup(func() { hs.Close() })
		c := NewClient(sock, 10*time.Second)
		b.Cleanup(c.Close)
		return c
	}
	b.Run("baseline-empty", func(b *testing.B) {
		c := serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("{}\n"))
		}))
		var out struct{}
		for b.Loop() {
			if err := c.do(b.Context(), http.MethodGet, "/v1/status", nil, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("status", func(b *testing.B) {
		c := newEnv(b, nil).c
		for b.Loop() {
			if _, err := c.Status(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stats", func(b *testing.B) {
		c := newEnv(b, nil).c
		for b.Loop() {
			if _, err := c.Stats(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
