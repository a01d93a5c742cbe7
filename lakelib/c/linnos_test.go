//go:build linux

package lakec

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/linnos"
)

var (
	linnosOnce sync.Once
	linnosBin  string
	linnosErr  error
	linnosOut  []byte
)

// linnosTestBinary compiles testdata/lake_linnos_test.c (which includes
// ../include/lake_linnos.h, the engine the kernel runs) once, with ASan
// and UBSan and without -fwrapv, so any signed overflow in the engine is
// an error: the engine must wrap in unsigned arithmetic like Go does.
func linnosTestBinary(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the C LinnOS engine tests (CI has gcc)")
	}
	linnosOnce.Do(func() {
		var dir string
		dir, linnosErr = os.MkdirTemp("", "lakec-linnos-")
		if linnosErr != nil {
			return
		}
		tempDirs = append(tempDirs, dir)
		bin := filepath.Join(dir, "lake_linnos_test")
		args := []string{"-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wconversion", "-Wno-sign-conversion",
			"-I", filepath.Join("..", "include"), "-o", bin, filepath.Join("testdata", "lake_linnos_test.c")}
		san := []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all"}
		linnosOut, linnosErr = exec.Command(cc, append(san, args...)...).CombinedOutput()
		if linnosErr != nil {
			linnosOut, linnosErr = exec.Command(cc, args...).CombinedOutput()
		}
		linnosBin = bin
	})
	if linnosErr != nil {
		t.Fatalf("compiling lake_linnos_test.c: %v\n%s", linnosErr, linnosOut)
	}
	return linnosBin
}

func runLinnosC(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := linnosTestBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// weightGen returns a weight for index k of a model.
type weightGen func(r *rand.Rand) int64

func typicalWeight(r *rand.Rand) int64 {
	if r.IntN(10) == 0 {
		return 0
	}
	return int64(r.IntN(4001) - 2000)
}

// extremeWeight mixes the int32 extremes (so products of hidden
// activations and weights overflow int64 and wrap), small values and zeros.
func extremeWeight(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return math.MaxInt32
	case 1:
		return math.MinInt32
	case 2:
		return 0
	case 3:
		return int64(int32(r.Uint32()))
	}
	return int64(r.IntN(2001) - 1000)
}

func extremeBias(r *rand.Rand) int64 {
	switch r.IntN(5) {
	case 0:
		return math.MaxInt64
	case 1:
		return math.MinInt64
	case 2:
		return int64(r.Uint64())
	}
	return r.Int64N(2_000_000) - 1_000_000
}

func makeIntModel(t *testing.T, extra int, seed uint64, wg weightGen, bg func(r *rand.Rand, layer int) int64) *linnos.IntModel {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1234))
	w := make([][]int64, extra+2)
	b := make([][]int64, extra+2)
	for i := range w {
		in, out := linnos.LayerDims(extra, i)
		w[i] = make([]int64, in*out)
		for k := range w[i] {
			w[i][k] = wg(r)
		}
		b[i] = make([]int64, out)
		for k := range b[i] {
			b[i][k] = bg(r, i)
		}
	}
	m, err := linnos.NewIntModel(extra, w, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func typicalBias(r *rand.Rand, layer int) int64 {
	return (r.Int64N(4001) - 2000) * linnos.BiasScale(layer) / 100
}

// testVectors returns n vectors: random digits, realistic feature digits
// (mostly leading zeros), all zeros, and adversarial int32 values.
func testVectors(n int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 5))
	v := make([]int32, n*linnos.NumInputs)
	for i := 0; i < n; i++ {
		f := v[i*linnos.NumInputs : (i+1)*linnos.NumInputs]
		switch i % 4 {
		case 0:
			for k := range f {
				f[k] = int32(r.IntN(10))
			}
		case 1:
			for k := range f {
				if r.IntN(3) == 0 {
					f[k] = int32(r.IntN(10))
				}
			}
		case 2:
			// all zeros: the biases alone
		case 3:
			for k := range f {
				switch r.IntN(4) {
				case 0:
					f[k] = math.MaxInt32
				case 1:
					f[k] = math.MinInt32
				case 2:
					f[k] = int32(r.Uint32())
				}
			}
		}
	}
	return v
}

