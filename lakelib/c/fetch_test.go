//go:build linux

package lakec

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/linnos"
)

// TestCModelFetch runs the C library's lake_client_model_fetch against a
// real laked serving a LinnOS model: size query, a range one byte short,
// an unknown model, a range outside the arena, then the fetch, whose bytes
// must be the model's integer weight file.
func TestCModelFetch(t *testing.T) {
	bin := cTestBinary(t)
	srv, sock := lakedtest.Start(t, laked.Config{})
	fm, err := linnos.NewFloatModel(0)
	if err != nil {
		t.Fatal(err)
	}
	fm.B[1][0] = 0.5
	im, err := linnos.Quantize(fm)
	if err != nil {
		t.Fatal(err)
	}
	meta := linnos.ModelMeta{ThresholdUs: 321}
	if err := srv.RegisterModel(7, laked.NewLinnOSModelMeta("linnos", im, meta)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	msg, err := exec.CommandContext(ctx, bin, "fetch", sock, out).CombinedOutput()
	if err != nil {
		t.Fatalf("C client: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := linnos.EncodeInt(im, meta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("C fetched %d bytes, the weight file is %d bytes (equal: false)\n%s", len(got), len(want), msg)
	}
}
