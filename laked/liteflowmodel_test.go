package laked_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/snapshot"
)

func liteflowSnapshot(t *testing.T, seed uint64, gen uint64) *snapshot.Snapshot {
	t.Helper()
	m, err := model.NewMLP([]int{4, 8, 2}, []model.Activation{model.Tanh, model.Identity}, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(int64(seed)))
	calib := make([][]float32, 64)
	for i := range calib {
		calib[i] = []float32{rng.Float32()*2 - 1, rng.Float32()*2 - 1, rng.Float32()*2 - 1, rng.Float32()*2 - 1}
	}
	s, err := quant.Quantize(m, calib, quant.Options{DType: snapshot.Int8, Generation: gen})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLiteFlowServedPinsFlows serves a LiteFlow router through predict:
// answers equal the snapshot's integer engine, and a flow keeps the
// snapshot it started with after a new one is installed.
func TestLiteFlowServedPinsFlows(t *testing.T) {
	r, lm := newCCModel(t)
	a, b := liteflowSnapshot(t, 1, 1), liteflowSnapshot(t, 2, 2)
	if _, err := r.Install(a); err != nil {
		t.Fatal(err)
	}
	srv, sock := startServer(t, laked.Config{})
	if err := srv.RegisterModel(3, lm); err != nil {
		t.Fatal(err)
	}
	c := dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	x := []float32{0.5, -0.25, 0.75, 0.1}
	query := func(flow uint64) []float32 {
		t.Helper()
		in := make([]byte, 24)
		binary.LittleEndian.PutUint64(in, flow)
		for j, v := range x {
			binary.LittleEndian.PutUint32(in[8+4*j:], math.Float32bits(v))
		}
		out := make([]byte, 8)
		if _, err := c.Predict(ctx, 3, 1, in, out); err != nil {
			t.Fatal(err)
		}
		return laked.BytesToFloat32s(out)
	}
	want := func(s *snapshot.Snapshot) []float32 {
		y := make([]float32, 2)
		if err := s.Run(x, y); err != nil {
			t.Fatal(err)
		}
		return y
	}
	eq := func(p, q []float32) bool { return p[0] == q[0] && p[1] == q[1] }
	wa, wb := want(a), want(b)
	if eq(wa, wb) {
		t.Fatal("test snapshots answer alike")
	}
	if got := query(7); !eq(got, wa) {
		t.Fatalf("flow 7 on snapshot a: got %v want %v", got, wa)
	}
	if _, err := r.Install(b); err != nil {
		t.Fatal(err)
	}
	if got := query(7); !eq(got, wa) {
		t.Fatalf("flow 7 moved to the new snapshot mid-flow: got %v want %v", got, wa)
	}
	if got := query(8); !eq(got, wb) {
		t.Fatalf("new flow 8 not on the new snapshot: got %v want %v", got, wb)
	}
}

// TestLiteFlowPredictBatch calls the model's Predict with a batch of
// records of flows pinned to two snapshots and flowless records: every
// record must get exactly what its snapshot's Run gives it alone.
func TestLiteFlowPredictBatch(t *testing.T) {
	r, lm := newCCModel(t)
	a, b := liteflowSnapshot(t, 1, 1), liteflowSnapshot(t, 2, 2)
	if _, err := r.Install(a); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 24)
	for flow := uint64(1); flow <= 3; flow++ { // pinned to a
		binary.LittleEndian.PutUint64(one, flow)
		if err := lm.Predict(one, make([]byte, 8), 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Install(b); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(5))
	const n = 77
	in, out := make([]byte, n*24), make([]byte, n*8)
	xs := make([][]float32, n)
	flows := make([]uint64, n)
	for i := range n {
		flows[i] = uint64(rng.Intn(6)) // 0 flowless, 1-3 on a, 4-5 new (b)
		binary.LittleEndian.PutUint64(in[i*24:], flows[i])
		xs[i] = make([]float32, 4)
		for j := range xs[i] {
			xs[i][j] = rng.Float32()*4 - 2
			binary.LittleEndian.PutUint32(in[i*24+8+4*j:], math.Float32bits(xs[i][j]))
		}
	}
	if err := lm.Predict(in, out, n); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s := b
		if flows[i] >= 1 && flows[i] <= 3 {
			s = a
		}
		want := make([]float32, 2)
		if err := s.Run(xs[i], want); err != nil {
			t.Fatal(err)
		}
		got := laked.BytesToFloat32s(out[i*8 : (i+1)*8])
		if math.Float32bits(got[0]) != math.Float32bits(want[0]) || math.Float32bits(got[1]) != math.Float32bits(want[1]) {
			t.Fatalf("record %d (flow %d): %v, want %v", i, flows[i], got, want)
		}
	}
	if err := lm.Predict(in[:23], out, 1); err == nil {
		t.Error("short record accepted")
	}
}