func encodeVectors(v []int32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

// TestCLinnOSBitExact runs the C engine (lake_linnos.h, built with ASan
// and UBSan) on the image Go encodes and compares every output with
// linnos.IntModel.Logits: the base model and the +1/+2 variants, trained-
// like weights and adversarial ones (int32-extreme weights, int64-extreme
// biases, int32-extreme inputs) whose products overflow and wrap.
func TestCLinnOSBitExact(t *testing.T) {
	cases := []struct {
		name string
		wg   weightGen
		bg   func(*rand.Rand, int) int64
	}{
		{"typical", typicalWeight, typicalBias},
		{"extreme", extremeWeight, func(r *rand.Rand, _ int) int64 { return extremeBias(r) }},
	}
	vec := testVectors(400, 3)
	vpath := writeTemp(t, "vectors.bin", encodeVectors(vec))
	for _, c := range cases {
		for extra := 0; extra <= linnos.MaxExtra; extra++ {
			t.Run(fmt.Sprintf("%s/+%d", c.name, extra), func(t *testing.T) {
				m := makeIntModel(t, extra, uint64(extra*10+len(c.name)), c.wg, c.bg)
				img, err := linnos.EncodeInt(m, linnos.ModelMeta{ThresholdUs: 500})
				if err != nil {
					t.Fatal(err)
				}
				out := runLinnosC(t, "eval", writeTemp(t, "model.bin", img), vpath)
				n := len(vec) / linnos.NumInputs
				if len(out) != 16*n {
					t.Fatalf("C wrote %d bytes for %d vectors", len(out), n)
				}
				want := make([]int64, 2*n)
				if err := m.Logits(vec, want); err != nil {
					t.Fatal(err)
				}
				slow := 0
				for i := 0; i < 2*n; i++ {
					got := int64(binary.LittleEndian.Uint64(out[8*i:]))
					if got != want[i] {
						t.Fatalf("vector %d output %d: C %d, Go %d", i/2, i%2, got, want[i])
					}
					if i%2 == 1 && want[i-1] < want[i] {
						slow++
					}
				}
				// the test is only meaningful if both classes occur
				if slow == 0 || slow == n {
					t.Errorf("%d of %d vectors slow: the comparison covers one class only", slow, n)
				}
			})
		}
	}
}

// imageVerdict is what the C loader must answer for img: Go decodes it, it
// is the integer kind, and every weight fits in int32.
func imageVerdict(img []byte) bool {
	mf, err := linnos.DecodeModel(img)
	if err != nil || mf.Int == nil {
		return false
	}
	m := mf.Int
	for i := 0; i < m.Extra()+2; i++ {
		w, _ := m.Layer(i)
		for _, v := range w {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return false
			}
		}
	}
	return true
}

func setCRC(b []byte) []byte {
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32IEEE(b[:len(b)-4]))
	}
	return b
}

