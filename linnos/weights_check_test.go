package linnos

import (
	"errors"
	"math"
	"testing"
)

// TestWeightFileValuesChecked: a float weight file with a NaN, ±Inf or a
// huge weight or bias anywhere is refused (ErrFormat, ErrBadWeights); the
// same file with ordinary values decodes.
func TestWeightFileValuesChecked(t *testing.T) {
	for _, extra := range []int{0, 2} {
		m, err := NewFloatModel(extra)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.W {
			for k := range m.W[i] {
				m.W[i][k] = float32((k%7)-3) * 0.25
			}
			for k := range m.B[i] {
				m.B[i][k] = float32(k%5) * 0.5
			}
		}
		good, err := EncodeFloat(m, ModelMeta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeModel(good); err != nil {
			t.Fatalf("ordinary weights refused: %v", err)
		}
		last := len(m.W) - 1
		for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -2 * MaxAbsWeight} {
			for _, set := range []func(v float32) func(){
				func(v float32) func() { old := m.W[0][5]; m.W[0][5] = v; return func() { m.W[0][5] = old } },
				func(v float32) func() { old := m.B[last][1]; m.B[last][1] = v; return func() { m.B[last][1] = old } },
			} {
				undo := set(v)
				bad, err := EncodeFloat(m, ModelMeta{})
				undo()
				if err != nil {
					t.Fatal(err)
				}
				_, err = DecodeModel(bad)
				if !errors.Is(err, ErrBadWeights) || !errors.Is(err, ErrFormat) {
					t.Errorf("extra %d, value %v: %v, want ErrBadWeights", extra, v, err)
				}
			}
		}
	}
}
