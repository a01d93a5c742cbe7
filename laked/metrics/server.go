package metrics

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// IsLoopback reports whether addr (host:port, as metrics_addr) listens
// only on a loopback address. laked exposes metrics beyond the host only
// when configured to on purpose; it uses this to warn when it is.
// "localhost" counts as loopback; an empty host (all interfaces) does not.
func IsLoopback(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("metrics: address %q: %w", addr, err)
	}
	if p, err := net.LookupPort("tcp", port); err != nil || p == 0 {
		return false, fmt.Errorf("metrics: address %q: bad port %q", addr, port)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		if host == "" {
			return false, nil
		}
		return false, fmt.Errorf("metrics: address %q: host must be an IP address or localhost", addr)
	}
	return ip.IsLoopback(), nil
}

// NewHTTPServer returns the http.Server laked runs on metrics_addr:
// Handler on Path, 404 elsewhere, with timeouts so that a stalled scraper
// cannot hold connections open.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}
