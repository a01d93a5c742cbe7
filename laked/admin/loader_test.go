//go:build unix

package admin

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
)

// TestModelLoaderRefusesHostileFiles: only regular files up to
// MaxModelBytes are read; /dev/zero, a FIFO without a writer, a
// directory and an oversized file are refused at once, and the API keeps
// answering writes.
func TestModelLoaderRefusesHostileFiles(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.MaxModelBytes = 4 << 10 })
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.mlp")
	if err := os.WriteFile(big, laked.DemoMLPBlob(1, 64, 64, 2), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{"/dev/zero", "not a regular file"},
		{fifo, "not a regular file"},
		{dir, "not a regular file"},
		{big, "too large"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		start := time.Now()
		_, err := e.c.LoadModel(ctx, 7, KindMLP, c.path, false)
		cancel()
		wantAPIError(t, err, http.StatusUnprocessableEntity, c.want)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("refusing %s took %v", c.path, d)
		}
		if _, err := e.c.LoadModel(t.Context(), 8, KindMLP, writeBlob(t, "ok.mlp", 1, 4, 1), false); err != nil {
			t.Fatalf("a good load after refusing %s: %v", c.path, err)
		}
		if _, err := e.c.UnloadModel(t.Context(), 8); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlowModelBuildDoesNotHoldTheLock: a model being read and built does
// not hold up other state changes.
func TestSlowModelBuildDoesNotHoldTheLock(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(d *Deps) {
		d.LoadModel = func(kind, path string, data []byte) (laked.Model, error) {
			if filepath.Base(path) == "slow.mlp" {
				<-release
			}
			return testLoader(kind, path, data)
		}
	})
	slow := writeBlob(t, "slow.mlp", 1, 4, 1)
	done := make(chan error, 1)
	go func() {
		_, err := e.c.LoadModel(t.Context(), 20, KindMLP, slow, false)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := e.c.LoadModel(ctx, 21, KindMLP, writeBlob(t, "fast.mlp", 2, 4, 1), false); err != nil {
		t.Fatalf("a load waited for another's slow build: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRequestOfAGoneCallerIsDropped: a load whose caller gave up while it
// waited for the lock is not applied afterwards.
func TestRequestOfAGoneCallerIsDropped(t *testing.T) {
	e := newEnv(t, nil)
	p := writeBlob(t, "late.mlp", 1, 4, 1)
	e.h.mu.Lock() // another state change in progress
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err := e.c.LoadModel(ctx, 30, KindMLP, p, false)
	cancel()
	if err == nil {
		e.h.mu.Unlock()
		t.Fatal("load returned while the lock was held")
	}
	time.Sleep(200 * time.Millisecond) // laked sees the connection close
	e.h.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if _, ok := e.h.findModel(30); ok {
		t.Fatal("a load whose caller was gone was applied afterwards")
	}
	// The lock is free again: the next load goes through.
	if _, err := e.c.LoadModel(t.Context(), 31, KindMLP, p, false); err != nil {
		t.Fatal(err)
	}
}
