//go:build linux

package linnos

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReplayDirectOnFiles(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(dir, "replica"+string(rune('0'+i)))
		if err := os.WriteFile(p, make([]byte, 2<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	tr := smallTrace(t, 400)
	ctx := context.Background()
	base, err := ReplayDirect(ctx, tr, DirectConfig{Paths: paths, QueueDepth: 4})
	if errors.Is(err, unix.EINVAL) {
		t.Skip("the filesystem under t.TempDir() does not support O_DIRECT")
	}
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	for _, x := range tr {
		if x.Op == Read {
			reads++
		}
	}
	if base.Reads != reads || base.Latencies[0] <= 0 || base.P999Us < base.P95Us {
		t.Fatalf("baseline: %d reads (want %d), min %.1f µs", base.Reads, reads, base.Latencies[0])
	}
	lin, err := ReplayDirect(ctx, tr, DirectConfig{Paths: paths, Mode: LinnOS, Predictor: constPredictor(true), QueueDepth: 2, TimeScale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if lin.Forced != reads || lin.Predictions != 3*reads || lin.Revokes != 3*reads {
		t.Fatalf("always-revoke: forced %d predictions %d for %d reads", lin.Forced, lin.Predictions, reads)
	}
	if _, err := ReplayDirect(ctx, tr, DirectConfig{Paths: paths, Mode: Hedging}); err == nil {
		t.Fatal("hedging accepted")
	}
	if _, err := ReplayDirect(ctx, tr, DirectConfig{Paths: []string{filepath.Join(dir, "missing")}}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
