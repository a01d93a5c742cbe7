package snapshot_test

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current engine")

// goldenCases are small models covering every activation, both
// granularities and both activation types. Their files in testdata/golden
// are the conformance vectors for other engines (the C kernel engine):
// NAME.lksn is the snapshot, NAME.txt has one line per case,
// "q_in... | q_out..." in the integer domains.
var goldenCases = []struct {
	name  string
	sizes []int
	acts  []model.Activation
	pc    bool
	dt    snapshot.DType
}{
	{"relu_int8_tensor", []int{6, 8, 3}, []model.Activation{model.ReLU, model.Identity}, false, snapshot.Int8},
	{"tanh_int8_channel", []int{6, 8, 4, 2}, []model.Activation{model.Tanh, model.Tanh, model.Identity}, true, snapshot.Int8},
	{"sigmoid_uint8_channel", []int{5, 7, 1}, []model.Activation{model.Sigmoid, model.Identity}, true, snapshot.Uint8},
	{"mixed_uint8_tensor", []int{4, 9, 5, 3}, []model.Activation{model.ReLU, model.Sigmoid, model.Tanh}, false, snapshot.Uint8},
}

func goldenSnapshot(t *testing.T, i int) *snapshot.Snapshot {
	c := goldenCases[i]
	m, err := model.NewMLP(c.sizes, c.acts, uint64(100+i))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(uint64(i), 5))
	for li := range m.Layers { // non-zero biases exercise the bias path
		for o := range m.Layers[li].B {
			m.Layers[li].B[o] = float32(r.NormFloat64() * 0.3)
		}
	}
	calib := make([][]float32, 128)
	for k := range calib {
		calib[k] = make([]float32, c.sizes[0])
		for j := range calib[k] {
			calib[k][j] = float32(r.NormFloat64() * 1.5)
		}
	}
	s, err := quant.Quantize(m, calib, quant.Options{PerChannel: c.pc, DType: c.dt, Generation: uint64(i + 1)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGoldenVectors(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	for i, c := range goldenCases {
		snapPath, vecPath := filepath.Join(dir, c.name+".lksn"), filepath.Join(dir, c.name+".txt")
		if *update {
			s := goldenSnapshot(t, i)
			b, err := snapshot.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := s.DType.Range()
			r := rand.New(rand.NewPCG(uint64(i), 6))
			var sb strings.Builder
			in, out := make([]int32, s.InputDim()), make([]int32, s.OutputDim())
			for k := 0; k < 64; k++ {
				for j := range in {
					in[j] = lo + int32(r.IntN(int(hi-lo+1)))
				}
				if k == 0 {
					for j := range in {
						in[j] = lo
					}
				} else if k == 1 {
					for j := range in {
						in[j] = hi
					}
				}
				if err := s.RunQuantized(in, out); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&sb, "%s | %s\n", ints(in), ints(out))
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(snapPath, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(vecPath, []byte(sb.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(snapPath)
		if err != nil {
			t.Fatalf("%s: %v (run go test -run Golden -update)", c.name, err)
		}
		s, err := snapshot.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f, err := os.Open(vecPath)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			parts := strings.Split(sc.Text(), "|")
			if len(parts) != 2 {
				t.Fatalf("%s: bad line %q", c.name, sc.Text())
			}
			in, want := parse(t, parts[0]), parse(t, parts[1])
			got := make([]int32, s.OutputDim())
			if err := s.RunQuantized(in, got); err != nil {
				t.Fatal(err)
			}
			if ints(got) != ints(want) {
				t.Fatalf("%s line %d: engine %v, golden %v", c.name, n+1, got, want)
			}
			n++
		}
		f.Close()
		if n != 64 {
			t.Fatalf("%s: %d vectors", c.name, n)
		}
	}
}

func ints(v []int32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, " ")
}

func parse(t *testing.T, s string) []int32 {
	var out []int32
	for _, f := range strings.Fields(s) {
		v, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("bad integer %q", f)
		}
		out = append(out, int32(v))
	}
	return out
}
