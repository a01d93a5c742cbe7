package snapshot_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/liteflow/apps/aurora"
	"github.com/lakeos/lake/liteflow/apps/flowsize"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// The C engine (lakelib/include/lake_snapshot.h, the file kernel/liteflow
// compiles) is held to the Go engine here: the same images must be accepted
// or refused, and accepted ones must give bit-identical outputs. The C side
// runs as a child process (testdata/c/snap_harness.c) built once with ASan
// and UBSan and driven over a line protocol.

var (
	cBuildOnce sync.Once
	cBin       string
	cBuildErr  error
	cBuildOut  []byte
)

func cHarnessBinary(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the C snapshot engine tests (CI has gcc)")
	}
	cBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lake-snap-c-")
		if err != nil {
			cBuildErr = err
			return
		}
		cBin = filepath.Join(dir, "snap_harness")
		args := []string{"-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-Wno-sign-conversion",
			"-I", filepath.Join("..", "..", "lakelib", "include"),
			"-o", cBin, filepath.Join("testdata", "c", "snap_harness.c")}
		san := []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all"}
		cBuildOut, cBuildErr = exec.Command(cc, append(san, args...)...).CombinedOutput()
		if cBuildErr != nil {
			// a toolchain without the sanitizer runtimes: plain build
			cBuildOut, cBuildErr = exec.Command(cc, args...).CombinedOutput()
		}
	})
	if cBuildErr != nil {
		t.Fatalf("compiling the C snapshot harness: %v\n%s", cBuildErr, cBuildOut)
	}
	return cBin
}

// cEngine is one running harness.
type cEngine struct {
	t    testing.TB
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	errb strings.Builder
}

func startC(t testing.TB) *cEngine {
	t.Helper()
	e := &cEngine{t: t, cmd: exec.Command(cHarnessBinary(t))}
	var err error
	if e.in, err = e.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	r, err := e.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	e.out = bufio.NewReaderSize(r, 1<<16)
	e.cmd.Stderr = &e.errb
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fmt.Fprintln(e.in, "Q")
		e.in.Close()
		done := make(chan error, 1)
		go func() { done <- e.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("C harness: %v\n%s", err, e.errb.String())
			}
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
			t.Error("C harness did not exit")
		}
	})
	return e
}

func (e *cEngine) call(line string) string {
	e.t.Helper()
	if _, err := io.WriteString(e.in, line+"\n"); err != nil {
		e.t.Fatalf("writing to the C harness: %v\n%s", err, e.errb.String())
	}
	s, err := e.out.ReadString('\n')
	if err != nil {
		e.t.Fatalf("C harness died (%v); stderr:\n%s", err, e.errb.String())
	}
	return strings.TrimSuffix(s, "\n")
}

// load hands an image to the C engine: nil error when it built it, else
// the C errno and message.
func (e *cEngine) load(img []byte) (fields []string, err error) {
	e.t.Helper()
	r := e.call("S " + hex.EncodeToString(img))
	f := strings.Fields(r)
	if len(f) == 7 && f[0] == "ok" {
		return f[1:], nil
	}
	if len(f) >= 2 && f[0] == "err" {
		return nil, fmt.Errorf("C errno %s: %s", f[1], strings.Join(f[2:], " "))
	}
	e.t.Fatalf("C harness answered %q", r)
	return nil, nil
}

func (e *cEngine) run(in []int32) []int32 {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("R")
	for _, v := range in {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(int(v)))
	}
	r := e.call(b.String())
	f := strings.Fields(r)
	if len(f) == 0 || f[0] != "o" {
		e.t.Fatalf("C run answered %q", r)
	}
	out := make([]int32, len(f)-1)
	for i, s := range f[1:] {
		v, err := strconv.Atoi(s)
		if err != nil {
			e.t.Fatalf("C run answered %q", r)
		}
		out[i] = int32(v)
	}
	return out
}

