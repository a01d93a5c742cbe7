package linnos

import (
	"errors"
	"fmt"
	"math"
)

// MaxAbsWeight bounds the magnitude of a float weight or bias in a weight
// file. Trained LinnOS weights are a few units; anything near this bound
// is a corrupt or hostile file, and beyond it the integer model's ×10³
// weights and ×10^(3(i+1)) biases lose their meaning.
const MaxAbsWeight = 1 << 20

// ErrBadWeights is returned (wrapped, with ErrFormat) for a weight file
// whose values are NaN, infinite or out of range.
var ErrBadWeights = errors.New("linnos: weight out of range")

// checked returns f if every float value is usable, else an error naming
// the first bad one: NaN, ±Inf or beyond ±MaxAbsWeight (quantizing such a
// value saturates, so the model would silently compute nonsense).
// Integer files are not range-checked: their arithmetic is defined for
// every value (int64, wrapping, bit-exact with the C reference, whose
// loader accepts them too).
func (f *ModelFile) checked() (*ModelFile, error) {
	if f.Float != nil {
		for i := range f.Float.W {
			for k, v := range f.Float.W[i] {
				if err := checkFloat(v, "weight", i, k); err != nil {
					return nil, err
				}
			}
			for k, v := range f.Float.B[i] {
				if err := checkFloat(v, "bias", i, k); err != nil {
					return nil, err
				}
			}
		}
	}
	return f, nil
}

func checkFloat(v float32, what string, layer, k int) error {
	x := float64(v)
	if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > MaxAbsWeight {
		return fmt.Errorf("%w: %w: layer %d %s %d is %v (want finite, |v| <= %d)", ErrFormat, ErrBadWeights, layer, what, k, v, MaxAbsWeight)
	}
	return nil
}
