package snapshot_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// tiny builds one identity layer, 2 inputs -> 1 output, with
// hand-checkable numbers.
func tiny() *snapshot.Snapshot {
	return &snapshot.Snapshot{
		DType: snapshot.Int8,
		Input: snapshot.QParams{Scale: 0.5, Zero: 0},
		Layers: []snapshot.Layer{{
			In: 2, Out: 1, Act: model.Identity,
			Pre:    snapshot.QParams{Scale: 0.25, Zero: 1},
			OutQ:   snapshot.QParams{Scale: 0.25, Zero: 1},
			WScale: []float32{0.5},
			// real multiplier = 0.5*0.5/0.25 = 1 = 2^30 * 2^1 / 2^31
			Mult:  []int32{1 << 30},
			Shift: []int32{1},
			Bias:  []int32{4}, // 4 * 0.25 = 1.0
			W:     []int8{2, -1},
		}},
	}
}

func TestTinyByHand(t *testing.T) {
	s := tiny()
	if err := s.Run([]float32{1, 1}, make([]float32, 1)); !errors.Is(err, snapshot.ErrNotValidated) {
		t.Fatalf("unvalidated run: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// x = (1.5, -2) -> q = (3, -4); acc = 4 + 2*3 - 1*(-4) = 14; times the
	// multiplier 1, plus zero 1 -> 15; real = 0.25 * (15 - 1) = 3.5, equal to
	// the float model 1 + (0.5*2)*1.5 + (0.5*-1)*(-2) = 3.5.
	out := make([]float32, 1)
	if err := s.Run([]float32{1.5, -2}, out); err != nil {
		t.Fatal(err)
	}
	if out[0] != 3.5 {
		t.Fatalf("got %v, want 3.5", out[0])
	}
	q := make([]int32, 1)
	if err := s.RunQuantized([]int32{3, -4}, q); err != nil || q[0] != 15 {
		t.Fatalf("quantized run = %v, %v; want 15", q, err)
	}
	// Saturation: a large input saturates at 127 -> 0.25*(127-1) = 31.5.
	if err := s.Run([]float32{1000, -1000}, out); err != nil || out[0] != 31.5 {
		t.Fatalf("saturating run = %v, %v", out[0], err)
	}
	// NaN input maps to the zero point (acc = 4 -> 5 -> 1.0).
	if err := s.Run([]float32{float32(math.NaN()), 0}, out); err != nil || out[0] != 1 {
		t.Fatalf("NaN run = %v, %v", out[0], err)
	}
	if err := s.Run([]float32{1}, out); !errors.Is(err, snapshot.ErrShape) {
		t.Fatalf("short input: %v", err)
	}
}

func quantized(t testing.TB, act model.Activation, pc bool) *snapshot.Snapshot {
	t.Helper()
	m, err := model.NewMLP([]int{5, 8, 3}, []model.Activation{act, model.Identity}, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	calib := make([][]float32, 64)
	for i := range calib {
		calib[i] = []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
	}
	s, err := quant.Quantize(m, calib, quant.Options{PerChannel: pc})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func recrc(b []byte) {
	end := len(b) - 4
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], crc32.MakeTable(crc32.Castagnoli)))
}

func TestDecodeRejects(t *testing.T) {
	good, err := snapshot.Encode(quantized(t, model.Tanh, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Decode(good); err != nil {
		t.Fatalf("good snapshot rejected: %v", err)
	}
	le := binary.LittleEndian
	l0 := snapshot.HeaderSize
	cases := map[string]func(b []byte) []byte{
		"truncated":        func(b []byte) []byte { return b[:len(b)-1] },
		"empty":            func(b []byte) []byte { return nil },
		"bad magic":        func(b []byte) []byte { b[0] = 'X'; return b },
		"bad crc":          func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"flipped weight":   func(b []byte) []byte { b[len(b)-300] ^= 0x40; return b }, // crc catches
		"version":          func(b []byte) []byte { le.PutUint16(b[4:], 2); recrc(b); return b },
		"header size":      func(b []byte) []byte { le.PutUint16(b[6:], 40); recrc(b); return b },
		"total length":     func(b []byte) []byte { le.PutUint32(b[8:], uint32(len(b)+4)); recrc(b); return b },
		"flags":            func(b []byte) []byte { b[12] = 1; recrc(b); return b },
		"dtype":            func(b []byte) []byte { b[24] = 9; recrc(b); return b },
		"zero layers":      func(b []byte) []byte { b[25] = 0; recrc(b); return b },
		"too many layers":  func(b []byte) []byte { b[25] = 3; recrc(b); return b },
		"input scale NaN":  func(b []byte) []byte { le.PutUint32(b[28:], 0x7fc00000); recrc(b); return b },
		"input zero range": func(b []byte) []byte { le.PutUint32(b[32:], 500); recrc(b); return b },
		"output dim":       func(b []byte) []byte { le.PutUint16(b[36:], 4); recrc(b); return b },
		"reserved":         func(b []byte) []byte { b[45] = 1; recrc(b); return b },
		"layer in chain":   func(b []byte) []byte { le.PutUint16(b[l0:], 6); recrc(b); return b },
		"layer wide":       func(b []byte) []byte { le.PutUint16(b[l0+2:], 5000); recrc(b); return b },
		"activation":       func(b []byte) []byte { b[l0+4] = 7; recrc(b); return b },
		"granularity":      func(b []byte) []byte { b[l0+5] = 2; recrc(b); return b },
		"record length":    func(b []byte) []byte { le.PutUint32(b[l0+24:], 12); recrc(b); return b },
		"out scale zero":   func(b []byte) []byte { le.PutUint32(b[l0+16:], 0); recrc(b); return b },
		"multiplier": func(b []byte) []byte {
			le.PutUint32(b[l0+snapshot.LayerHeader+8*4:], 5) // first multiplier (8 channels of scales before)
			recrc(b)
			return b
		},
		"shift": func(b []byte) []byte {
			le.PutUint32(b[l0+snapshot.LayerHeader+16*4:], 40)
			recrc(b)
			return b
		},
		"bias overflow": func(b []byte) []byte {
			le.PutUint32(b[l0+snapshot.LayerHeader+24*4:], math.MaxInt32)
			recrc(b)
			return b
		},
		"trailing": func(b []byte) []byte {
			b = append(b[:len(b)-4], 0, 0, 0, 0, 0, 0, 0, 0)
			le.PutUint32(b[8:], uint32(len(b)))
			recrc(b)
			return b
		},
	}
	for name, mut := range cases {
		b := mut(append([]byte(nil), good...))
		if _, err := snapshot.Decode(b); !errors.Is(err, snapshot.ErrInvalid) {
			t.Errorf("%s: Decode error %v, want ErrInvalid", name, err)
		}
	}
}

func TestLUTOutOfRangeAndPadding(t *testing.T) {
	s := quantized(t, model.ReLU, false)
	s.Layers[0].LUT = make([]int32, 256)
	if err := s.Validate(); !errors.Is(err, snapshot.ErrInvalid) {
		t.Errorf("table on a relu layer: %v", err)
	}
	s = quantized(t, model.Sigmoid, false)
	s.Layers[0].LUT[3] = 300
	if err := s.Validate(); !errors.Is(err, snapshot.ErrInvalid) {
		t.Errorf("table entry out of range: %v", err)
	}
	// A single 5x3 layer has 15 weights and so one padding byte, the last
	// byte before the CRC.
	m, _ := model.NewMLP([]int{5, 3}, []model.Activation{model.Identity}, 1)
	q, err := quant.Quantize(m, [][]float32{{1, 2, 3, 4, 5}, {-1, 0, 1, 0, -3}}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := snapshot.Encode(q)
	b[len(b)-5] = 1 // the padding byte right before the CRC
	recrc(b)
	if _, err := snapshot.Decode(b); !errors.Is(err, snapshot.ErrInvalid) {
		t.Errorf("non-zero padding: %v", err)
	}
}

func TestCopyIntoReusesAndMatches(t *testing.T) {
	a, b := quantized(t, model.Tanh, true), quantized(t, model.ReLU, false)
	dst := a.Clone()
	b.CopyInto(dst)
	x := []float32{0.3, -1, 2, 0.1, 0}
	o1, o2 := make([]float32, 3), make([]float32, 3)
	_ = b.Run(x, o1)
	if err := dst.Run(x, o2); err != nil {
		t.Fatal(err)
	}
	for i := range o1 {
		if o1[i] != o2[i] {
			t.Fatalf("copy answers %v, source %v", o2, o1)
		}
	}
	if dst.Layers[0].LUT != nil {
		t.Fatal("copy of a relu snapshot kept a table")
	}
}

func TestRunDoesNotAllocate(t *testing.T) {
	s := quantized(t, model.Sigmoid, true)
	x, out := []float32{0.3, -1, 2, 0.1, 0}, make([]float32, 3)
	if n := testing.AllocsPerRun(100, func() { _ = s.Run(x, out) }); n != 0 {
		t.Fatalf("Run allocates %v times", n)
	}
}
