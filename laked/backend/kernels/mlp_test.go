package kernels

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/lakeos/lake/vecmath"
)

// randomModel returns an MLP with input width in and the given layer
// widths and activations, weights uniform in [-1, 1).
func randomModel(seed uint64, in int, outs []int, acts []Activation) []Layer {
	r := rand.New(rand.NewPCG(seed, 1))
	layers := make([]Layer, len(outs))
	prev := in
	for i, o := range outs {
		l := Layer{Out: o, Act: acts[i], W: make([]float32, prev*o), B: make([]float32, o)}
		for j := range l.W {
			l.W[j] = r.Float32()*2 - 1
		}
		for j := range l.B {
			l.B[j] = r.Float32()*2 - 1
		}
		layers[i] = l
		prev = o
	}
	return layers
}

func randomInputs(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	x := make([]float32, n)
	for i := range x {
		x[i] = r.Float32()*4 - 2
	}
	return x
}

// naiveForward is the reference: float64 accumulation, one item at a
// time, straight from the Layer definitions.
func naiveForward(in int, layers []Layer, x []float32, n int) []float32 {
	var out []float32
	for it := 0; it < n; it++ {
		cur := make([]float64, in)
		for i := range cur {
			cur[i] = float64(x[it*in+i])
		}
		for _, l := range layers {
			next := make([]float64, l.Out)
			for o := range next {
				s := float64(l.B[o])
				for i, v := range cur {
					s += float64(l.W[o*len(cur)+i]) * v
				}
				switch l.Act {
				case ActReLU:
					s = math.Max(0, s)
				case ActTanh:
					s = math.Tanh(s)
				case ActSigmoid:
					s = 1 / (1 + math.Exp(-s))
				}
				next[o] = s
			}
			cur = next
		}
		for _, v := range cur {
			out = append(out, float32(v))
		}
	}
	return out
}

func closeEnough(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("len %d want %d", len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("out[%d] = %v want %v (diff %g)", i, got[i], want[i], d)
		}
	}
}

var allActs = []Activation{ActReLU, ActTanh, ActSigmoid, ActNone}

func TestForwardMatchesNaive(t *testing.T) {
	cases := []struct {
		in   int
		outs []int
		acts []Activation
	}{
		{31, []int{256, 2}, []Activation{ActReLU, ActNone}}, // LinnOS shape
		{5, []int{3}, []Activation{ActSigmoid}},
		{7, []int{9, 13, 4, 1}, allActs},
		{1, []int{1}, []Activation{ActNone}},
		{3, []int{StackWidth + 100, 2}, []Activation{ActTanh, ActNone}}, // pooled scratch
	}
	for ci, tc := range cases {
		layers := randomModel(uint64(ci), tc.in, tc.outs, tc.acts)
		blob, err := EncodeMLP(tc.in, layers)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseMLP(blob)
		if err != nil {
			t.Fatal(err)
		}
		if m.InDim() != tc.in || m.OutDim() != tc.outs[len(tc.outs)-1] || m.NumLayers() != len(tc.outs) {
			t.Fatalf("case %d: dims %d %d %d", ci, m.InDim(), m.OutDim(), m.NumLayers())
		}
		const n = 13
		x := randomInputs(uint64(ci), n*tc.in)
		out := make([]float32, n*m.OutDim()+1)
		out[len(out)-1] = 12345
		if err := m.Forward(x, out, n); err != nil {
			t.Fatal(err)
		}
		if out[len(out)-1] != 12345 {
			t.Errorf("case %d: Forward wrote past n items", ci)
		}
		closeEnough(t, out[:n*m.OutDim()], naiveForward(tc.in, layers, x, n))
	}
}

