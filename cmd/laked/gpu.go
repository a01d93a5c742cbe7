package main

import (
	"sync/atomic"
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
	loadEvery = 100 * time.Millisecond
	// selfWindow is the window of laked's own GPU busy time.
	selfWindow = time.Second
)

// loadSources are the policy's real inputs. The slow ones (NVML,
// /proc/stat) are read by a goroutine of their own every loadEvery; the
// per-batch decision reads their last values from atomics, so no predict
// ever waits for a driver call or a file read (before, the predict that
// came after each interval did the reading itself).
type loadSources struct {
	gpu  policy.LoadSource // NVML's last reading; an idle GPU with no memory without it
	self *policy.BusyTime  // laked's own GPU busy time (fed by the GPU models)
	cpu  func() uint32     // host CPU utilisation (/proc/stat), last reading
	nvml *policy.NVML

	lastGPU atomic.Pointer[loadReading]
	lastCPU atomic.Uint32
	// wanted: a decision read the load since the last sample. The
	// sampler reads the slow sources only then, so an idle laked reads
	// no /proc/stat and calls no driver (the first decision after an
	// idle spell sees the reading from before it, refreshed within
	// loadEvery).
	wanted atomic.Bool
	stop   chan struct{}
	done   chan struct{}
}

type loadReading struct {
	l   policy.Load
	err error
}

// polledGPU is a LoadSource answering NVML's last reading.
type polledGPU struct{ s *loadSources }

func (p polledGPU) Sample() (policy.Load, error) {
	p.s.want()
	r := p.s.lastGPU.Load()
	return r.l, r.err
}

// newLoadSources opens NVML for GPU index (when the NVIDIA driver is
// installed) and /proc/stat, logging what is missing, and starts reading
// them in the background.
func newLoadSources(index int, log zerolog.Logger) *loadSources {
	var sampleGPU func() (policy.Load, error)
	var sampleCPU func() uint32
	var nvml *policy.NVML
	if n, err := policy.OpenNVML(index); err == nil {
		nvml, sampleGPU = n, n.Sample
		log.Info().Int("gpu", index).Msg("GPU load from NVML")
	} else {
		log.Info().Str("reason", err.Error()).Msg("no NVML: the policy sees an idle GPU with no free memory")
	}
	if p, err := policy.NewProcStat("/proc/stat", loadEvery/2, nil); err == nil {
		sampleCPU = p.Util
	} else {
		log.Warn().Err(err).Msg("no /proc/stat: the policy sees an idle CPU")
	}
	s := startLoadSources(sampleGPU, sampleCPU, loadEvery)
	s.nvml = nvml
	return s
}

// startLoadSources samples sampleGPU and sampleCPU (either may be nil:
// no such source) once now, at the first tick, and then at every tick
// (every every) after a decision read the load, on a goroutine of their
// own, until close.
func startLoadSources(sampleGPU func() (policy.Load, error), sampleCPU func() uint32, every time.Duration) *loadSources {
	s := &loadSources{stop: make(chan struct{}), done: make(chan struct{})}
	s.self, _ = policy.NewBusyTime(selfWindow, nil) // the window is valid
	s.gpu = policy.NewStaticLoad(policy.Load{})
	if sampleGPU != nil {
		s.gpu = polledGPU{s}
	}
	if sampleCPU != nil {
		s.cpu = func() uint32 {
			s.want()
			return s.lastCPU.Load()
		}
	}
	sample := func() {
		if sampleGPU != nil {
			l, err := sampleGPU()
			s.lastGPU.Store(&loadReading{l, err})
		}
		if sampleCPU != nil {
			s.lastCPU.Store(sampleCPU())
		}
	}
	sample()
	s.wanted.Store(true) // and once more at the first tick
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if s.wanted.Swap(false) {
					sample()
				}
			}
		}
	}()
	return s
}

// want records that a decision read the load (a store only when the
// flag is clear, so decisions do not write a shared line every batch).
func (s *loadSources) want() {
	if !s.wanted.Load() {
		s.wanted.Store(true)
	}
}

func (s *loadSources) close() {
	close(s.stop)
	<-s.done
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
