package cuda

import (
	"regexp"
	"strings"
	"testing"

	"github.com/lakeos/lake/linnos"
)

// TestBuiltinsMatchPTX holds the signatures in builtin.go to the
// committed PTX: every built-in kernel is an entry with as many u64
// parameters as its signature, and every entry has a signature.
func TestBuiltinsMatchPTX(t *testing.T) {
	ptx := string(BuiltinPTX)
	if !strings.Contains(ptx, ".target sm_80") || !strings.Contains(ptx, ".address_size 64") {
		t.Fatal("lake.ptx is not 64-bit sm_80 PTX")
	}
	entry := regexp.MustCompile(`(?s)\.visible \.entry (\w+)\((.*?)\)`)
	found := map[string]bool{}
	for _, m := range entry.FindAllStringSubmatch(ptx, -1) {
		name := m[1]
		found[name] = true
		k, ok := Builtins[name]
		if !ok {
			t.Errorf("PTX entry %s has no signature", name)
			continue
		}
		params := regexp.MustCompile(`\.param \.(\w+) `).FindAllStringSubmatch(m[2], -1)
		if len(params) != len(k.Sig) {
			t.Errorf("%s: %d PTX parameters, signature has %d", name, len(params), len(k.Sig))
		}
		for i, p := range params {
			if p[1] != "u64" {
				t.Errorf("%s: parameter %d is .%s, want .u64", name, i, p[1])
			}
		}
	}
	for name := range Builtins {
		if !found[name] {
			t.Errorf("signature for %s, which lake.ptx lacks", name)
		}
	}
}

func TestLinnOSParamsLayout(t *testing.T) {
	for extra := 0; extra <= linnos.MaxExtra; extra++ {
		f, err := linnos.NewFloatModel(extra)
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.W {
			for k := range f.W[i] {
				f.W[i][k] = float32(k%7) * 0.001
			}
			for k := range f.B[i] {
				f.B[i][k] = float32(k % 3)
			}
		}
		q, err := linnos.Quantize(f)
		if err != nil {
			t.Fatal(err)
		}
		pi, pf := LinnOSParamsInt(q), LinnOSParamsFloat(f)
		if uint64(len(pi)) != linnosParams(extra) || uint64(len(pf)) != linnosParams(extra) {
			t.Fatalf("extra %d: %d/%d params, kernels read %d", extra, len(pi), len(pf), linnosParams(extra))
		}
		k := Builtins[[]string{"lake_linnos_int0", "lake_linnos_int1", "lake_linnos_int2"}[extra]]
		if k.Sig[0].Fixed != 8*uint64(len(pi)) {
			t.Fatalf("extra %d: signature reads %d bytes of params, model has %d", extra, k.Sig[0].Fixed, 8*len(pi))
		}
		// Last layer's bias comes last.
		_, b := q.Layer(extra + 1)
		if pi[len(pi)-1] != b[1] || pi[len(pi)-2] != b[0] {
			t.Fatal("last bias not at the end")
		}
	}
}
