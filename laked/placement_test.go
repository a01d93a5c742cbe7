package laked_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/policy"
)

// TestPolicyDecidesEveryBatch serves predicts with the default policy
// (eBPF when this process may load it, the Go twin otherwise) at a
// threshold of 32 items (below laked's batch cap; the shipped default is
// larger): small batches go to the CPU, batches at or above the threshold
// to the GPU side, which on this GPU-less host falls back to the CPU and is
// counted.
func TestPolicyDecidesEveryBatch(t *testing.T) {
	eng, err := policy.New(policy.Options{Params: &policy.Params{GPUMinBatch: 32, GPUMaxUtilPct: policy.DefaultGPUMaxUtilPct}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	t.Logf("policy: %+v", eng.Status())
	load := policy.NewStaticLoad(policy.Load{GPUUtilPct: 10, GPUMemFreeMiB: 8000})
	srv, sock := startServer(t, laked.Config{MaxWait: time.Millisecond})
	srv.SetPlacer(&laked.PolicyPlacer{Engine: eng, Load: load, Log: zerolog.Nop()})
	c := dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	predict := func(n int) {
		t.Helper()
		if _, err := c.Predict(ctx, mlpID, n, make([]byte, 32*n), make([]byte, 8*n)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		predict(1) // lone small requests: below the GPU threshold
	}
	st := srv.Stats()
	if st.DecisionsCPU < 5 || st.DecisionsGPU != 0 {
		t.Fatalf("small batches: cpu=%d gpu=%d", st.DecisionsCPU, st.DecisionsGPU)
	}
	for i := 0; i < 3; i++ {
		predict(40) // one request of 40 items is a batch of 40 >= 32
	}
	st = srv.Stats()
	if st.DecisionsGPU < 3 || st.GPUFallbacks < 3 {
		t.Fatalf("large batches: gpu=%d fallbacks=%d", st.DecisionsGPU, st.GPUFallbacks)
	}
	// A busy GPU keeps even large batches on the CPU.
	load.Set(policy.Load{GPUUtilPct: 95, GPUMemFreeMiB: 8000})
	before := srv.Stats().DecisionsGPU
	predict(40)
	if srv.Stats().DecisionsGPU != before {
		t.Fatal("batch sent to a 95% busy GPU")
	}
	if c := eng.Counts(); c.CPU+c.GPU < 9 {
		t.Fatalf("engine counted %+v decisions", c)
	}
}
