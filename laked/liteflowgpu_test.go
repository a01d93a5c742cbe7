package laked_test

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/liteflow/router"
	"github.com/lakeos/lake/liteflow/snapshot"
)

// cpuRunner is a SnapshotRunner on the CPU (what the CUDA runner computes
// on the GPU): decode the image, RunQuantized each item.
func cpuRunner(prepared *int) func(img []byte) (laked.SnapshotRunner, error) {
	return func(img []byte) (laked.SnapshotRunner, error) {
		s, err := snapshot.Decode(img)
		if err != nil {
			return nil, err
		}
		*prepared++
		return func(in, out []byte, n int) error {
			x, y := make([]int32, s.InputDim()), make([]int32, s.OutputDim())
			for i := 0; i < n; i++ {
				for d := range x {
					x[d] = int32(binary.LittleEndian.Uint32(in[4*(i*len(x)+d):]))
				}
				if err := s.RunQuantized(x, y); err != nil {
					return err
				}
				for d, v := range y {
					binary.LittleEndian.PutUint32(out[4*(i*len(y)+d):], uint32(v))
				}
			}
			return nil
		}, nil
	}
}

// newCCModel is a LiteFlow model "cc" (4 inputs, 2 outputs) over a new
// router with no snapshot installed.
func newCCModel(t *testing.T) (*router.Router, *laked.LiteFlowModel) {
	t.Helper()
	r, err := router.New(router.Config{InputDim: 4, OutputDim: 2, FlowTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lm, err := laked.NewLiteFlowModel("cc", r, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	return r, lm
}

// TestLiteFlowGPUPath: the GPU path answers every record exactly as
// Predict does, routing flows to their pinned snapshot version (a batch
// mixing flows of two versions), preparing each version once.
func TestLiteFlowGPUPath(t *testing.T) {
	r, lm := newCCModel(t)
	prepared := 0
	gpu := lm.GPUPath(cpuRunner(&prepared))
	rec := func(flows ...uint64) []byte {
		var b []byte
		for i, f := range flows {
			b = binary.LittleEndian.AppendUint64(b, f)
			for d := 0; d < 4; d++ {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(i+d)*0.1-0.3))
			}
		}
		return b
	}
	if err := gpu(rec(1), make([]byte, 8), 1); !errors.Is(err, router.ErrNoSnapshot) {
		t.Fatalf("no snapshot: %v", err)
	}
	if _, err := r.Install(liteflowSnapshot(t, 1, 1)); err != nil {
		t.Fatal(err)
	}
	first := rec(1, 2, 0)
	out := make([]byte, 3*8)
	if err := gpu(first, out, 3); err != nil { // flows 1 and 2 pin v1
		t.Fatal(err)
	}
	if _, err := r.Install(liteflowSnapshot(t, 2, 2)); err != nil {
		t.Fatal(err)
	}
	batch := rec(1, 3, 2, 0, 3) // 1, 2 on v1; 3 and flow 0 on v2
	got, want := make([]byte, 5*8), make([]byte, 5*8)
	if err := gpu(batch, got, 5); err != nil {
		t.Fatal(err)
	}
	if err := lm.Predict(batch, want, 5); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("GPU path %x, Predict %x", got, want)
	}
	if prepared != 2 {
		t.Fatalf("prepared %d runners, want one per version (2)", prepared)
	}
	if err := gpu(batch[:10], got, 5); err == nil {
		t.Fatal("short input accepted")
	}
	gm := laked.WithGPU(lm, gpu).(laked.GPUModel)
	if err := gm.PredictGPU(batch, got, 5); err != nil || string(got) != string(want) {
		t.Fatalf("through WithGPU: %v", err)
	}
}
