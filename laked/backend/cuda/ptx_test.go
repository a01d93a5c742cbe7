package cuda

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPTXUpToDate regenerates the PTX from ptx/lake.cu (and the shared
// lakelib/include/lake_snapshot.h it includes) with clang, as gen.sh does,
// and fails when the committed ptx/lake.ptx differs: run go generate
// ./laked/backend/cuda/ (make generate) after changing either.
func TestPTXUpToDate(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not found: cannot regenerate the PTX (CI has clang)")
	}
	out := filepath.Join(t.TempDir(), "lake.ptx")
	cmd := exec.Command(clang, "--cuda-device-only", "--cuda-gpu-arch=sm_80", "-nocudainc", "-nocudalib",
		"-I../../../../lakelib/include", "-O3", "-ffp-contract=off", "-S", "-o", out, "lake.cu")
	cmd.Dir = "ptx"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, BuiltinPTX) {
		t.Fatal("ptx/lake.ptx is stale: run go generate ./laked/backend/cuda/ (make generate)")
	}
}