// TestCLinnOSImageValidation feeds the C loader valid images and corrupted
// ones (truncated, extended, bad magic, older and newer versions, float
// kind, unknown kind, extra layers, pending unit, CRC, weights outside
// int32 with the CRC fixed up) and checks each verdict against the Go
// decoder plus the range rule, and that every refusal says why.
func TestCLinnOSImageValidation(t *testing.T) {
	base := makeIntModel(t, 0, 1, typicalWeight, typicalBias)
	good, err := linnos.EncodeInt(base, linnos.ModelMeta{ThresholdUs: 300, Pending: linnos.PendingPages})
	if err != nil {
		t.Fatal(err)
	}
	plus1, _ := linnos.EncodeInt(makeIntModel(t, 1, 2, typicalWeight, typicalBias), linnos.ModelMeta{})
	fm, _ := linnos.NewFloatModel(0)
	float, err := linnos.EncodeFloat(fm, linnos.ModelMeta{})
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return setCRC(b) }
	}
	images := []struct {
		name string
		img  []byte
		why  string // part of the C reason when refused
	}{
		{"good", good, ""},
		{"plus1", plus1, ""},
		{"empty", nil, "shorter"},
		{"header-only", good[:24], "shorter"},
		{"truncated", good[:len(good)-1], "length"},
		{"extended", append(append([]byte(nil), good...), 0), "length"},
		{"bad-magic", mod(func(b []byte) []byte { b[0] = 'X'; return setCRC(b) }), "magic"},
		{"older-version", mod(func(b []byte) []byte { b[7]--; return setCRC(b) }), "version"},
		{"newer-version", mod(func(b []byte) []byte { b[7]++; return setCRC(b) }), "version"},
		{"float-kind", float, "float"},
		{"kind-7", mod(put32(8, 7)), "kind"},
		{"extra-3", mod(put32(12, 3)), "extra"},
		{"extra-1-in-base-length", mod(put32(12, 1)), "length"},
		{"unit-9", mod(put32(20, 9)), "pending unit"},
		{"crc", mod(func(b []byte) []byte { b[100] ^= 1; return b }), "CRC"},
		{"weight-int32-max+1", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[24+8*5:], math.MaxInt32+1)
			return setCRC(b)
		}), "int32"},
		{"last-weight-int64-min", mod(func(b []byte) []byte {
			off := len(b) - 4 - 8*2 - 8 // the last weight of the last layer
			binary.LittleEndian.PutUint64(b[off:], 1<<63)
			return setCRC(b)
		}), "int32"},
		{"weight-int32-min", mod(func(b []byte) []byte {
			v := int64(math.MinInt32)
			binary.LittleEndian.PutUint64(b[24:], uint64(v))
			return setCRC(b)
		}), ""},
		{"bias-int64-extremes", mod(func(b []byte) []byte {
			off := len(b) - 4 - 16
			binary.LittleEndian.PutUint64(b[off:], 1<<63)
			binary.LittleEndian.PutUint64(b[off+8:], math.MaxInt64)
			return setCRC(b)
		}), ""},
	}
	var list []byte
	for _, im := range images {
		list = binary.LittleEndian.AppendUint32(list, uint32(len(im.img)))
		list = append(list, im.img...)
	}
	out := strings.Split(strings.TrimSpace(string(runLinnosC(t, "check", writeTemp(t, "images.bin", list)))), "\n")
	if len(out) != len(images) {
		t.Fatalf("%d verdicts for %d images:\n%s", len(out), len(images), strings.Join(out, "\n"))
	}
	for i, im := range images {
		want := imageVerdict(im.img)
		got := strings.HasPrefix(out[i], "ok ")
		if got != want {
			t.Errorf("%s: C says %q, Go says accept=%v", im.name, out[i], want)
			continue
		}
		if (im.why == "") != want {
			t.Errorf("%s: the test table expects accept=%v, the verdict is %v", im.name, im.why == "", want)
		}
		if !got && !strings.Contains(out[i], im.why) {
			t.Errorf("%s: reason %q does not mention %q", im.name, out[i], im.why)
		}
	}
	if out[0] != "ok 0" || out[1] != "ok 1" {
		t.Errorf("layer counts: %q, %q", out[0], out[1])
	}
	if got := string(runLinnosC(t, "small", writeTemp(t, "good.bin", good))); !strings.Contains(got, "too small") {
		t.Errorf("a short model buffer: %q", got)
	}
}

// TestCLinnOSImageMutations runs a thousand random mutations of a valid
// +1 image through the C loader under ASan/UBSan (byte flips, truncation,
// extension, header fields, extreme weights, half with the CRC fixed up):
// no crash, no out-of-bounds read, and both verdicts occur.
func TestCLinnOSImageMutations(t *testing.T) {
	img, err := linnos.EncodeInt(makeIntModel(t, 1, 9, typicalWeight, typicalBias), linnos.ModelMeta{})
	if err != nil {
		t.Fatal(err)
	}
	n := 1000
	if testing.Short() {
		n = 300
	}
	out := string(runLinnosC(t, "mutate", writeTemp(t, "m.bin", img), fmt.Sprint(n), "7"))
	var acc, rej int
	if _, err := fmt.Sscanf(out, "ok mutate accepted=%d rejected=%d", &acc, &rej); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if acc+rej != n || acc == 0 || rej == 0 {
		t.Errorf("accepted %d, rejected %d of %d mutations: want both verdicts", acc, rej, n)
	}
}

// TestCLinnOSFeatures checks lake_linnos_features (what the kernel feeds
// the engine) against Go's linnos.Extractor for random, zero and
// out-of-range histories.
func TestCLinnOSFeatures(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	var in []byte
	var cases [][9]uint32
	for i := 0; i < 500; i++ {
		var c [9]uint32
		for k := range c {
			switch r.IntN(5) {
			case 0:
				c[k] = 0
			case 1:
				c[k] = r.Uint32() // beyond every clamp
			case 2:
				c[k] = uint32(r.IntN(20000))
			default:
				c[k] = uint32(r.IntN(1000))
			}
		}
		cases = append(cases, c)
		for _, v := range c {
			in = binary.LittleEndian.AppendUint32(in, v)
		}
	}
	out := runLinnosC(t, "features", writeTemp(t, "cases.bin", in))
	if len(out) != len(cases)*linnos.NumInputs*4 {
		t.Fatalf("C wrote %d bytes for %d cases", len(out), len(cases))
	}
	for i, c := range cases {
		want := goFeatures(c)
		for k := 0; k < linnos.NumInputs; k++ {
			got := int32(binary.LittleEndian.Uint32(out[(i*linnos.NumInputs+k)*4:]))
			if got != want[k] {
				t.Fatalf("case %d %v digit %d: C %d, Go %d\nGo %v", i, c, k, got, want[k], want)
			}
		}
	}
}

