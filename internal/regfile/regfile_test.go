//go:build unix

package regfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	small := filepath.Join(dir, "small")
	want := []byte("a model of twenty-eight bytes")
	if err := os.WriteFile(small, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(ctx, small, 64)
	if err != nil || string(got) != string(want) {
		t.Fatalf("regular file: %q, %v", got, err)
	}
	if _, err := ReadFile(ctx, small, 8); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("file above the limit: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if got, err := ReadFile(ctx, empty, 8); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %q, %v", got, err)
	}
	if _, err := ReadFile(ctx, dir, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("directory: %v", err)
	}
	// /dev/zero is endless: refused at once, not read until memory runs out.
	start := time.Now()
	if _, err := ReadFile(ctx, "/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("/dev/zero: %v", err)
	}
	// A FIFO with no writer: opening it must not block.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	if _, err := ReadFile(ctx, fifo, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("fifo: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refusing a device and a FIFO took %v", d)
	}
	if _, err := ReadFile(ctx, filepath.Join(dir, "missing"), 8); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ReadFile(cctx, small, 64); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
}
