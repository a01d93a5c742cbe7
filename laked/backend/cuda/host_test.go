//go:build linux

package cuda

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/lakeos/lake/linnos"
)

var (
	hostDir  string
	hostOnce sync.Once
	hostBin  string
	hostErr  error
	hostOut  []byte
)

// hostKernels compiles ptx/host_test.c, which runs lake.cu's kernels on
// the host, once per test binary, with ASan and UBSan when the compiler
// has them.
func hostKernels(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot run the kernels on the host (CI has gcc)")
	}
	hostOnce.Do(func() {
		hostDir, hostErr = os.MkdirTemp("", "lake-kernels-")
		if hostErr != nil {
			return
		}
		hostBin = filepath.Join(hostDir, "host_test")
		args := []string{"-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-ffp-contract=off",
			"-o", hostBin, filepath.Join("ptx", "host_test.c")}
		san := []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all"}
		hostOut, hostErr = exec.Command(cc, append(san, args...)...).CombinedOutput()
		if hostErr != nil {
			hostOut, hostErr = exec.Command(cc, args...).CombinedOutput()
		}
	})
	if hostErr != nil {
		t.Fatalf("compiling the host kernels: %v\n%s", hostErr, hostOut)
	}
	return hostBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if hostDir != "" {
		os.RemoveAll(hostDir)
	}
	os.Exit(code)
}

// runOnHost runs kernel with grid blocks over n items.
func runOnHost(t *testing.T, kernel string, grid, n int, params, in []byte) []byte {
	t.Helper()
	bin := hostKernels(t)
	dir := t.TempDir()
	pp, ip, op := filepath.Join(dir, "p"), filepath.Join(dir, "i"), filepath.Join(dir, "o")
	if err := os.WriteFile(pp, params, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ip, in, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, kernel, strconv.Itoa(grid), strconv.Itoa(n), pp, ip, op).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", kernel, err, out)
	}
	res, err := os.ReadFile(op)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4*n {
		t.Fatalf("%s: %d output bytes for %d items", kernel, len(res), n)
	}
	return res
}

func i64bytes(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

// TestKernelsOnHost runs the CUDA C of the built-in kernels on the host
// (every block as 256 threads with a barrier for __syncthreads) and holds
// the LinnOS kernels, +1 and +2, integer and float, to the Go CPU models
// bit for bit, with fewer blocks than items so that blocks stride. It
// checks the kernels' arithmetic, indexing and barriers without a GPU;
// TestGPULinnOSBitExact checks the same on the GPU.
func TestKernelsOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	// vector_add
	const vn = 1000
	a := make([]float32, 2*vn)
	for i := range a {
		a[i] = float32(i)*0.37 - 11
	}
	out := runOnHost(t, "lake_vector_add", 3, vn, []byte{0}, f32bytes(a))
	for i := 0; i < vn; i++ {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:])); got != a[i]+a[vn+i] {
			t.Fatalf("vector_add[%d] = %v, want %v", i, got, a[i]+a[vn+i])
		}
	}
	for extra := 0; extra <= linnos.MaxExtra; extra++ {
		f, q := linnosModels(t, extra)
		n := []int{48, 12, 24}[extra]
		feat := linnosInputs(n, uint64(7+extra))
		wantI, wantF := make([]int32, n), make([]int32, n)
		if err := q.PredictBatch(feat, wantI); err != nil {
			t.Fatal(err)
		}
		if err := f.PredictBatch(feat, wantF); err != nil {
			t.Fatal(err)
		}
		in := i32bytes(feat)
		gotI := runOnHost(t, "lake_linnos_int"+strconv.Itoa(extra), 5, n, i64bytes(LinnOSParamsInt(q)), in)
		gotF := runOnHost(t, "lake_linnos_float"+strconv.Itoa(extra), 5, n, f32bytes(LinnOSParamsFloat(f)), in)
		slow := 0
		for i := 0; i < n; i++ {
			if g := int32(binary.LittleEndian.Uint32(gotI[4*i:])); g != wantI[i] {
				t.Fatalf("int extra=%d item %d: kernel %d, CPU %d", extra, i, g, wantI[i])
			}
			if g := int32(binary.LittleEndian.Uint32(gotF[4*i:])); g != wantF[i] {
				t.Fatalf("float extra=%d item %d: kernel %d, CPU %d", extra, i, g, wantF[i])
			}
			slow += int(wantI[i])
		}
		if slow == 0 || slow == n {
			t.Fatalf("extra=%d: every class is %d; the inputs decide nothing", extra, wantI[0])
		}
	}
}
