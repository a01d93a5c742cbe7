package laked_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/lakelib"
)

// gateKernel is a CPU kernel that blocks until its gate opens.
var gateKernel struct {
	once    sync.Once
	started chan struct{}
	gate    atomic.Pointer[chan struct{}] // this run's gate
}

// TestBlockedDeviceCallHoldsOnlyItsSession: a client whose synchronous
// launch blocks in laked (a CPU kernel waiting on a gate) holds up its
// own session only: laked's poller hands a session with a device
// operation to the session's own goroutine, so another client's
// predicts keep completing meanwhile, and the launch completes once the
// kernel returns.
func TestBlockedDeviceCallHoldsOnlyItsSession(t *testing.T) {
	gate := make(chan struct{})
	gateKernel.gate.Store(&gate)
	gateKernel.once.Do(func() {
		gateKernel.started = make(chan struct{}, 1)
		err := cpu.RegisterModule("poll_gate", map[string]cpu.KernelFunc{"wait": func(*cpu.KernelContext) error {
			gateKernel.started <- struct{}{}
			select {
			case <-*gateKernel.gate.Load():
			case <-time.After(20 * time.Second):
			}
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	})
	_, sock := startEcho(t, laked.Config{}, &echoModel{})
	a := dial(t, sock, lakelib.Options{})
	b := dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// b is served (by the poller) before a starts.
	if err := echo(ctx, b, 1, 0); err != nil {
		t.Fatal(err)
	}
	x, err := a.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := x.ModuleLoadData(ctx, []byte("poll_gate"))
	if err != nil {
		t.Fatal(err)
	}
	fn, err := x.ModuleGetFunction(ctx, mod, "wait")
	if err != nil {
		t.Fatal(err)
	}
	launched := make(chan error, 1)
	go func() {
		launched <- x.LaunchKernel(ctx, fn, lakelib.Dim3{X: 1, Y: 1, Z: 1}, lakelib.Dim3{X: 1, Y: 1, Z: 1}, 0, 0)
	}()
	select {
	case <-gateKernel.started:
	case <-ctx.Done():
		t.Fatal("the kernel did not start")
	}
	// While a's launch blocks, b's predicts complete.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	for i := 0; i < 200; i++ {
		if err := echo(pctx, b, 1+i%4, uint64(i)); err != nil {
			t.Fatalf("predict %d while another session's launch blocks: %v", i, err)
		}
	}
	select {
	case err := <-launched:
		t.Fatalf("the launch returned (%v) before its kernel did", err)
	default:
	}
	close(gate)
	if err := <-launched; err != nil {
		t.Fatal(err)
	}
	// a is back with the poller: its predicts are served.
	for i := 0; i < 10; i++ {
		if err := echo(ctx, a, 2, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
}
