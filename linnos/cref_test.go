package linnos

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// randomIntModel returns a model with weights spread like a trained, quantized
// LinnOS model (some zeros so the reference's zero checks are exercised).
func randomIntModel(tb testing.TB, extra int, seed uint64) *IntModel {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	w := make([][]int64, extra+2)
	b := make([][]int64, extra+2)
	for i := range w {
		in, out := LayerDims(extra, i)
		w[i] = make([]int64, in*out)
		for k := range w[i] {
			if r.IntN(10) == 0 {
				continue
			}
			w[i][k] = int64(r.IntN(4001) - 2000)
		}
		b[i] = make([]int64, out)
		s := BiasScale(i)
		for k := range b[i] {
			b[i][k] = (r.Int64N(4001) - 2000) * s / 100
		}
	}
	m, err := NewIntModel(extra, w, b)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// randomVectors returns n feature vectors: half uniformly random digits, half
// produced by an Extractor from random pending counts and latencies.
func randomVectors(n int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]int32, n*NumInputs)
	var e Extractor
	for i := 0; i < n; i++ {
		f := v[i*NumInputs : (i+1)*NumInputs]
		if i%2 == 0 {
			for k := range f {
				f[k] = int32(r.IntN(10))
			}
			continue
		}
		p := 1 + int(r.ExpFloat64()*8)
		e.Features(p, f)
		e.Complete(p, int(r.ExpFloat64()*300))
	}
	return v
}

func needGCC(tb testing.TB) string {
	tb.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		tb.Skip("gcc not found: the C reference comparison needs gcc")
	}
	return gcc
}

// buildCRef compiles cref/linnos_ref.c with m's weights into a temp dir.
func buildCRef(tb testing.TB, m *IntModel) string {
	tb.Helper()
	return buildCRefIn(tb, m, tb.TempDir(), "-O2")
}

// buildCRefIn compiles cref/linnos_ref.c with m's weights (weights.h) into dir
// with gcc, the given optimisation flags and -fwrapv, and returns the
// binary's path.
func buildCRefIn(tb testing.TB, m *IntModel, dir string, opt ...string) string {
	tb.Helper()
	gcc := needGCC(tb)
	var hdr bytes.Buffer
	if err := WriteHeader(&hdr, m, ""); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "weights.h"), hdr.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "linnos_ref")
	src, err := filepath.Abs(filepath.Join("cref", "linnos_ref.c"))
	if err != nil {
		tb.Fatal(err)
	}
	args := append(append([]string(nil), opt...), "-fwrapv", fmt.Sprintf("-DN_EXTRA=%d", m.Extra()), "-I", dir, "-o", bin, src)
	cmd := exec.Command(gcc, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

func vectorInput(v []int32) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n", len(v)/NumInputs)
	for i, x := range v {
		b.WriteString(strconv.Itoa(int(x)))
		if (i+1)%NumInputs == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()
}

func runCRefEval(tb testing.TB, bin string, v []int32) []int64 {
	tb.Helper()
	cmd := exec.Command(bin, "eval")
	cmd.Stdin = bytes.NewReader(vectorInput(v))
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("run C reference: %v", err)
	}
	var res []int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			x, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				tb.Fatalf("C output %q: %v", sc.Text(), err)
			}
			res = append(res, x)
		}
	}
	return res
}

// TestBitExactWithCReference compiles the reference C integer inference and
// checks that Go produces the same int64 outputs and decisions on thousands
// of vectors, for the base model and the +1/+2 variants.
func TestBitExactWithCReference(t *testing.T) {
	for extra := 0; extra <= MaxExtra; extra++ {
		t.Run(fmt.Sprintf("extra%d", extra), func(t *testing.T) {
			t.Parallel()
			m := randomIntModel(t, extra, uint64(extra+1))
			bin := buildCRef(t, m)
			n := 4000
			if extra > 0 {
				n = 400 // same code path; the 256×256 layers make these slow under -race
			}
			v := randomVectors(n, uint64(extra+10))
			want := runCRefEval(t, bin, v)
			if len(want) != 2*n {
				t.Fatalf("C reference printed %d values, want %d", len(want), 2*n)
			}
			got := make([]int64, 2*n)
			if err := m.Logits(v, got); err != nil {
				t.Fatal(err)
			}
			classes := make([]int32, n)
			if err := m.PredictBatch(v, classes); err != nil {
				t.Fatal(err)
			}
			slow := 0
			for i := 0; i < n; i++ {
				if got[2*i] != want[2*i] || got[2*i+1] != want[2*i+1] {
					t.Fatalf("vector %d: Go %d %d, C %d %d", i, got[2*i], got[2*i+1], want[2*i], want[2*i+1])
				}
				wantClass := int32(0)
				if want[2*i] < want[2*i+1] {
					wantClass = 1
				}
				if classes[i] != wantClass {
					t.Fatalf("vector %d: class %d, C says %d", i, classes[i], wantClass)
				}
				slow += int(classes[i])
			}
			if slow == 0 || slow == n {
				t.Fatalf("degenerate test model: %d of %d slow", slow, n)
			}
		})
	}
}