// An item's output must not depend on the batch it is in or its
// position there (lanes, lone-item path and idle lanes included).
func TestForwardBatchInvariant(t *testing.T) {
	layers := randomModel(8, 9, []int{17, 5, 3}, []Activation{ActReLU, ActTanh, ActSigmoid})
	blob, _ := EncodeMLP(9, layers)
	m, _ := ParseMLP(blob)
	const n = 11
	x := randomInputs(8, n*9)
	alone := make([]float32, n*3)
	for i := 0; i < n; i++ {
		if err := m.Forward(x[i*9:(i+1)*9], alone[i*3:(i+1)*3], 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, batch := range []int{2, 3, 4, 5, 7, 11} {
		out := make([]float32, n*3)
		for start := 0; start < n; start += batch {
			k := min(batch, n-start)
			if err := m.Forward(x[start*9:(start+k)*9], out[start*3:(start+k)*3], k); err != nil {
				t.Fatal(err)
			}
		}
		for i := range out {
			if math.Float32bits(out[i]) != math.Float32bits(alone[i]) {
				t.Fatalf("batch %d: output %d is %v, alone %v", batch, i, out[i], alone[i])
			}
		}
	}
}

func TestForwardArgErrors(t *testing.T) {
	blob, _ := EncodeMLP(4, randomModel(1, 4, []int{3, 2}, []Activation{ActReLU, ActNone}))
	m, err := ParseMLP(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(make([]float32, 8), make([]float32, 4), 2); err != nil {
		t.Errorf("exact sizes: %v", err)
	}
	if err := m.Forward(make([]float32, 7), make([]float32, 4), 2); err == nil {
		t.Error("short input accepted")
	}
	if err := m.Forward(make([]float32, 8), make([]float32, 3), 2); err == nil {
		t.Error("short output accepted")
	}
	if err := m.Forward(nil, nil, -1); err == nil {
		t.Error("negative n accepted")
	}
	if err := m.Forward(nil, nil, 0); err != nil {
		t.Errorf("n=0: %v", err)
	}
}

func TestForwardAllocationFree(t *testing.T) {
	layers := randomModel(3, 31, []int{256, 2}, []Activation{ActReLU, ActNone})
	blob, _ := EncodeMLP(31, layers)
	m, _ := ParseMLP(blob)
	x := randomInputs(3, 31*8)
	out := make([]float32, 2*8)
	allocs := testing.AllocsPerRun(20, func() {
		if err := m.Forward(x, out, 8); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Forward allocates %v times per call", allocs)
	}
}

func TestForwardConcurrent(t *testing.T) {
	layers := randomModel(4, 10, []int{20, 3}, []Activation{ActTanh, ActSigmoid})
	blob, _ := EncodeMLP(10, layers)
	m, _ := ParseMLP(blob)
	x := randomInputs(4, 10*5)
	want := make([]float32, 15)
	if err := m.Forward(x, want, 5); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]float32, 15)
			for i := 0; i < 50; i++ {
				if err := m.Forward(x, out, 5); err != nil {
					t.Error(err)
					return
				}
				for j := range out {
					if out[j] != want[j] {
						t.Errorf("nondeterministic output %d: %v vs %v", j, out[j], want[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestParseMLPErrors(t *testing.T) {
	good, err := EncodeMLP(3, randomModel(5, 3, []int{4, 2}, []Activation{ActReLU, ActSigmoid}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseMLP(good); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	put := func(off int, v uint32) []byte {
		return mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b })
	}
	firstW := headerLen + 8*2
	cases := map[string][]byte{
		"empty":             nil,
		"short header":      good[:10],
		"bad magic":         put(0, 0x12345678),
		"bad version":       put(4, 2),
		"zero layers":       put(8, 0),
		"too many layers":   put(8, MaxLayers+1),
		"zero input":        put(12, 0),
		"input too wide":    put(12, MaxWidth+1),
		"zero width layer":  put(16, 0),
		"bad activation":    put(20, 4),
		"truncated table":   good[:headerLen+4],
		"truncated weights": good[:len(good)-4],
		"trailing bytes":    append(append([]byte(nil), good...), 0, 0, 0, 0),
		"NaN weight":        put(firstW, math.Float32bits(float32(math.NaN()))),
		"Inf bias":          put(firstW+4*12, math.Float32bits(float32(math.Inf(1)))),
		"wider than stated": put(24, 3), // layer 1 out 2 -> 3: length mismatch
		"too many params": mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], MaxWidth)
			binary.LittleEndian.PutUint32(b[16:], MaxWidth)
			return b
		}),
	}
	for name, blob := range cases {
		if _, err := ParseMLP(blob); !errors.Is(err, ErrInvalidModel) {
			t.Errorf("%s: got %v, want ErrInvalidModel", name, err)
		}
	}
}

func TestEncodeMLPErrors(t *testing.T) {
	ok := randomModel(6, 2, []int{2}, []Activation{ActNone})
	bad := map[string]func() ([]byte, error){
		"no layers":    func() ([]byte, error) { return EncodeMLP(2, nil) },
		"zero input":   func() ([]byte, error) { return EncodeMLP(0, ok) },
		"weight count": func() ([]byte, error) { return EncodeMLP(3, ok) },
		"bad act":      func() ([]byte, error) { return EncodeMLP(2, []Layer{{Out: 2, Act: 9, W: ok[0].W, B: ok[0].B}}) },
		"bias count":   func() ([]byte, error) { return EncodeMLP(2, []Layer{{Out: 2, W: ok[0].W, B: ok[0].B[:1]}}) },
		"NaN": func() ([]byte, error) {
			return EncodeMLP(2, []Layer{{Out: 2, W: []float32{1, 2, float32(math.NaN()), 4}, B: ok[0].B}})
		},
		"width too big": func() ([]byte, error) { return EncodeMLP(2, []Layer{{Out: MaxWidth + 1}}) },
	}
	for name, f := range bad {
		if _, err := f(); !errors.Is(err, ErrInvalidModel) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if ActSigmoid.String() != "sigmoid" || Activation(7).String() != "activation(7)" {
		t.Error("Activation.String")
	}
}

// reencode rebuilds a blob from a parsed model.
func reencode(m *MLP) ([]byte, error) {
	layers := make([]Layer, len(m.layers))
	for i, l := range m.layers {
		layers[i] = Layer{Out: l.out, Act: l.act, W: l.w, B: l.b}
	}
	return EncodeMLP(m.in, layers)
}

func FuzzParseMLP(f *testing.F) {
	for _, s := range [][]byte{nil, []byte(MLPMagic)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		m, err := ParseMLP(blob)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) {
				t.Fatalf("error %v does not wrap ErrInvalidModel", err)
			}
			return
		}
		// A valid blob is canonical: re-encoding gives the same bytes.
		again, err := reencode(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if string(again) != string(blob) {
			t.Fatal("re-encoded blob differs")
		}
		if m.NumParams() > 1<<16 {
			return // keep each fuzz iteration cheap
		}
		in := make([]float32, 2*m.InDim())
		out := make([]float32, 2*m.OutDim())
		if err := m.Forward(in, out, 2); err != nil {
			t.Fatalf("forward on a valid model: %v", err)
		}
	})
}

// sameBits reports whether a and b are bit-identical, counting any NaN
// equal to any NaN (Go leaves NaN payloads unspecified).
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

// checkVecMatchesLanes runs a parsed model at every vecmath level (per item
// on MulAddColsF32, groups on MulAddLanesF32) and wants the bits of the
// same blob's in-place model at the scalar level (the four-item lane path).
func checkVecMatchesLanes(t testing.TB, blob []byte, x []float32, n int) {
	t.Helper()
	m, err := ParseMLP(blob)
	if err != nil {
		t.Fatal(err)
	}
	in, specs, _, err := layout(blob)
	if err != nil {
		t.Fatal(err)
	}
	tbl := headerLen + 8*len(specs)
	floats := make([]float32, (len(blob)-tbl)/4)
	for i := range floats {
		floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(blob[tbl+4*i:]))
	}
	ref, err := build(in, specs, floats, false)
	if err != nil {
		t.Fatal(err)
	}
	if !m.vec || ref.vec {
		t.Fatalf("paths: parsed vec=%v, in-place vec=%v", m.vec, ref.vec)
	}
	want := make([]float32, n*m.OutDim())
	prev, _ := vecmath.SetLevel(vecmath.Scalar) // the four-item lane path
	if err := ref.Forward(x, want, n); err != nil {
		t.Fatal(err)
	}
	vecmath.SetLevel(prev)
	defer vecmath.SetLevel(vecmath.Detected())
	for _, l := range vecmath.Supported() {
		if _, err := vecmath.SetLevel(l); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, n*m.OutDim())
		if err := m.Forward(x, got, n); err != nil {
			t.Fatal(err)
		}
		if !sameBits(got, want) {
			t.Fatalf("level %v: vector path %v, lane path %v", l, got, want)
		}
	}
}

// TestForwardVecMatchesLanes covers shapes around the vector widths, every
// activation, extreme weights (±0, subnormals, huge) and inputs with NaN
// and infinities.
func TestForwardVecMatchesLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	special := []float32{0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32, 1e-30}
	for it := 0; it < 60; it++ {
		widths := []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 256}
		in := widths[r.IntN(len(widths))]
		var outs []int
		var acts []Activation
		for range 1 + r.IntN(3) {
			outs = append(outs, widths[r.IntN(len(widths))])
			acts = append(acts, Activation(r.IntN(4)))
		}
		layers := randomModel(uint64(it), in, outs, acts)
		for _, l := range layers {
			for j := range l.W {
				if r.IntN(10) == 0 {
					l.W[j] = special[r.IntN(len(special))]
				}
			}
		}
		blob, err := EncodeMLP(in, layers)
		if err != nil {
			t.Fatal(err)
		}
		n := 1 + r.IntN(40) // one item, lane groups and a tail
		x := randomInputs(uint64(it), n*in)
		for j := range x {
			switch r.IntN(30) {
			case 0:
				x[j] = float32(math.NaN())
			case 1:
				x[j] = float32(math.Inf(1 - 2*r.IntN(2)))
			case 2:
				x[j] = special[r.IntN(len(special))]
			}
		}
		checkVecMatchesLanes(t, blob, x, n)
	}
}

// FuzzForwardVec runs a small model built from the fuzz input (weights and
// inputs as raw float32 bits) through both paths.
func FuzzForwardVec(f *testing.F) {
	f.Add([]byte{3, 17, 2, 0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f})
	f.Add([]byte{16, 16, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		in, out, n := 1+int(data[0])%40, 1+int(data[1])%40, 1+int(data[2])%5
		rest := data[3:]
		next := func() float32 {
			if len(rest) < 4 {
				return 0.5
			}
			v := math.Float32frombits(binary.LittleEndian.Uint32(rest))
			rest = rest[4:]
			return v
		}
		l := Layer{Out: out, Act: Activation(data[0] % 4), W: make([]float32, in*out), B: make([]float32, out)}
		for i := range l.W {
			if l.W[i] = next(); l.W[i] != l.W[i] || math.IsInf(float64(l.W[i]), 0) {
				l.W[i] = 1
			}
		}
		x := make([]float32, n*in)
		for i := range x {
			x[i] = next()
		}
		blob, err := EncodeMLP(in, []Layer{l})
		if err != nil {
			t.Fatal(err)
		}
		checkVecMatchesLanes(t, blob, x, n)
	})
}
