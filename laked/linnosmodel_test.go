package laked_test

import (
	"context"
	"encoding/binary"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/linnos"
)

// TestLinnOSServedMatchesLocal serves a LinnOS integer model and checks
// that predictions through laked equal the model's own, item for item.
func TestLinnOSServedMatchesLocal(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	fm := randomFloatModel(t, 0, rng)
	const n = 300
	feats := make([]int32, n*linnos.NumInputs)
	for i := range feats {
		feats[i] = int32(rng.Intn(10))
	}
	// Centre the output bias on the median logit difference so that the
	// random model answers both classes.
	diffs := make([]float64, n)
	for i := range diffs {
		l, err := fm.Logits(feats[i*linnos.NumInputs : (i+1)*linnos.NumInputs])
		if err != nil {
			t.Fatal(err)
		}
		diffs[i] = float64(l[1] - l[0])
	}
	sort.Float64s(diffs)
	fm.B[len(fm.B)-1][1] -= float32(diffs[n/2])
	im, err := linnos.Quantize(fm)
	if err != nil {
		t.Fatal(err)
	}
	srv, sock := startServer(t, laked.Config{})
	if err := srv.RegisterModel(1, laked.NewLinnOSModel("linnos", im)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := make([]byte, 4*len(feats))
	for i, v := range feats {
		binary.LittleEndian.PutUint32(in[4*i:], uint32(v))
	}
	out := make([]byte, 4*n)
	if _, err := c.Predict(ctx, 1, n, in, out); err != nil {
		t.Fatal(err)
	}
	want := make([]int32, n)
	if err := im.PredictBatch(feats, want); err != nil {
		t.Fatal(err)
	}
	slow := 0
	for i := range want {
		got := int32(binary.LittleEndian.Uint32(out[4*i:]))
		if got != want[i] {
			t.Fatalf("item %d: laked says %d, model says %d", i, got, want[i])
		}
		slow += int(got)
	}
	if slow == 0 || slow == n {
		t.Fatalf("degenerate test model: %d of %d slow", slow, n)
	}
}
