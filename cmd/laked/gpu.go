package main

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/policy"
)

// How often the slow load sources are re-read: NVML (several driver
// calls) and /proc/stat. The policy decides per batch from the last
// reading.
const (
	nvmlTTL       = 100 * time.Millisecond
	procStatEvery = 100 * time.Millisecond
	// selfWindow is the window of laked's own GPU busy time.
	selfWindow = time.Second
)

// loadSources are the policy's real inputs.
type loadSources struct {
	gpu  policy.LoadSource // NVML, cached; an idle GPU with no memory without it
	self *policy.BusyTime  // laked's own GPU busy time (fed by the GPU models)
	cpu  func() uint32     // host CPU utilisation (/proc/stat)
	nvml *policy.NVML
}

// newLoadSources opens NVML for GPU index (when the NVIDIA driver is
// installed) and /proc/stat, logging what is missing.
func newLoadSources(index int, log zerolog.Logger) *loadSources {
	s := &loadSources{gpu: policy.NewStaticLoad(policy.Load{})}
	s.self, _ = policy.NewBusyTime(selfWindow, nil) // the window is valid
	if n, err := policy.OpenNVML(index); err == nil {
		s.nvml = n
		s.gpu = policy.NewCached(n, nvmlTTL, nil)
		log.Info().Int("gpu", index).Msg("GPU load from NVML")
	} else {
		log.Info().Str("reason", err.Error()).Msg("no NVML: the policy sees an idle GPU with no free memory")
	}
	if p, err := policy.NewProcStat("/proc/stat", procStatEvery, nil); err == nil {
		s.cpu = p.Util
	} else {
		log.Warn().Err(err).Msg("no /proc/stat: the policy sees an idle CPU")
	}
	return s
}

func (s *loadSources) close() {
	if s.nvml != nil {
		s.nvml.Close()
	}
}

// timed records a GPU path's busy time in busy (laked's own GPU
// utilisation, which the kernel's reserved share is judged by).
func timed(busy *policy.BusyTime, f laked.GPUFunc) laked.GPUFunc {
	return func(in, out []byte, n int) error {
		busy.Begin(time.Now())
		err := f(in, out, n)
		_ = busy.End(time.Now()) // every Begin has its End
		return err
	}
}

// timedRuns is timed for a GPU runs path.
func timedRuns(busy *policy.BusyTime, f laked.GPURunsFunc) laked.GPURunsFunc {
	return func(ins, outs [][]byte, n int) error {
		busy.Begin(time.Now())
		err := f(ins, outs, n)
		_ = busy.End(time.Now()) // every Begin has its End
		return err
	}
}

// gpuMLP returns the function that gives an MLP its GPU path, timed in
// src.self; nil without a GPU. An MLP the GPU cannot take (its context
// or upload failed) stays on the CPU, which is logged.
func gpuMLP(gpu *gpuSetup, src *loadSources, log zerolog.Logger) func(*kernels.MLP) laked.GPURunsFunc {
	if gpu == nil {
		return nil
	}
	return func(m *kernels.MLP) laked.GPURunsFunc {
		f, err := gpu.mlp(m)
		if err != nil {
			log.Info().Err(err).Msg("MLP stays on the CPU")
			return nil
		}
		return timedRuns(src.self, f)
	}
}

// gpuSetup is an opened GPU (openGPU; only the cuda build has one).
type gpuSetup struct {
	be backend.Backend
	// linnos and mlp prepare a model for the GPU; their runs paths copy
	// records straight from and to clients' registered arenas.
	linnos func(*linnos.IntModel) (laked.GPURunsFunc, error)
	mlp    func(*kernels.MLP) (laked.GPURunsFunc, error)
	// snapshot prepares a LiteFlow snapshot image for the GPU, for
	// laked.LiteFlowModel.GPUPath (staged: LiteFlow routes and checks
	// each record in Go before the GPU sees it).
	snapshot func(img []byte) (laked.SnapshotRunner, error)
	close    func()
}
