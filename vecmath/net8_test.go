package vecmath

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomNet8 returns a valid network of 1-4 layers; with small every
// layer is at most 64 wide (the fused kernel's shapes).
func randomNet8(t testing.TB, r *rand.Rand, small bool) (*Net8, int) {
	t.Helper()
	widths := []int{1, 2, 5, 15, 16, 17, 30, 32, 33, 64}
	if !small {
		widths = append(widths, 65, 100)
	}
	in0 := widths[r.IntN(len(widths))]
	in := in0
	var layers []Net8Layer
	for range 1 + r.IntN(4) {
		out := widths[r.IntN(len(widths))]
		pad := (out + 15) &^ 15
		l := Net8Layer{In: in, Out: out, W: make([]int32, (in+1)/2*pad),
			Acc0: make([]int32, pad), Mult: make([]int32, pad), Left: make([]int32, pad), Right: make([]int32, pad)}
		for o := 0; o < out; o++ {
			for p := 0; p < (in+1)/2; p++ {
				var hi int16
				if 2*p+1 < in {
					hi = int16(r.IntN(256) - 128)
				}
				l.W[p*pad+o] = PackPairs16(int16(r.IntN(256)-128), hi)
			}
			l.Acc0[o] = int32(r.IntN(1<<24)) - 1<<23
			if r.IntN(10) == 0 {
				l.Acc0[o] = i32(r)
			}
			l.Mult[o] = 1<<30 + int32(r.IntN(1<<30))
			if r.IntN(10) == 0 {
				l.Mult[o] = i32(r)
			}
			l.Left[o], l.Right[o] = shift(r), shift(r)
		}
		if r.IntN(3) == 0 { // no left shifts: the kernel skips them
			for o := range l.Left {
				l.Left[o] = -int32(r.IntN(2))
			}
		}
		l.Zero, l.Lo, l.Hi = int32(r.IntN(256)-128), -128, 127
		switch r.IntN(3) {
		case 0:
			l.Zero, l.Lo, l.Hi = int32(r.IntN(1024)-512), -512, 511
			l.LUT, l.LUTBase = make([]int32, 1024), -512
			for i := range l.LUT {
				l.LUT[i] = int32(r.IntN(256) - 128)
			}
		case 1:
			l.Lo = max(l.Lo, l.Zero) // ReLU
		}
		layers = append(layers, l)
		in = out
	}
	n, err := NewNet8(layers)
	if err != nil {
		t.Fatal(err)
	}
	return n, in0
}

// checkNet8 wants Run at every level to equal the layer-by-layer scalar
// run, and Query (at AVX-512 levels, on a fused network) to equal it on
// the input clamped to [-100, 120].
func checkNet8(t testing.TB, n *Net8, input []int32) {
	t.Helper()
	checkNet8Run(t, n, input)
	const lo, hi = -100, 120
	clamped := make([]int32, len(input))
	for i, v := range input {
		clamped[i] = min(max(v, lo), hi)
	}
	want := make([]int32, n.Width())
	copy(want, clamped)
	prev, _ := SetLevel(Scalar)
	for i := range n.layers {
		n.RunLayer(i, want, make([]int32, n.Width()/2), make([]int32, n.Width()))
	}
	SetLevel(prev)
	out := n.layers[len(n.layers)-1].Out
	forEachLevel(t, func(l Level) {
		got := make([]int32, out)
		ok := n.Query(input, got, lo, hi)
		if ok != (n.fused && l >= AVX512) {
			t.Fatalf("Query at %v (fused %v) ran: %v", l, n.fused, ok)
		}
		if ok && !slices.Equal(got, want[:out]) {
			t.Fatalf("Query at %v: %v, layer by layer on the clamped input %v", l, got, want[:out])
		}
	})
}

func checkNet8Run(t testing.TB, n *Net8, input []int32) {
	t.Helper()
	w := n.Width()
	ref := make([]int32, w)
	copy(ref, input)
	prev, _ := SetLevel(Scalar)
	for i := range n.layers {
		n.RunLayer(i, ref, make([]int32, w/2), make([]int32, w))
	}
	SetLevel(prev)
	out := n.layers[len(n.layers)-1].Out
	forEachLevel(t, func(l Level) {
		act := make([]int32, w)
		for i := range act {
			act[i] = -7 // garbage beyond the input must not matter
		}
		copy(act, input)
		n.Run(act, make([]int32, w/2), make([]int32, w))
		if !slices.Equal(act[:out], ref[:out]) {
			t.Fatalf("Net8 at %v (fused %v): %v, layer by layer %v", l, n.fused, act[:out], ref[:out])
		}
	})
}

func TestNet8MatchesLayers(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	fused := 0
	for it := range 300 {
		n, in := randomNet8(t, r, it%4 != 0)
		if n.fused {
			fused++
		}
		x := make([]int32, in)
		for i := range x {
			x[i] = int32(r.IntN(384) - 128)
		}
		t.Run(fmt.Sprint(it), func(t *testing.T) { checkNet8(t, n, x) })
	}
	if fused == 0 {
		t.Fatal("no network took the fused kernel")
	}
}

