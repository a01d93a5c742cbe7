package laked

import (
	"time"

	"github.com/lakeos/lake/shm"
)

// Transport connects laked to one client's region: the region itself,
// the two doorbells and the client's liveness. The unix-socket handshake
// (userspace clients, memfd regions) and the /dev/lake device (the kernel
// client) are the two transports; tests use in-process ones.
// A Transport may also say who its client is (optional methods):
//
//	Kernel() bool   // the client is the kernel (/dev/lake)
//	Trusted() bool  // the client may load arbitrary GPU modules
//	                // (backend.TrustedBackend): the kernel, or a uid-0 peer
type Transport interface {
	// Region is the client's region, already validated.
	Region() *shm.Region
	// WaitSubmissions sleeps until the client rings the submission
	// doorbell or timeout passes, unless ready() reports true after laked
	// has announced that it sleeps (see PROTOCOL.md, "Doorbells").
	WaitSubmissions(ready func() bool, timeout time.Duration) error
	// NotifyCompletions rings the completion doorbell after laked posted
	// completions.
	NotifyCompletions() error
	// Gone is closed when the client has gone away (socket closed).
	// A transport whose client cannot go away returns nil.
	Gone() <-chan struct{}
	// Close releases the region mapping and the connection. laked calls
	// it once, after the session has drained.
	Close() error
	// String names the client for logs, e.g. "unix:pid=42" or "kernel:/dev/lake".
	String() string
}

// bellTransport is the doorbell half shared by transports whose doorbells
// are the futex words of the region.
type bellTransport struct {
	sq, cq shm.Bell
}

func newBellTransport(r *shm.Region) bellTransport {
	return bellTransport{sq: r.SQ().Bell, cq: r.CQ().Bell}
}

func (b bellTransport) WaitSubmissions(ready func() bool, timeout time.Duration) error {
	return b.sq.Wait(ready, timeout)
}

func (b bellTransport) NotifyCompletions() error { return b.cq.Ring() }
