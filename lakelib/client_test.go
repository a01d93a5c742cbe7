package lakelib_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := lakelib.Dial(ctx, filepath.Join(t.TempDir(), "none.sock"), lakelib.Options{}); err == nil || !strings.Contains(err.Error(), "connect to laked") {
		t.Fatalf("dial to nothing: %v", err)
	}
	if _, err := lakelib.Dial(ctx, "/x", lakelib.Options{Region: shm.Config{SQEntries: 3}}); !errors.Is(err, shm.ErrBadConfig) {
		t.Fatalf("bad region config: %v", err)
	}
	// A server that answers the hello with garbage is refused.
	sock := filepath.Join(t.TempDir(), "bad.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		c.Read(buf)
		c.Write(make([]byte, 64))
	}()
	if _, err := lakelib.Dial(ctx, sock, lakelib.Options{}); !errors.Is(err, shm.ErrHandshake) {
		t.Fatalf("garbage reply: %v", err)
	}
}

func TestHostBuffersAndZeroCopyPredict(t *testing.T) {
	_, sock := lakedtest.Start(t, laked.Config{})
	c := lakedtest.Dial(t, sock, lakelib.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.AllocHost(0); err == nil {
		t.Fatal("zero-byte host buffer accepted")
	}
	in, err := c.AllocHost(32)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.AllocHost(8)
	if err != nil {
		t.Fatal(err)
	}
	copy(in.Bytes(), laked.Float32sToBytes([]float32{1, 2, 3, 4, 5, 6, 7, 8}))
	want := make([]byte, 8)
	if _, err := c.Predict(ctx, lakedtest.DemoMLP, 1, in.Bytes(), want); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PredictBuf(ctx, lakedtest.DemoMLP, 1, in, out); err != nil {
		t.Fatal(err)
	}
	if string(out.Bytes()) != string(want) {
		t.Fatal("zero-copy predict differs from the copying one")
	}
	if err := in.Free(); err != nil {
		t.Fatal(err)
	}
	if err := in.Free(); err == nil {
		t.Fatal("double free of a host buffer accepted")
	}
	if _, err := c.Predict(ctx, 99, 1, make([]byte, 32), make([]byte, 8)); !errors.Is(err, lakelib.ErrStatus(shm.StatusNotFound)) {
		t.Fatalf("unknown model: %v", err)
	}
}

// TestManyGoroutinesShareOneClient runs more concurrent calls than the
// ring has slots: calls wait for a free slot, none is lost.
func TestManyGoroutinesShareOneClient(t *testing.T) {
	_, sock := lakedtest.Start(t, laked.Config{})
	c := lakedtest.Dial(t, sock, lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := c.Nop(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c.Strays() != 0 {
		t.Fatalf("%d stray completions", c.Strays())
	}
}

func TestCallsAfterClose(t *testing.T) {
	_, sock := lakedtest.Start(t, laked.Config{})
	c := lakedtest.Dial(t, sock, lakelib.Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Nop(context.Background()); !errors.Is(err, lakelib.ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}
