package laked

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/shm"
)

// slowRegistering is a backend whose first RegisterHost blocks until
// release is closed (as cuMemHostRegister pinning a large arena takes
// its time); it counts the registrations still held.
type slowRegistering struct {
	backend.Backend
	first   atomic.Bool
	entered chan struct{} // closed once the first registration is under way
	release chan struct{}
	held    atomic.Int64
}

func (b *slowRegistering) RegisterHost(mem []byte) (func() error, error) {
	if b.first.CompareAndSwap(false, true) {
		close(b.entered)
		<-b.release
	}
	b.held.Add(1)
	return func() error { b.held.Add(-1); return nil }, nil
}

// TestSlowRegistrationHoldsOnlyItsClient: registering a client's region
// with the GPU backend happens outside the server lock, so another
// client attaches (and is served) while the first one's registration
// is still pinning; the first then attaches too. A registration that
// finishes after Shutdown began is undone, and its client refused.
func TestSlowRegistrationHoldsOnlyItsClient(t *testing.T) {
	reg := &slowRegistering{Backend: cpu.New(backend.Limits{}), entered: make(chan struct{}), release: make(chan struct{})}
	srv := newTestServer(t, Config{IdleSpin: -1, Backend: reg})
	slow, fast := newGoneTransport(t), newGoneTransport(t)
	attached := make(chan error, 1)
	go func() { _, err := srv.Attach(slow); attached <- err }()
	<-reg.entered
	done := make(chan error, 1)
	go func() { _, err := srv.Attach(fast); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(reg.release)
		t.Fatal("a client's handshake waited for another client's region registration")
	}
	if e := answerNop(t, fast.r, 1); e.Status != shm.StatusOK {
		t.Fatalf("the second client's nop: %v", e.Status)
	}
	close(reg.release)
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	if e := answerNop(t, slow.r, 2); e.Status != shm.StatusOK {
		t.Fatalf("the first client's nop: %v", e.Status)
	}
	if n := reg.held.Load(); n != 2 {
		t.Fatalf("%d registrations held, want 2", n)
	}

	// Shutdown while a registration is under way: it is undone.
	reg2 := &slowRegistering{Backend: cpu.New(backend.Limits{}), entered: make(chan struct{}), release: make(chan struct{})}
	srv2, err := New(Config{IdleSpin: -1, Backend: reg2})
	if err != nil {
		t.Fatal(err)
	}
	late := newGoneTransport(t)
	go func() { _, err := srv2.Attach(late); attached <- err }()
	<-reg2.entered
	stopped := make(chan error, 1)
	go func() { stopped <- srv2.Shutdown(context.Background()) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		srv2.mu.Lock()
		closing := srv2.closing
		srv2.mu.Unlock()
		if closing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Shutdown did not begin while a registration was under way")
		}
	}
	close(reg2.release)
	if err := <-attached; !errors.Is(err, ErrShutdown) {
		t.Fatalf("a client whose registration finished after Shutdown began: %v, want ErrShutdown", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := reg2.held.Load(); n != 0 {
		t.Fatalf("%d registrations left after the refused client", n)
	}
}
