package admin

import (
	"net/http"
	"time"
)

// NewHTTPServer returns an http.Server for h with the timeouts laked uses
// on the admin socket: a client that stalls cannot hold a connection
// open forever, and a slow policy load (the verifier can take seconds)
// still completes. Serve it on the listener from Listen; Shutdown it on
// SIGTERM.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}
