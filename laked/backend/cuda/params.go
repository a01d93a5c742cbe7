package cuda

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/lakeos/lake/laked/backend"
)

// MaxParamBytes bounds a packed parameter buffer: cuLaunchKernel's
// classic 4 KiB limit on a kernel's parameters.
const MaxParamBytes = 4096

// Words splits a packed parameter buffer (backend.Context.LaunchKernel:
// 8-byte little-endian words) into its words. The buffer must be a whole
// number of words and at most MaxParamBytes long.
func Words(params []byte) ([]uint64, error) {
	if len(params)%8 != 0 {
		return nil, fmt.Errorf("cuda: parameter buffer of %d bytes is not a whole number of 8-byte words: %w", len(params), backend.ErrInvalidValue)
	}
	if len(params) > MaxParamBytes {
		return nil, fmt.Errorf("cuda: parameter buffer of %d bytes exceeds %d: %w", len(params), MaxParamBytes, backend.ErrInvalidValue)
	}
	w := make([]uint64, len(params)/8)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(params[8*i:])
	}
	return w, nil
}

// ParamKind says what one 8-byte kernel parameter is.
type ParamKind uint8

const (
	// Scalar is a 64-bit integer passed by value.
	Scalar ParamKind = iota
	// Pointer is a device address the kernel reads or writes.
	Pointer
)

// Param describes one parameter of a built-in kernel.
type Param struct {
	Name string
	Kind ParamKind
	// Max bounds a Scalar (inclusive).
	Max uint64
	// For a Pointer, the kernel touches Fixed + PerCount*words[CountIdx]
	// bytes from it (CountIdx < 0: Fixed bytes only).
	Fixed, PerCount uint64
	CountIdx        int
}

// Signature is the parameter list of a built-in kernel. Launches of a
// built-in kernel are checked against it: every pointer must lie, for
// the whole extent the kernel touches, inside one live allocation of the
// launching context, and every scalar within its bound. A kernel with a
// signature guards its own thread index, so any grid is safe.
type Signature []Param

// Check validates words against s. inside(p, n) reports whether the n
// bytes at device address p lie inside one live allocation of the
// context (nil error) or why not.
func (s Signature) Check(words []uint64, inside func(p backend.DevPtr, n uint64) error) error {
	if len(words) != len(s) {
		return fmt.Errorf("cuda: kernel takes %d parameters, got %d: %w", len(s), len(words), backend.ErrInvalidValue)
	}
	for i, p := range s {
		if p.Kind == Scalar && words[i] > p.Max {
			return fmt.Errorf("cuda: parameter %d (%s) = %d exceeds %d: %w", i, p.Name, words[i], p.Max, backend.ErrInvalidValue)
		}
	}
	for i, p := range s {
		if p.Kind != Pointer {
			continue
		}
		n := p.Fixed
		if p.CountIdx >= 0 {
			if p.CountIdx >= len(s) || s[p.CountIdx].Kind != Scalar {
				return fmt.Errorf("cuda: signature of parameter %d (%s) names no scalar count: %w", i, p.Name, backend.ErrInvalidValue)
			}
			hi, lo := bits.Mul64(p.PerCount, words[p.CountIdx])
			sum, carry := bits.Add64(lo, p.Fixed, 0)
			if hi != 0 || carry != 0 {
				return fmt.Errorf("cuda: parameter %d (%s): extent overflows: %w", i, p.Name, backend.ErrInvalidValue)
			}
			n = sum
		}
		if n == 0 {
			continue
		}
		if err := inside(backend.DevPtr(words[i]), n); err != nil {
			return fmt.Errorf("cuda: parameter %d (%s): %d bytes at %#x: %w", i, p.Name, n, words[i], err)
		}
	}
	return nil
}

// Pack builds a packed parameter buffer from words (the inverse of Words).
func Pack(words ...uint64) []byte {
	b := make([]byte, 0, 8*len(words))
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}
