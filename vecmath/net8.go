package vecmath

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// Net8Layer is one dense layer of a small int8 network (a LiteFlow
// snapshot layer in vecmath's form). With pad = 16·ceil(Out/16):
//
//	acc[o] = Acc0[o] + DotPairs16 of column o of W with the layer's input
//	         packed as int16 pairs (inputs must fit int16)
//	q[o]   = Requant(acc[o], Mult[o], Left[o], Right[o], Zero, Lo, Hi)
//	out[o] = LUT[q[o]-LUTBase] when LUT is set, else q[o]
type Net8Layer struct {
	In, Out                 int
	W                       []int32 // (In+1)/2 rows of pad pairs
	Acc0, Mult, Left, Right []int32 // pad entries each
	LUT                     []int32 // nil, or indexed by q - LUTBase for q in [Lo, Hi]
	LUTBase                 int32
	Zero, Lo, Hi            int32
}

// net8Desc is a layer as net8AVX512 reads it: eight-byte fields at the
// offsets asmgen.go's net8 and net8Lanes use (0 W ... 96 lutBase, 104
// noLeft, 112 out; 120 bytes).
type net8Desc struct {
	w, acc0, mult, left, right, lut *int32
	pairs, blocks, inBlocks         int
	zero, clo, chi, lutBase         int64
	noLeft                          int64 // 1: every Left <= 0 (no left shift)
	out                             int64 // Out
}

// net8MaxWidth bounds the layers the fused kernel takes (four blocks of
// accumulators in registers).
const net8MaxWidth = 64

// Net8 is a validated small int8 network. It is immutable and safe for
// concurrent use.
type Net8 struct {
	layers []Net8Layer
	desc   []net8Desc
	fused  bool   // every layer fits net8AVX512
	width  int    // act entries Run needs
	inMask uint64 // the lanes of the first layer's last input block
	rows   int    // activation rows RunBatch needs: max(2·pairs, Out) over the layers
	pairs  int    // pair rows RunBatch needs: max pairs
}

// NewNet8 checks the layers' shapes (the slices are kept, not copied).
func NewNet8(layers []Net8Layer) (*Net8, error) {
	if len(layers) == 0 {
		return nil, errors.New("vecmath.NewNet8: no layers")
	}
	n := &Net8{layers: layers, fused: true}
	for i, l := range layers {
		pad := (l.Out + 15) &^ 15
		if l.In < 1 || l.Out < 1 || (i > 0 && l.In != layers[i-1].Out) {
			return nil, fmt.Errorf("vecmath.NewNet8: layer %d shape %dx%d", i, l.In, l.Out)
		}
		if len(l.W) != (l.In+1)/2*pad || len(l.Acc0) != pad || len(l.Mult) != pad || len(l.Left) != pad || len(l.Right) != pad {
			return nil, fmt.Errorf("vecmath.NewNet8: layer %d: %d weights, %d/%d/%d/%d accumulators/multipliers/shifts for %dx%d",
				i, len(l.W), len(l.Acc0), len(l.Mult), len(l.Left), len(l.Right), l.In, l.Out)
		}
		if l.LUT != nil && (l.Lo > l.Hi || int64(l.Lo)-int64(l.LUTBase) < 0 || int64(l.Hi)-int64(l.LUTBase) >= int64(len(l.LUT))) {
			return nil, fmt.Errorf("vecmath.NewNet8: layer %d: table of %d from %d does not cover [%d, %d]", i, len(l.LUT), l.LUTBase, l.Lo, l.Hi)
		}
		inBlocks := (l.In + 15) / 16
		n.width = max(n.width, 16*inBlocks, pad)
		clo, chi := int64(l.Lo)-int64(l.Zero), int64(l.Hi)-int64(l.Zero)
		fits := clo >= math.MinInt32 && chi <= math.MaxInt32 && clo <= math.MaxInt32 && chi >= math.MinInt32
		n.fused = n.fused && fits && l.In <= net8MaxWidth && pad <= net8MaxWidth
		noLeft := int64(1)
		for _, sh := range l.Left {
			if sh > 0 {
				noLeft = 0
			}
		}
		var lut *int32
		if l.LUT != nil {
			lut = unsafe.SliceData(l.LUT)
		}
		n.desc = append(n.desc, net8Desc{
			w: unsafe.SliceData(l.W), acc0: unsafe.SliceData(l.Acc0), mult: unsafe.SliceData(l.Mult),
			left: unsafe.SliceData(l.Left), right: unsafe.SliceData(l.Right), lut: lut,
			pairs: (l.In + 1) / 2, blocks: pad / 16, inBlocks: inBlocks,
			zero: int64(l.Zero), clo: clo, chi: chi, lutBase: int64(l.LUTBase), noLeft: noLeft, out: int64(l.Out),
		})
		n.rows = max(n.rows, 2*((l.In+1)/2), l.Out)
		n.pairs = max(n.pairs, (l.In+1)/2)
	}
	in := layers[0].In // 1 or more
	n.inMask = 1<<(in-(in-1)/16*16) - 1
	return n, nil
}

// Width is the length act must have for Run and RunLayer (xp and acc need
// Width()/2 and Width()).
func (n *Net8) Width() int { return n.width }