// agree loads img into both engines and checks they accept or refuse it
// alike; when accepted, it runs inputs (nIn random vectors plus the range
// ends and out-of-range values) through both and compares every output.
// It reports whether the image was accepted.
func agree(t *testing.T, e *cEngine, img []byte, nIn int, r *rand.Rand, what string) bool {
	t.Helper()
	gs, gerr := snapshot.Decode(img)
	cf, cerr := e.load(img)
	if (gerr == nil) != (cerr == nil) {
		t.Fatalf("%s: Go decode error %v, C error %v", what, gerr, cerr)
	}
	if gerr != nil {
		return false
	}
	if cf[1] != strconv.FormatUint(uint64(binary.LittleEndian.Uint32(img[len(img)-4:])), 10) ||
		cf[2] != strconv.FormatUint(gs.Generation, 10) || cf[3] != strconv.Itoa(gs.InputDim()) || cf[4] != strconv.Itoa(gs.OutputDim()) {
		t.Fatalf("%s: C reports crc/gen/in/out %v, Go %d in %d out gen %d", what, cf, gs.InputDim(), gs.OutputDim(), gs.Generation)
	}
	lo, hi := gs.DType.Range()
	in := make([]int32, gs.InputDim())
	want := make([]int32, gs.OutputDim())
	for k := 0; k < nIn+4; k++ {
		for j := range in {
			switch k {
			case 0:
				in[j] = lo
			case 1:
				in[j] = hi
			case 2: // out of range: both engines clamp
				in[j] = []int32{-100000, 100000, lo - 1, hi + 1}[j%4]
			case 3:
				in[j] = gs.Input.Zero
			default:
				in[j] = lo + int32(r.IntN(int(hi-lo+1)))
			}
		}
		if err := gs.RunQuantized(in, want); err != nil {
			t.Fatal(err)
		}
		if got := e.run(in); !equal32(got, want) {
			t.Fatalf("%s: input %v: C %v, Go %v", what, in, got, want)
		}
	}
	return true
}

