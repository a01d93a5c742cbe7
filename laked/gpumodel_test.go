package laked_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

// TestWithGPU: batches placed on the GPU run the model's GPU path, and
// a failing GPU path falls back to the CPU with the right answers.
func TestWithGPU(t *testing.T) {
	base, err := laked.NewMLPModel("mlp", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	var calls, fail atomic.Int32
	m := laked.WithGPU(base, func(in, out []byte, n int) error {
		calls.Add(1)
		if fail.Load() != 0 {
			return errors.New("gpu lost")
		}
		return base.Predict(in, out, n)
	})
	if laked.WithGPU(base, nil) != laked.Model(base) {
		t.Fatal("WithGPU(m, nil) wraps")
	}
	gm := m.(laked.GPUModel)
	if err := gm.PredictGPU(make([]byte, 31), make([]byte, 8), 1); err == nil {
		t.Fatal("mismatched buffers accepted")
	}
	srv, sock := startServer(t, laked.Config{MaxWait: time.Millisecond, GPU: cpu.New(backend.Limits{})}) // any backend: the model brings its GPU path
	srv.SetPlacer(laked.PlacerFunc(func(laked.BatchInfo) bool { return true }))
	if err := srv.RegisterModel(7, m); err != nil {
		t.Fatal(err)
	}
	c := dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := make([]byte, 32*4)
	for i := range in {
		in[i] = byte(i)
	}
	want := make([]byte, 8*4)
	if err := base.Predict(in, want, 4); err != nil {
		t.Fatal(err)
	}
	for _, f := range []int32{0, 1} {
		fail.Store(f)
		out := make([]byte, 8*4)
		if _, err := c.Predict(ctx, 7, 4, in, out); err != nil {
			t.Fatal(err)
		}
		if string(out) != string(want) {
			t.Fatalf("fail=%d: wrong outputs", f)
		}
	}
	if calls.Load() < 2 {
		t.Fatalf("GPU path called %d times", calls.Load())
	}
	if st := srv.Stats(); st.DecisionsGPU < 2 {
		t.Fatalf("stats %+v", st)
	}
}
