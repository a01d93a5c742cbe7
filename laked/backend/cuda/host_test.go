//go:build linux

package cuda

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/liteflow/snapshot"
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
			"-I", filepath.Join("..", "..", "..", "lakelib", "include"),
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
		if len(gotI) != 4*n || len(gotF) != 4*n {
			t.Fatalf("extra=%d: %d/%d output bytes for %d items", extra, len(gotI), len(gotF), n)
		}
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

// TestMLPKernelOnHost runs lake_mlp on the host for MLPs with linear,
// ReLU, tanh and sigmoid layers of several widths and holds it to
// kernels.MLP.Forward bit for bit (tanh and sigmoid are kernels'
// deterministic double-precision ones, which lake.cu repeats), including
// inputs that drive the activations into their clamps, NaN and ±Inf.
func TestMLPKernelOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		sh   []int
		acts []kernels.Activation
	}{
		{[]int{8, 16, 2}, []kernels.Activation{kernels.ActReLU}},
		{[]int{3, 1}, []kernels.Activation{kernels.ActReLU}},
		{[]int{31, 256, 256, 2}, []kernels.Activation{kernels.ActReLU}},
		{[]int{5, 300, 7}, []kernels.Activation{kernels.ActReLU}},
		{[]int{6, 40, 40, 3}, []kernels.Activation{kernels.ActTanh}},
		{[]int{6, 40, 40, 3}, []kernels.Activation{kernels.ActSigmoid}},
		{[]int{9, 64, 33, 17, 4}, []kernels.Activation{kernels.ActTanh, kernels.ActSigmoid, kernels.ActReLU}},
	}
	for _, tc := range cases {
		m := actMLP(t, r, tc.sh, tc.acts...)
		table, params, maxw, err := MLPTable(m)
		if err != nil {
			t.Fatal(err)
		}
		hdr := []uint32{uint32(m.NumLayers()), uint32(maxw), uint32(m.OutDim())}
		var pb []byte
		for _, v := range append(hdr, table...) {
			pb = binary.LittleEndian.AppendUint32(pb, v)
		}
		pb = append(pb, f32bytes(params)...)
		const n = 37
		in := normals(r, n*m.InDim())
		// Large inputs saturate tanh and sigmoid (and reach their
		// clamps); the last item carries NaN and infinities.
		for i := range in[:m.InDim()] {
			in[i] *= 200
		}
		last := in[(n-1)*m.InDim():]
		last[0] = float32(math.NaN())
		if len(last) > 2 {
			last[1], last[2] = float32(math.Inf(1)), float32(math.Inf(-1))
		}
		want := make([]float32, n*m.OutDim())
		if err := m.Forward(in, want, n); err != nil {
			t.Fatal(err)
		}
		got := runOnHost(t, "lake_mlp", 1, n, pb, f32bytes(in))
		if len(got) != 4*len(want) {
			t.Fatalf("%v: %d output bytes, want %d", tc.sh, len(got), 4*len(want))
		}
		for i, w := range want {
			g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:]))
			if math.IsNaN(float64(w)) && math.IsNaN(float64(g)) {
				continue // NaN payloads aside
			}
			if math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("%v %v: output %d = %v, CPU %v", tc.sh, tc.acts, i, g, w)
			}
		}
	}
}

// TestActivationsOnHost runs lake.cu's lake_tanhf and lake_sigmoidf on
// the host over a dense sweep of float32 inputs (kernels'
// activationInputs shape: every binade from 2^-30 to 2^8, the clamp
// edges, NaN and infinities) through one-layer MLPs, and holds them to
// the CPU's activations bit for bit.
func TestActivationsOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	var xs []float32
	for e := -30; e <= 8; e++ {
		for m := 0; m < 256; m++ {
			v := float32(math.Ldexp(1+float64(m)/256, e))
			xs = append(xs, v, -v)
		}
	}
	for _, v := range []float32{0, 0x1p-10, 20, 40, 88, 100, 104, 120, 1e30, float32(math.Inf(1))} {
		xs = append(xs, v, -v, math.Nextafter32(v, 0), -math.Nextafter32(v, 0), math.Nextafter32(v, 1e38), -math.Nextafter32(v, 1e38))
	}
	xs = append(xs, float32(math.NaN()))
	for _, act := range []kernels.Activation{kernels.ActTanh, kernels.ActSigmoid} {
		// y = act(1*x + 0): the layer passes x through unchanged.
		blob, err := kernels.EncodeMLP(1, []kernels.Layer{{Out: 1, Act: act, W: []float32{1}, B: []float32{0}}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := kernels.ParseMLP(blob)
		if err != nil {
			t.Fatal(err)
		}
		table, params, maxw, err := MLPTable(m)
		if err != nil {
			t.Fatal(err)
		}
		var pb []byte
		for _, v := range append([]uint32{1, uint32(maxw), 1}, table...) {
			pb = binary.LittleEndian.AppendUint32(pb, v)
		}
		pb = append(pb, f32bytes(params)...)
		want := make([]float32, len(xs))
		if err := m.Forward(xs, want, len(xs)); err != nil {
			t.Fatal(err)
		}
		got := runOnHost(t, "lake_mlp", 4, len(xs), pb, f32bytes(xs))
		for i, w := range want {
			g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:]))
			if math.IsNaN(float64(w)) != math.IsNaN(float64(g)) || (!math.IsNaN(float64(w)) && math.Float32bits(g) != math.Float32bits(w)) {
				t.Fatalf("%v(%v): kernel %v, CPU %v", act, xs[i], g, w)
			}
		}
	}
}

// goldenSnapshots are liteflow/snapshot's golden images (int8 and uint8,
// per-tensor and per-channel, ReLU, tanh, sigmoid, mixed).
func goldenSnapshots(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "..", "liteflow", "snapshot", "testdata", "golden", "*.lksn"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden snapshots: %v", err)
	}
	imgs := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		imgs[filepath.Base(p)] = b
	}
	return imgs
}

// snapshotInputs draws n quantized input vectors in s's range.
func snapshotInputs(s *snapshot.Snapshot, n int, seed uint64) []int32 {
	lo, hi := s.DType.Range()
	r := rand.New(rand.NewPCG(seed, 5))
	in := make([]int32, n*s.InputDim())
	for i := range in {
		in[i] = lo + int32(r.IntN(int(hi-lo+1)))
	}
	return in
}

// TestSnapshotKernelOnHost builds every golden LiteFlow snapshot with
// lake_snapshot_build and runs it with lake_snapshot_run on the host, and
// holds the outputs to snapshot.RunQuantized bit for bit.
func TestSnapshotKernelOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for name, img := range goldenSnapshots(t) {
		s, err := snapshot.Decode(img)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		const n = 150
		in := snapshotInputs(s, n, 1)
		got := runOnHost(t, "lake_snapshot", 3, n, img, i32bytes(in))
		if len(got) != 4*n*s.OutputDim() {
			t.Fatalf("%s: %d output bytes", name, len(got))
		}
		want := make([]int32, s.OutputDim())
		for i := 0; i < n; i++ {
			if err := s.RunQuantized(in[i*s.InputDim():(i+1)*s.InputDim()], want); err != nil {
				t.Fatal(err)
			}
			for o, w := range want {
				if g := int32(binary.LittleEndian.Uint32(got[4*(i*s.OutputDim()+o):])); g != w {
					t.Fatalf("%s item %d output %d: kernel %d, Go %d", name, i, o, g, w)
				}
			}
		}
	}
}