// goFeatures builds the digits Go's linnos.Extractor gives for case c
// (pending now, then 4 x (pending at arrival, latency), oldest first).
func goFeatures(c [9]uint32) []int32 {
	var e linnos.Extractor
	for k := 0; k < 4; k++ {
		e.Complete(int(c[1+2*k]), int(c[2+2*k]))
	}
	dst := make([]int32, linnos.NumInputs)
	e.Features(int(c[0]), dst)
	return dst
}

func crc32IEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// TestCLinnOSHistoryTTL checks the history time-to-live of lake_linnos.h
// (lake_linnos_hist_stale, lake_linnos_features_stale) against a Go
// reference of the rule and linnos.Extractor.Expire, which linnos/retrain
// uses to rebuild the kernel's vectors: random completion times around
// the TTL, no TTL, clocks read "before" a completion, and out-of-range
// values.
func TestCLinnOSHistoryTTL(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 2))
	type tcase struct {
		now, ttl uint64
		pending  uint32
		hp, hl   [4]uint32
		done     [4]uint64
	}
	var cases []tcase
	var in []byte
	le := binary.LittleEndian
	for i := 0; i < 2000; i++ {
		c := tcase{now: 1e9 + uint64(r.IntN(1e9)), ttl: uint64(r.IntN(3)) * uint64(r.IntN(1e8)), pending: uint32(r.IntN(2000))}
		if i%7 == 0 {
			c.now = uint64(r.IntN(1000)) // early: completions may look "after" now
		}
		at := c.now - min(c.now, uint64(r.IntN(3e8)))
		for k := 3; k >= 0; k-- { // newest last, each older than the next
			c.hp[k], c.hl[k] = uint32(r.IntN(1500)), uint32(r.IntN(20000))
			if r.IntN(9) == 0 {
				c.hl[k] = r.Uint32()
			}
			c.done[k] = at
			if r.IntN(4) == 0 && c.ttl > 0 {
				at -= min(at, c.ttl+uint64(r.IntN(10))-5) // straddle the TTL
			} else {
				at -= min(at, uint64(r.IntN(5e7)))
			}
		}
		cases = append(cases, c)
		in = le.AppendUint64(in, c.now)
		in = le.AppendUint64(in, c.ttl)
		in = le.AppendUint32(in, c.pending)
		for k := 0; k < 4; k++ {
			in = le.AppendUint32(in, c.hp[k])
			in = le.AppendUint32(in, c.hl[k])
			in = le.AppendUint64(in, c.done[k])
		}
	}
	out := runLinnosC(t, "ttl", writeTemp(t, "ttl.bin", in))
	const rec = 4 + linnos.NumInputs*4
	if len(out) != len(cases)*rec {
		t.Fatalf("C wrote %d bytes for %d cases", len(out), len(cases))
	}
	seen := map[uint32]int{}
	for i, c := range cases {
		want := 0 // the newest expired entry and all older are stale
		for k := 3; c.ttl > 0 && k >= 0; k-- {
			if c.now > c.done[k] && c.now-c.done[k] > c.ttl {
				want = k + 1
				break
			}
		}
		o := out[i*rec:]
		if got := le.Uint32(o); got != uint32(want) {
			t.Fatalf("case %d %+v: C stale %d, want %d", i, c, got, want)
		}
		seen[uint32(want)]++
		var e linnos.Extractor
		for k := 0; k < 4; k++ {
			e.Complete(int(c.hp[k]), int(c.hl[k]))
		}
		e.Expire(want)
		wx := make([]int32, linnos.NumInputs)
		e.Features(int(c.pending), wx)
		for k := 0; k < linnos.NumInputs; k++ {
			if got := int32(le.Uint32(o[4+4*k:])); got != wx[k] {
				t.Fatalf("case %d (stale %d) digit %d: C %d, Go %d", i, want, k, got, wx[k])
			}
		}
	}
	for s := uint32(0); s <= 4; s++ {
		if seen[s] == 0 {
			t.Errorf("no case with %d stale entries (cases by count: %v)", s, seen)
		}
	}
}