// Run runs every layer on act: act[:In] of the first layer is the input,
// act[:Out] of the last the output on return. Inputs must fit int16.
// With AVX-512 and layers at most 64 wide the whole network is one
// kernel call; otherwise it runs layer by layer (RunLayer). Both give the
// same bits.
func (n *Net8) Run(act, xp, acc []int32) {
	if len(act) < n.width || len(xp) < n.width/2 || len(acc) < n.width {
		panic(fmt.Sprintf("vecmath.Net8.Run: buffers %d/%d/%d for width %d", len(act), len(xp), len(acc), n.width))
	}
	if n.fused && net8Vec(Current(), n.desc, act, xp, act[:n.layers[0].In], n.inMask, math.MinInt16, math.MaxInt16) {
		return
	}
	for i := range n.layers {
		n.RunLayer(i, act, xp, acc)
	}
}

// Net8QueryWidth bounds the inputs and outputs of a network Query runs.
const Net8QueryWidth = net8MaxWidth

// Query runs the network on one input vector without caller buffers:
// in (the first layer's In values, each clamped to [lo, hi] first, with
// lo <= hi inside int16) gives out (the last layer's Out values). It
// returns false, touching nothing, when the fused kernel cannot run
// (vector level below AVX-512, or a layer wider than 64); the caller then
// uses Run. It computes what Run computes on the clamped input.
func (n *Net8) Query(in, out []int32, lo, hi int32) bool {
	if !n.fused || Current() < AVX512 {
		return false
	}
	if len(in) != n.layers[0].In || len(out) != n.layers[len(n.layers)-1].Out || lo > hi || lo < math.MinInt16 || hi > math.MaxInt16 {
		panic(fmt.Sprintf("vecmath.Net8.Query: %d inputs, %d outputs, clamp [%d, %d]", len(in), len(out), lo, hi))
	}
	// Stack buffers: the kernel does not keep them, so they do not escape.
	// The kernel reads in itself.
	var act [Net8QueryWidth]int32
	var xp [Net8QueryWidth / 2]int32
	net8Vec(AVX512, n.desc, act[:], xp[:], in, n.inMask, lo, hi)
	copy(out, act[:])
	return true
}

// RunLayer runs layer i on act in place (see Run).
func (n *Net8) RunLayer(i int, act, xp, acc []int32) {
	l := &n.layers[i]
	pad := len(l.Acc0)
	in := act[:l.In]
	x := xp[:(l.In+1)/2]
	for p := range x {
		var h int32
		if 2*p+1 < l.In {
			h = in[2*p+1]
		}
		x[p] = int32(uint32(uint16(in[2*p])) | uint32(h)<<16)
	}
	a := acc[:pad]
	copy(a, l.Acc0)
	DotPairs16(a, l.W, x)
	dst := act[:pad]
	Requant(dst, a, l.Mult, l.Left, l.Right, l.Zero, l.Lo, l.Hi)
	if l.LUT != nil {
		for o, q := range dst[:l.Out] {
			dst[o] = l.LUT[q-l.LUTBase]
		}
	}
}

// BatchLanes is the number of items RunBatch runs side by side per kernel
// call at the current level: 16 with AVX-512, 8 with AVX2, 0 without
// vector instructions (RunBatch then runs nothing and returns false).
func BatchLanes() int { return batchLanes(Current()) }

func batchLanes(l Level) int {
	switch {
	case !haveLanes:
		return 0
	case l >= AVX512:
		return 16
	case l >= AVX2:
		return 8
	}
	return 0
}

// BatchScratch is the length of the scratch buffer RunBatch needs.
func (n *Net8) BatchScratch() int { return 16 * (n.rows + n.pairs) }

// RunBatch runs the network on items input vectors: in holds items rows
// of the first layer's In values (each clamped to [lo, hi] first, lo <= hi
// inside int16), out receives items rows of the last layer's Out values.
// Items run side by side, BatchLanes() per kernel call, one pass over
// every layer's weights per call; each item gets exactly what Run gives
// it (on the clamped input). scratch must hold BatchScratch() values. It
// returns false, touching nothing, when no vector level is available.
func (n *Net8) RunBatch(in, out []int32, items int, lo, hi int32, scratch []int32) bool {
	lv := Current()
	lanes := batchLanes(lv)
	if lanes == 0 {
		return false
	}
	nIn, nOut := n.layers[0].In, n.layers[len(n.layers)-1].Out
	if items < 0 || len(in) != items*nIn || len(out) != items*nOut || len(scratch) < n.BatchScratch() || lo > hi || lo < math.MinInt16 || hi > math.MaxInt16 {
		panic(fmt.Sprintf("vecmath.Net8.RunBatch: %d items, %d inputs, %d outputs, %d scratch, clamp [%d, %d]", items, len(in), len(out), len(scratch), lo, hi))
	}
	act := scratch[:lanes*n.rows]
	xp := scratch[lanes*n.rows : lanes*(n.rows+n.pairs)]
	for base := 0; base < items; base += lanes {
		k := min(lanes, items-base)
		// Rows of lanes; lanes k.. keep stale values, whose results are
		// dropped (they are clamped like any input, so they cannot fault).
		for j := range k {
			x := in[(base+j)*nIn : (base+j+1)*nIn]
			for f, v := range x {
				act[f*lanes+j] = v
			}
		}
		net8LanesVec(lv, n.desc, act, xp, lo, hi)
		for j := range k {
			y := out[(base+j)*nOut : (base+j+1)*nOut]
			for o := range y {
				y[o] = act[o*lanes+j]
			}
		}
	}
	return true
}
