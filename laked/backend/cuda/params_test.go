package cuda

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/lakeos/lake/laked/backend"
)

func TestWordsRoundTrip(t *testing.T) {
	in := []uint64{0, 1, 0x0102030405060708, math.MaxUint64}
	w, err := Words(Pack(in...))
	if err != nil || len(w) != len(in) {
		t.Fatal(w, err)
	}
	for i := range in {
		if w[i] != in[i] {
			t.Fatalf("word %d = %#x, want %#x", i, w[i], in[i])
		}
	}
	if b := Pack(0x0102030405060708); b[0] != 8 || b[7] != 1 {
		t.Fatalf("not little-endian: %x", b)
	}
	if w, err := Words(nil); err != nil || len(w) != 0 {
		t.Fatal("an empty buffer is zero words", w, err)
	}
}

func TestWordsRejects(t *testing.T) {
	for _, n := range []int{1, 7, 9, 4095, MaxParamBytes + 8} {
		if _, err := Words(make([]byte, n)); !errors.Is(err, backend.ErrInvalidValue) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	if _, err := Words(make([]byte, MaxParamBytes)); err != nil {
		t.Errorf("%d bytes: %v", MaxParamBytes, err)
	}
}

// fakeAllocs is one context's allocations for Signature.Check.
type fakeAllocs []struct{ base, size uint64 }

func (f fakeAllocs) inside(p backend.DevPtr, n uint64) error {
	for _, a := range f {
		if uint64(p) >= a.base && uint64(p)-a.base < a.size {
			if n > a.size-(uint64(p)-a.base) {
				return fmt.Errorf("overrun: %w", backend.ErrInvalidValue)
			}
			return nil
		}
	}
	return fmt.Errorf("unknown: %w", backend.ErrInvalidValue)
}

func TestSignatureCheckVectorAdd(t *testing.T) {
	sig := Builtins["lake_vector_add"].Sig
	allocs := fakeAllocs{{0x1000, 400}, {0x2000, 400}, {0x3000, 400}, {0x4000, 4}}
	ok := []uint64{0x1000, 0x2000, 0x3000, 100}
	if err := sig.Check(ok, allocs.inside); err != nil {
		t.Fatal(err)
	}
	// Interior pointers are fine when the extent fits.
	if err := sig.Check([]uint64{0x1000 + 200, 0x2000, 0x3000, 50}, allocs.inside); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]uint64{
		"too few":          {0x1000, 0x2000, 0x3000},
		"too many":         {0x1000, 0x2000, 0x3000, 100, 0},
		"overrun by one":   {0x1000, 0x2000, 0x3000, 101},
		"interior overrun": {0x1000 + 4, 0x2000, 0x3000, 100},
		"unknown pointer":  {0x1000, 0x2000, 0x9000, 1},
		"null pointer":     {0, 0x2000, 0x3000, 1},
		"count over max":   {0x1000, 0x2000, 0x3000, maxItems + 1},
		"count wraps":      {0x1000, 0x2000, 0x3000, math.MaxUint64/4 + 1},
		"small allocation": {0x4000, 0x2000, 0x3000, 2},
		"past the end":     {0x1000 + 400, 0x2000, 0x3000, 1},
	}
	for name, w := range bad {
		if err := sig.Check(w, allocs.inside); !errors.Is(err, backend.ErrInvalidValue) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// n = 0 touches nothing: any pointers pass (the kernel does nothing).
	if err := sig.Check([]uint64{0, 0, 0, 0}, allocs.inside); err != nil {
		t.Fatal(err)
	}
}

func TestSignatureOverflowIsRejected(t *testing.T) {
	sig := Signature{
		{Name: "p", Kind: Pointer, Fixed: 16, PerCount: math.MaxUint64 / 2, CountIdx: 1},
		{Name: "n", Kind: Scalar, Max: math.MaxUint64},
	}
	all := func(backend.DevPtr, uint64) error { return nil }
	for _, n := range []uint64{3, math.MaxUint64} {
		if err := sig.Check([]uint64{0x1000, n}, all); !errors.Is(err, backend.ErrInvalidValue) {
			t.Errorf("n=%d: %v", n, err)
		}
	}
	if err := (Signature{{Name: "p", Kind: Pointer, PerCount: 1, CountIdx: 5}}).Check([]uint64{1}, all); !errors.Is(err, backend.ErrInvalidValue) {
		t.Errorf("a count index out of range: %v", err)
	}
	if err := (Signature{{Name: "p", Kind: Pointer, PerCount: 1, CountIdx: 0}}).Check([]uint64{1}, all); !errors.Is(err, backend.ErrInvalidValue) {
		t.Errorf("a count that is a pointer: %v", err)
	}
}

func FuzzSignatureCheck(f *testing.F) {
	f.Add(Pack(0x1000, 0x2000, 0x3000, 100), "lake_vector_add")
	f.Add(Pack(0x1000, 0x2000, 0x3000, 1<<40), "lake_linnos_int2")
	f.Add([]byte{1, 2, 3}, "lake_linnos_float0")
	f.Fuzz(func(t *testing.T, params []byte, name string) {
		k, ok := Builtins[name]
		if !ok {
			return
		}
		words, err := Words(params)
		if err != nil {
			return
		}
		allocs := fakeAllocs{{0x1000, 1 << 20}, {0x200000, 1 << 20}, {0x400000, 1 << 20}}
		var touched []string
		err = k.Sig.Check(words, func(p backend.DevPtr, n uint64) error {
			if e := allocs.inside(p, n); e != nil {
				return e
			}
			touched = append(touched, fmt.Sprint(p, n))
			return nil
		})
		if err != nil && !errors.Is(err, backend.ErrInvalidValue) {
			t.Fatalf("error not ErrInvalidValue: %v", err)
		}
		if err == nil && len(words) != len(k.Sig) {
			t.Fatal("accepted a wrong parameter count")
		}
	})
}
