package snapshot_test

import (
	"bytes"
	"testing"

	"github.com/lakeos/lake/liteflow/snapshot"
)

// FuzzDecodeSnapshot feeds arbitrary bytes to Decode. Decode must never
// panic; whatever it accepts must run without panicking on any input and
// re-encode to the same bytes. Seeds live in testdata/fuzz/FuzzDecodeSnapshot.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := snapshot.Decode(b)
		if err != nil {
			return
		}
		x := make([]float32, s.InputDim())
		out := make([]float32, s.OutputDim())
		for _, v := range []float32{0, 1e30, -1e30, 0.5} {
			for i := range x {
				x[i] = v
			}
			if err := s.Run(x, out); err != nil {
				t.Fatalf("accepted snapshot fails to run: %v", err)
			}
		}
		enc, err := snapshot.Encode(s)
		if err != nil {
			t.Fatalf("accepted snapshot fails to encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatal("decode/encode is not the identity on an accepted snapshot")
		}
	})
}