func equal32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCEngineGolden runs the conformance vectors of testdata/golden
// through the C engine.
func TestCEngineGolden(t *testing.T) {
	e := startC(t)
	for _, c := range goldenCases {
		img, err := os.ReadFile(filepath.Join("testdata", "golden", c.name+".lksn"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.load(img); err != nil {
			t.Fatalf("%s: C refuses the golden image: %v", c.name, err)
		}
		vec, err := os.ReadFile(filepath.Join("testdata", "golden", c.name+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(string(vec)), "\n") {
			parts := strings.Split(line, "|")
			in, want := parse(t, parts[0]), parse(t, parts[1])
			if got := e.run(in); !equal32(got, want) {
				t.Fatalf("%s line %d: C %v, golden %v", c.name, n+1, got, want)
			}
			n++
		}
		if n != 64 {
			t.Fatalf("%s: %d vectors", c.name, n)
		}
	}
}

// randomQuantized quantizes a random MLP (random shape, activations,
// granularity, type, biases) the way the adapter does.
func randomQuantized(t *testing.T, r *rand.Rand, gen uint64) *snapshot.Snapshot {
	nl := 1 + r.IntN(4)
	sizes := []int{1 + r.IntN(40)}
	acts := make([]model.Activation, nl)
	for i := 0; i < nl; i++ {
		sizes = append(sizes, 1+r.IntN(40))
		acts[i] = model.Activation(r.IntN(4))
	}
	m, err := model.NewMLP(sizes, acts, r.Uint64())
	if err != nil {
		t.Fatal(err)
	}
	for li := range m.Layers {
		for o := range m.Layers[li].B {
			m.Layers[li].B[o] = float32(r.NormFloat64())
		}
	}
	calib := make([][]float32, 32)
	for k := range calib {
		calib[k] = make([]float32, sizes[0])
		for j := range calib[k] {
			calib[k][j] = float32(r.NormFloat64() * 3)
		}
	}
	dt := snapshot.DType(r.IntN(2))
	s, err := quant.Quantize(m, calib, quant.Options{PerChannel: r.IntN(2) == 0, DType: dt, Generation: gen})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// adversarial builds a valid snapshot with extreme parameters the
// quantizer never produces: saturating left shifts, the deepest right
// shifts, zero multipliers, biases at the overflow bound, -128 weights,
// arbitrary tables and zero points at the range ends.
func adversarial(t *testing.T, r *rand.Rand) *snapshot.Snapshot {
	dims := []int{1 + r.IntN(64)}
	for nl := 1 + r.IntN(4); nl > 0; nl-- {
		dims = append(dims, 1+r.IntN(64))
	}
	return adversarialShape(t, r, dims)
}

// adversarialShape is adversarial with the stage widths dims.
func adversarialShape(t *testing.T, r *rand.Rand, dims []int) *snapshot.Snapshot {
	dt := snapshot.DType(r.IntN(2))
	lo, hi := dt.Range()
	zp := func(lo, hi int32) int32 {
		switch r.IntN(4) {
		case 0:
			return lo
		case 1:
			return hi
		}
		return lo + int32(r.IntN(int(hi-lo+1)))
	}
	s := &snapshot.Snapshot{Generation: r.Uint64(), DType: dt, Input: snapshot.QParams{Scale: float32(r.ExpFloat64()), Zero: zp(lo, hi)}}
	nl := len(dims) - 1
	in := dims[0]
	for li := 0; li < nl; li++ {
		out := dims[li+1]
		l := snapshot.Layer{In: in, Out: out, Act: model.Activation(r.IntN(4)), PerChannel: r.IntN(2) == 0}
		q := snapshot.QParams{Scale: math.Float32frombits(1 + r.Uint32N(0x7f7fffff)), Zero: zp(lo, hi)}
		l.Pre, l.OutQ = q, q
		if l.Act == model.Tanh || l.Act == model.Sigmoid {
			l.Pre.Zero = zp(snapshot.TableLo, snapshot.TableHi)
			l.LUT = make([]int32, snapshot.TableSize)
			for i := range l.LUT {
				l.LUT[i] = lo + int32(r.IntN(int(hi-lo+1)))
			}
		}
		nch := 1
		if l.PerChannel {
			nch = out
		}
		for c := 0; c < nch; c++ {
			l.WScale = append(l.WScale, float32(r.ExpFloat64()))
			switch r.IntN(5) {
			case 0:
				l.Mult = append(l.Mult, 0)
			case 1:
				l.Mult = append(l.Mult, math.MaxInt32)
			case 2:
				l.Mult = append(l.Mult, 1<<30)
			default:
				l.Mult = append(l.Mult, 1<<30+int32(r.Uint32N(1<<30)))
			}
			switch r.IntN(5) {
			case 0:
				l.Shift = append(l.Shift, 30)
			case 1:
				l.Shift = append(l.Shift, -31)
			case 2:
				l.Shift = append(l.Shift, 0)
			default:
				l.Shift = append(l.Shift, int32(r.IntN(62))-31)
			}
		}
		bound := int32(math.MaxInt32 - int64(in)*128*255)
		for o := 0; o < out; o++ {
			switch r.IntN(4) {
			case 0:
				l.Bias = append(l.Bias, bound)
			case 1:
				l.Bias = append(l.Bias, -bound)
			default:
				l.Bias = append(l.Bias, int32(r.Int64N(2*int64(bound)+1)-int64(bound)))
			}
		}
		for i := 0; i < in*out; i++ {
			if r.IntN(3) == 0 {
				l.W = append(l.W, []int8{-128, 127}[r.IntN(2)])
			} else {
				l.W = append(l.W, int8(r.IntN(256)-128))
			}
		}
		s.Layers = append(s.Layers, l)
		in = out
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("adversarial snapshot: %v", err)
	}
	return s
}

func encode(t *testing.T, s *snapshot.Snapshot) []byte {
	t.Helper()
	b, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCEngineRandom compares the engines on quantized random models and on
// adversarial ones.
func TestCEngineRandom(t *testing.T) {
	e := startC(t)
	r := rand.New(rand.NewPCG(18, 1))
	n := 60
	if testing.Short() {
		n = 15
	}
	for i := 0; i < n; i++ {
		if !agree(t, e, encode(t, randomQuantized(t, r, uint64(i))), 40, r, fmt.Sprintf("random model %d", i)) {
			t.Fatalf("random model %d refused", i)
		}
		if !agree(t, e, encode(t, adversarial(t, r)), 40, r, fmt.Sprintf("adversarial model %d", i)) {
			t.Fatalf("adversarial model %d refused", i)
		}
	}
}

// TestCEngineShipped compares the engines on the snapshots the two apps
// ship: Aurora's pre-trained congestion-control policy and the flow-size
// predictor (short pre-training, the same code path as their Run).
func TestCEngineShipped(t *testing.T) {
	e := startC(t)
	r := rand.New(rand.NewPCG(18, 2))
	as, _, _, err := aurora.PretrainedSnapshot(aurora.Config{Seed: 1, PretrainDuration: 2 * time.Second, PretrainEpochs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !agree(t, e, encode(t, as), 300, r, "aurora") {
		t.Fatal("aurora snapshot refused")
	}
	fs, err := flowsize.PretrainedSnapshot(flowsize.Config{Seed: 1, Flows: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if !agree(t, e, encode(t, fs), 300, r, "flowsize") {
		t.Fatal("flowsize snapshot refused")
	}
}

// TestCEngineCorrupt feeds both engines corrupted images: every mutation
// of the Go decoder's table, random byte changes with and without a fixed
// CRC, truncations and extensions. The engines must refuse the same ones,
// and any mutated image both accept must still run identically.
func TestCEngineCorrupt(t *testing.T) {
	e := startC(t)
	r := rand.New(rand.NewPCG(18, 3))
	le := binary.LittleEndian
	refixCRC := func(b []byte) {
		if len(b) >= 4 {
			recrc(b)
		}
	}
	bases := [][]byte{
		encode(t, quantized(t, model.Tanh, true)),
		encode(t, quantized(t, model.ReLU, false)),
		encode(t, adversarial(t, r)),
	}
	for _, c := range goldenCases {
		img, err := os.ReadFile(filepath.Join("testdata", "golden", c.name+".lksn"))
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, img)
	}
	n := 400
	if testing.Short() {
		n = 100
	}
	var accepted, refused int
	for bi, base := range bases {
		for k := 0; k < n; k++ {
			b := append([]byte(nil), base...)
			fix := true
			switch r.IntN(6) {
			case 0: // one random byte anywhere, CRC not fixed: refused by the CRC
				b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
				fix = false
			case 1: // one header or layer-header byte, CRC fixed
				b[r.IntN(min(len(b)-4, 160))] = byte(r.IntN(256))
			case 2: // a 32-bit field set to an edge value, CRC fixed
				p := r.IntN(len(b)-8) &^ 3
				le.PutUint32(b[p:], []uint32{0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 30, 0x7f800000, 0x7fc00000}[r.IntN(8)])
			case 3: // truncate, length field kept or fixed
				b = b[:r.IntN(len(b))]
				if r.IntN(2) == 0 && len(b) >= 12 {
					le.PutUint32(b[8:], uint32(len(b)))
				}
			case 4: // extend
				b = append(b, make([]byte, 1+r.IntN(16))...)
				le.PutUint32(b[8:], uint32(len(b)))
			case 5: // any byte, CRC fixed
				b[r.IntN(len(b)-4)] ^= byte(1 + r.IntN(255))
			}
			if fix {
				refixCRC(b)
			}
			if agree(t, e, b, 3, r, fmt.Sprintf("base %d mutation %d", bi, k)) {
				accepted++
			} else {
				refused++
			}
		}
	}
	// Every byte of the header and of every layer header set to edge
	// values, CRC fixed: each field's rule is exercised on both engines.
	for bi, base := range bases {
		fields := []int{}
		for p := 0; p < snapshot.HeaderSize; p++ {
			fields = append(fields, p)
		}
		for off := snapshot.HeaderSize; off+snapshot.LayerHeader <= len(base)-4; {
			for p := 0; p < snapshot.LayerHeader; p++ {
				fields = append(fields, off+p)
			}
			off += int(le.Uint32(base[off+24:]))
		}
		for _, p := range fields {
			for _, v := range []byte{0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, base[p] + 1, base[p] - 1} {
				if v == base[p] {
					continue
				}
				b := append([]byte(nil), base...)
				b[p] = v
				recrc(b)
				if agree(t, e, b, 2, r, fmt.Sprintf("base %d byte %d = %#x", bi, p, v)) {
					accepted++
				} else {
					refused++
				}
			}
		}
	}
	// the fuzz corpus of the Go decoder too
	ents, _ := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecodeSnapshot"))
	for _, ent := range ents {
		if b, ok := corpusBytes(t, filepath.Join("testdata", "fuzz", "FuzzDecodeSnapshot", ent.Name())); ok {
			agree(t, e, b, 3, r, "corpus "+ent.Name())
		}
	}
	t.Logf("%d mutated images accepted by both engines, %d refused by both", accepted, refused)
	if refused == 0 || accepted == 0 {
		t.Fatalf("mutations exercised only one side (%d accepted, %d refused)", accepted, refused)
	}
}

// TestCEngineErrors checks the C engine's error codes and messages on the
// cases an operator will see.
func TestCEngineErrors(t *testing.T) {
	e := startC(t)
	good := encode(t, quantized(t, model.Sigmoid, true))
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	if _, err := e.load(bad); err == nil || !strings.Contains(err.Error(), "errno 74") || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("bad CRC: %v (want EBADMSG, checksum mismatch)", err)
	}
	v2 := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(v2[4:], 2)
	recrc(v2)
	if _, err := e.load(v2); err == nil || !strings.Contains(err.Error(), "errno 22") || !strings.Contains(err.Error(), "unsupported format version 2") {
		t.Errorf("version 2: %v", err)
	}
	if _, err := e.load(nil); err == nil || !strings.Contains(err.Error(), "shorter than header") {
		t.Errorf("empty image: %v", err)
	}
	if _, err := e.load(good); err != nil {
		t.Fatal(err)
	}
}

// FuzzCEngine checks, for any input, that the C engine accepts exactly the
// images the Go decoder accepts and runs them identically. Seeds: the
// golden images and the Go decoder's corpus (plain go test runs them).
func FuzzCEngine(f *testing.F) {
	for _, c := range goldenCases {
		if b, err := os.ReadFile(filepath.Join("testdata", "golden", c.name+".lksn")); err == nil {
			f.Add(b)
		}
	}
	e := startC(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		e.t = t
		defer func() { e.t = f }()
		agree(t, e, b, 2, rand.New(rand.NewPCG(uint64(len(b)), 4)), "fuzz input")
	})
}

// corpusBytes reads a "go test fuzz v1" file holding one []byte.
func corpusBytes(t *testing.T, path string) ([]byte, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "[]byte(") {
		return nil, false
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		return nil, false
	}
	return []byte(s), true
}

// roundHalfAway rounds a rational to the nearest integer, ties away from
// zero.
func roundHalfAway(v *big.Rat) *big.Int {
	n, d := new(big.Int).Abs(v.Num()), v.Denom()
	q := new(big.Int).Add(new(big.Int).Mul(n, big.NewInt(2)), d)
	q.Quo(q, new(big.Int).Mul(d, big.NewInt(2)))
	if v.Sign() < 0 {
		q.Neg(q)
	}
	return q
}

// TestCEngineFixedPoint holds the kernel callers' fixed-point conversions
// (lake_snap_quantize_fx, lake_snap_dequantize_fx) to exact rational
// arithmetic, and checks that quantizing agrees with Go's QuantizeValue on
// quantizer-like scales except at float32 rounding ties.
func TestCEngineFixedPoint(t *testing.T) {
	e := startC(t)
	r := rand.New(rand.NewPCG(18, 5))
	var floatDiff, floatSame int
	for i := 0; i < 3000; i++ {
		var scale float32
		if i%2 == 0 {
			scale = float32(math.Exp(r.Float64()*14 - 10)) // 4.5e-5 .. 54
		} else {
			scale = math.Float32frombits(1 + r.Uint32N(0x7f7fffff))
		}
		bits := math.Float32bits(scale)
		dt := snapshot.DType(r.IntN(2))
		lo, hi := dt.Range()
		zero := lo + int32(r.IntN(int(hi-lo+1)))
		frac := uint32(r.IntN(25))
		var x int64
		switch r.IntN(3) {
		case 0:
			x = r.Int64N(1<<41) - 1<<40
		case 1:
			x = r.Int64N(1<<20) - 1<<19
		default: // near a multiple of scale/2: exercises the ties
			k := r.Int64N(600) - 300
			x = int64(math.Round(float64(k) * float64(scale) / 2 * math.Ldexp(1, int(frac))))
		}
		sc := new(big.Rat).SetFloat64(float64(scale))
		real := new(big.Rat).SetFrac(big.NewInt(x), new(big.Int).Lsh(big.NewInt(1), uint(frac)))
		approx := false
		if _, exp := math.Frexp(float64(scale)); exp-24+int(frac) > 38 {
			approx = true
		}
		want := roundHalfAway(new(big.Rat).Quo(real, sc))
		want.Add(want, big.NewInt(int64(zero)))
		wq := int64(hi)
		if want.IsInt64() && want.Int64() < int64(hi) {
			wq = max(want.Int64(), int64(lo))
		} else if want.Sign() < 0 {
			wq = int64(lo)
		}
		got := e.call(fmt.Sprintf("F %d %d %d %d %d %d", bits, zero, lo, hi, x, frac))
		if !approx && got != fmt.Sprintf("f %d", wq) {
			t.Fatalf("quantize_fx(scale %g, zero %d, x %d/2^%d) = %q, exact %d", scale, zero, x, frac, got, wq)
		}
		if i%2 == 0 {
			xf, _ := real.Float32()
			if g := snapshot.QuantizeValue(xf, snapshot.QParams{Scale: scale, Zero: zero}, dt); int64(g) != wq {
				floatDiff++
			} else {
				floatSame++
			}
		}
		q := lo + int32(r.IntN(int(hi-lo+1)))
		dwant := roundHalfAway(new(big.Rat).Mul(new(big.Rat).Mul(sc, new(big.Rat).SetInt64(int64(q-zero))),
			new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(frac)))))
		lim := new(big.Int).Lsh(big.NewInt(1), 62)
		if dwant.CmpAbs(lim) > 0 {
			dwant.Set(lim)
			if q < zero {
				dwant.Neg(dwant)
			}
		}
		if got := e.call(fmt.Sprintf("D %d %d %d %d", bits, zero, q, frac)); got != "d "+dwant.String() {
			t.Fatalf("dequantize_fx(scale %g, zero %d, q %d, frac %d) = %q, exact %s", scale, zero, q, frac, got, dwant)
		}
	}
	// fixed point to float32 bits (feature records): exact below 2^24
	for i := 0; i < 2000; i++ {
		x := r.Int64N(1<<24) - 1<<23
		if i%3 == 0 {
			x = r.Int64N(1000) - 500
		}
		frac := uint32(r.IntN(30))
		want := math.Float32bits(float32(math.Ldexp(float64(x), -int(frac))))
		if got := e.call(fmt.Sprintf("B %d %d", x, frac)); got != fmt.Sprintf("b %d", want) {
			t.Fatalf("fx_to_f32(%d, %d) = %q, want b %d", x, frac, got, want)
		}
	}
	t.Logf("fixed-point quantization equals Go's float32 QuantizeValue in %d of %d cases", floatSame, floatSame+floatDiff)
	if floatDiff*50 > floatSame {
		t.Fatalf("fixed point and Go's float path differ in %d of %d cases", floatDiff, floatSame+floatDiff)
	}
}

var (
	cBenchOnce sync.Once
	cBenchBin  string
	cBenchErr  error
)

// startCBench starts the harness built as the kernel builds C (-O2, no
// sanitizers), for timing.
func startCBench(b *testing.B) *cEngine {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		b.Skip("gcc not found")
	}
	cBenchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lake-snap-cbench-")
		if err != nil {
			cBenchErr = err
			return
		}
		cBenchBin = filepath.Join(dir, "snap_harness_o2")
		out, err := exec.Command(cc, "-std=gnu11", "-O2", "-I", filepath.Join("..", "..", "lakelib", "include"),
			"-o", cBenchBin, filepath.Join("testdata", "c", "snap_harness.c")).CombinedOutput()
		if err != nil {
			cBenchErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if cBenchErr != nil {
		b.Fatal(cBenchErr)
	}
	e := &cEngine{t: b, cmd: exec.Command(cBenchBin)}
	e.in, _ = e.cmd.StdinPipe()
	r, _ := e.cmd.StdoutPipe()
	e.out = bufio.NewReaderSize(r, 1<<16)
	if err := e.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fmt.Fprintln(e.in, "Q"); e.in.Close(); e.cmd.Wait() })
	return e
}

// benchAurora is the Aurora snapshot the kernel app runs (30-32-16-1
// tanh, per-channel) and one input in its domain.
func benchAurora(b *testing.B) (*snapshot.Snapshot, []int32) {
	s, _, _, err := aurora.PretrainedSnapshot(aurora.Config{Seed: 1, PretrainDuration: 2 * time.Second, PretrainEpochs: 3})
	if err != nil {
		b.Fatal(err)
	}
	in := make([]int32, s.InputDim())
	for i := range in {
		in[i] = int32(i*7%200) - 100
	}
	return s, in
}

// BenchmarkAuroraQuery compares one decision of the Aurora snapshot in the
// C engine (lake_snapshot.h at -O2, what tcp_lake.ko runs per monitor
// interval) with the Go engine's RunQuantized (vecmath: AVX2/AVX-512 where
// the CPU has them) and its scalar reference RunQuantizedReference on the
// same snapshot, in the same run. The C timing loop runs in the harness process (b.N runs per
// command; pipe cost excluded).
func BenchmarkAuroraQuery(b *testing.B) {
	s, in := benchAurora(b)
	img, err := snapshot.Encode(s)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("C", func(b *testing.B) {
		e := startCBench(b)
		if _, err := e.load(img); err != nil {
			b.Fatal(err)
		}
		var sb strings.Builder
		for _, v := range in {
			fmt.Fprintf(&sb, " %d", v)
		}
		b.ResetTimer()
		r := e.call(fmt.Sprintf("T %d%s", b.N, sb.String()))
		b.StopTimer()
		ns, err := strconv.ParseInt(strings.TrimPrefix(r, "t "), 10, 64)
		if err != nil {
			b.Fatalf("harness answered %q", r)
		}
		b.ReportMetric(float64(ns)/float64(b.N), "engine-ns/op")
	})
	for _, g := range []struct {
		name string
		run  func(in, out []int32) error
	}{{"Go", s.RunQuantized}, {"GoScalar", s.RunQuantizedReference}} {
		b.Run(g.name, func(b *testing.B) {
			out := make([]int32, s.OutputDim())
			x := append([]int32(nil), in...)
			b.ResetTimer()
			start := time.Now()
			for k := 0; k < b.N; k++ {
				x[k%len(x)] ^= 1
				if err := g.run(x, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "engine-ns/op")
		})
	}
}

// TestCEngineWide compares the engines on snapshots as wide as the format
// allows (snapshot.MaxWidth, the kernel's limit too since queries use
// per-CPU scratch sized per snapshot): quantized random models with
// stages of hundreds to 1024 units, and adversarial ones at the extremes
// (biases at the accumulator bound of a 1024-input layer).
func TestCEngineWide(t *testing.T) {
	e := startC(t)
	r := rand.New(rand.NewPCG(18, 7))
	shapes := [][]int{{300, 65, 2}, {30, 1024, 1}, {1024, 128, 1024}, {64, 1024, 1024, 3}}
	if testing.Short() {
		shapes = shapes[:2]
	}
	for i, sizes := range shapes {
		acts := make([]model.Activation, len(sizes)-1)
		for k := range acts {
			acts[k] = model.Activation(r.IntN(4))
		}
		m, err := model.NewMLP(sizes, acts, r.Uint64())
		if err != nil {
			t.Fatal(err)
		}
		calib := make([][]float32, 16)
		for k := range calib {
			calib[k] = make([]float32, sizes[0])
			for j := range calib[k] {
				calib[k][j] = float32(r.NormFloat64() * 3)
			}
		}
		s, err := quant.Quantize(m, calib, quant.Options{PerChannel: i%2 == 0, DType: snapshot.DType(i % 2), Generation: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		if !agree(t, e, encode(t, s), 8, r, fmt.Sprintf("wide model %v", sizes)) {
			t.Fatalf("wide model %v refused", sizes)
		}
	}
	// adversarial at full width: one 1024 -> 1024 layer with extreme
	// biases, weights and shifts
	for k := 0; k < 2; k++ {
		s := adversarialShape(t, r, []int{snapshot.MaxWidth, snapshot.MaxWidth})
		if !agree(t, e, encode(t, s), 4, r, "adversarial 1024x1024") {
			t.Fatal("adversarial 1024x1024 refused")
		}
	}
	// one unit wider than the format allows (a valid image with its
	// first layer's output count patched, CRC fixed): both refuse
	img := encode(t, adversarialShape(t, r, []int{8, snapshot.MaxWidth, 2}))
	binary.LittleEndian.PutUint16(img[snapshot.HeaderSize+2:], snapshot.MaxWidth+1)
	binary.LittleEndian.PutUint32(img[len(img)-4:], crc32.Checksum(img[:len(img)-4], crc32.MakeTable(crc32.Castagnoli)))
	if agree(t, e, img, 1, r, "1025-wide") {
		t.Fatal("a 1025-wide stage was accepted")
	}
}

// TestCEngineF32ToFx checks lake_snap_f32_to_fx (how the kernel reads a
// float answer from laked) against exact arithmetic on random, special
// and extreme binary32 values.
func TestCEngineF32ToFx(t *testing.T) {
	e := startC(t)
	r := rand.New(rand.NewPCG(18, 8))
	lim := new(big.Int).Lsh(big.NewInt(1), 62)
	special := []uint32{0, 0x80000000, 1, 0x80000001, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0xbf800000, 0x3f000000, 0xbf000000, 0x3ec00000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001}
	for i := 0; i < 4000; i++ {
		var bits uint32
		switch {
		case i < len(special):
			bits = special[i]
		case i%2 == 0:
			bits = math.Float32bits(float32(r.NormFloat64() * 2))
		default:
			bits = r.Uint32()
		}
		frac := uint32(r.IntN(63))
		if i < len(special) {
			frac = uint32(i % 12)
		}
		got := e.call(fmt.Sprintf("X %d %d", bits, frac))
		f := math.Float32frombits(bits)
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			if got != "x nan" {
				t.Fatalf("f32_to_fx(%#x) = %q, want x nan", bits, got)
			}
			continue
		}
		want := roundHalfAway(new(big.Rat).Mul(new(big.Rat).SetFloat64(float64(f)),
			new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(frac)))))
		if want.CmpAbs(lim) > 0 {
			want.Set(lim)
			if f < 0 {
				want.Neg(want)
			}
		}
		if got != "x "+want.String() {
			t.Fatalf("f32_to_fx(%g, frac %d) = %q, exact x %s", f, frac, got, want)
		}
	}
}
