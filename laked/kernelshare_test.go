package laked_test

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/policy"
)

// TestKernelShareUnderSimulatedLoad simulates 60 s of a GPU shared by
// laked and a userspace job whose load ramps from 0 to 100 %. Every
// 100 ms laked places one batch from a kernel client and one from a
// userspace client (64 items each); a batch placed on the GPU keeps it
// busy for kernelBusy of the step, which laked's own busy time (the
// SelfLoad source) records. NVML (the Load source) reports the job's load
// plus laked's. With a 40 % kernel share:
//
//   - userspace batches leave the GPU once the total passes the 80 % cap;
//   - kernel batches stay on the GPU whatever the job's load, while
//     laked's own use stays below the share;
//   - without the share (0), kernel batches leave with the userspace ones
//     (LAKE's behaviour);
//   - when the kernel's own use reaches the share, it competes like any
//     other work and leaves the busy GPU too.
func TestKernelShareUnderSimulatedLoad(t *testing.T) {
	type result struct{ kernelGPU, userGPU, kernelGPUBusy, steps int }
	simulate := func(share uint32, kernelBusy float64) result {
		eng, err := policy.New(policy.Options{Params: &policy.Params{GPUMinBatch: 32, GPUMaxUtilPct: 80, KernelGPUSharePct: share}})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		now := time.Unix(0, 0)
		clock := func() time.Time { return now }
		self, err := policy.NewBusyTime(time.Second, clock)
		if err != nil {
			t.Fatal(err)
		}
		nvml := policy.NewStaticLoad(policy.Load{})
		p := &laked.PolicyPlacer{Engine: eng, Load: nvml, SelfLoad: self, Log: zerolog.Nop()}
		const step = 100 * time.Millisecond
		var r result
		for i := 0; i < 600; i++ {
			job := uint32(i * 100 / 599) // the userspace job's load, 0..100 %
			own, _ := self.Sample()
			nvml.Set(policy.Load{GPUUtilPct: min(100, job+own.GPUUtilPct), GPUMemFreeMiB: 8000, GPUOtherProcs: 1})
			k := p.Place(laked.BatchInfo{Items: 64, KernelItems: 64})
			u := p.Place(laked.BatchInfo{Items: 64})
			if k {
				r.kernelGPU++
				if job >= 80 {
					r.kernelGPUBusy++
				}
				if err := self.Busy(now, now.Add(time.Duration(kernelBusy*float64(step)))); err != nil {
					t.Fatal(err)
				}
			}
			if u {
				r.userGPU++
			}
			if job >= 80 {
				r.steps++
			}
			now = now.Add(step)
		}
		return r
	}
	// Kernel batches use 20 % of the GPU, below the 40 % share.
	with := simulate(40, 0.2)
	if with.kernelGPUBusy != with.steps {
		t.Errorf("share 40%%: kernel batches on the GPU in %d of the %d steps with the job at >= 80%%", with.kernelGPUBusy, with.steps)
	}
	if with.kernelGPU != 600 {
		t.Errorf("share 40%%: kernel batches on the GPU %d/600 times", with.kernelGPU)
	}
	// Userspace batches stop once job + laked's 20 % reach the cap: from
	// job 60 % on, so about 60 % of the run uses the GPU.
	if with.userGPU < 330 || with.userGPU > 380 {
		t.Errorf("share 40%%: userspace batches on the GPU %d/600 times, want about 360", with.userGPU)
	}
	without := simulate(0, 0.2)
	if without.kernelGPUBusy != 0 || without.kernelGPU >= 600 {
		t.Errorf("no share: kernel batches on the busy GPU %d times (%d in all)", without.kernelGPUBusy, without.kernelGPU)
	}
	// Kernel batches that use 60 % exceed their 40 % share: they leave
	// the loaded GPU (on and off as laked's own use falls back under
	// the share), never all the time.
	greedy := simulate(40, 0.6)
	if greedy.kernelGPUBusy == greedy.steps {
		t.Errorf("share 40%%, kernel using 60%%: kept the GPU in every loaded step")
	}
}