func TestNet8Rejects(t *testing.T) {
	if _, err := NewNet8(nil); err == nil {
		t.Error("empty network accepted")
	}
	l := Net8Layer{In: 3, Out: 2, W: make([]int32, 2*16), Acc0: make([]int32, 16), Mult: make([]int32, 16), Left: make([]int32, 16), Right: make([]int32, 16), Lo: -128, Hi: 127}
	if _, err := NewNet8([]Net8Layer{l}); err != nil {
		t.Fatalf("valid layer: %v", err)
	}
	bad := l
	bad.W = bad.W[:31]
	if _, err := NewNet8([]Net8Layer{bad}); err == nil {
		t.Error("short weights accepted")
	}
	bad = l
	bad.LUT, bad.LUTBase = make([]int32, 100), -128
	if _, err := NewNet8([]Net8Layer{bad}); err == nil {
		t.Error("table not covering [Lo, Hi] accepted")
	}
	two := []Net8Layer{l, l}
	if _, err := NewNet8(two); err == nil {
		t.Error("mismatched layer widths accepted")
	}
}

func FuzzNet8(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(7), uint64(0))
	f.Fuzz(func(t *testing.T, seed, xs uint64) {
		r := rand.New(rand.NewPCG(seed, xs))
		n, in := randomNet8(t, r, true)
		x := make([]int32, in)
		for i := range x {
			x[i] = int32(r.IntN(65536) - 32768)
		}
		checkNet8(t, n, x)
	})
}

// net8Ref runs n layer by layer at the scalar level on x clamped to
// [lo, hi] and returns the output.
func net8Ref(n *Net8, x []int32, lo, hi int32) []int32 {
	act := make([]int32, n.Width())
	for i, v := range x {
		act[i] = min(max(v, lo), hi)
	}
	prev, _ := SetLevel(Scalar)
	defer SetLevel(prev)
	for i := range n.layers {
		n.RunLayer(i, act, make([]int32, n.Width()/2), make([]int32, n.Width()))
	}
	return act[:n.layers[len(n.layers)-1].Out]
}

// checkNet8Batch wants RunBatch at every vector level to give every item
// what the scalar layer-by-layer run gives it, and to run nothing at the
// scalar level.
func checkNet8Batch(t testing.TB, n *Net8, in []int32, items int, lo, hi int32) {
	t.Helper()
	nIn, nOut := n.layers[0].In, n.layers[len(n.layers)-1].Out
	want := make([]int32, items*nOut)
	for i := range items {
		copy(want[i*nOut:], net8Ref(n, in[i*nIn:(i+1)*nIn], lo, hi))
	}
	forEachLevel(t, func(l Level) {
		out := make([]int32, items*nOut)
		for i := range out {
			out[i] = -99999
		}
		scratch := make([]int32, n.BatchScratch())
		for i := range scratch {
			scratch[i] = 1 << 30 // stale lanes must not matter
		}
		ok := n.RunBatch(in, out, items, lo, hi, scratch)
		if ok != (l >= AVX2) || BatchLanes() == 0 == ok {
			t.Fatalf("RunBatch at %v ran: %v (lanes %d)", l, ok, BatchLanes())
		}
		if !ok {
			return
		}
		for i := range items {
			if g, w := out[i*nOut:(i+1)*nOut], want[i*nOut:(i+1)*nOut]; !slices.Equal(g, w) {
				t.Fatalf("RunBatch at %v, item %d of %d: %v, scalar %v", l, i, items, g, w)
			}
		}
	})
}

func TestNet8BatchMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for it := range 200 {
		n, in := randomNet8(t, r, it%3 != 0)
		items := []int{0, 1, 7, 8, 9, 16, 17, 33, 64}[r.IntN(9)]
		x := make([]int32, items*in)
		for i := range x {
			x[i] = int32(r.IntN(1024) - 512)
			if r.IntN(20) == 0 {
				x[i] = i32(r)
			}
		}
		lo, hi := int32(-128), int32(127)
		if r.IntN(3) == 0 {
			lo, hi = 0, 255
		}
		t.Run(fmt.Sprint(it), func(t *testing.T) { checkNet8Batch(t, n, x, items, lo, hi) })
	}
}

func FuzzNet8Batch(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(17))
	f.Add(uint64(9), uint64(4), uint8(1))
	f.Fuzz(func(t *testing.T, seed, xs uint64, items uint8) {
		r := rand.New(rand.NewPCG(seed, xs))
		n, in := randomNet8(t, r, r.IntN(2) == 0)
		x := make([]int32, int(items)*in)
		for i := range x {
			x[i] = i32(r)
		}
		lo := int32(r.IntN(65536) - 32768)
		hi := lo + int32(r.IntN(int(32768-lo)))
		checkNet8Batch(t, n, x, int(items), lo, hi)
	})
}
