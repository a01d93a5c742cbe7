//go:build linux && cgo

package policy

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// goNVML is gpuDevice on github.com/NVIDIA/go-nvml.
type goNVML struct {
	lib nvml.Interface
	dev nvml.Device
}

func nvmlError(r nvml.Return) error {
	if r == nvml.SUCCESS {
		return nil
	}
	return fmt.Errorf("%s (NVML %d)", r.Error(), int32(r))
}

// OpenNVML loads libnvidia-ml.so.1, initialises it and opens the GPU with
// the given index. Without the library, the driver or the GPU it fails
// with an error wrapping ErrNVMLUnavailable.
func OpenNVML(index int) (n *NVML, err error) {
	defer func() {
		// go-nvml panics when the library cannot be loaded in some paths.
		if p := recover(); p != nil {
			n, err = nil, fmt.Errorf("%w: %v", ErrNVMLUnavailable, p)
		}
	}()
	lib := nvml.New()
	if r := lib.Init(); r != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: init: %v", ErrNVMLUnavailable, nvmlError(r))
	}
	dev, r := lib.DeviceGetHandleByIndex(index)
	if r != nvml.SUCCESS {
		lib.Shutdown()
		return nil, fmt.Errorf("%w: GPU %d: %v", ErrNVMLUnavailable, index, nvmlError(r))
	}
	return newNVML(&goNVML{lib: lib, dev: dev}), nil
}

func (g *goNVML) Utilization() (uint32, error) {
	u, r := g.dev.GetUtilizationRates()
	return u.Gpu, nvmlError(r)
}

func (g *goNVML) MemoryFree() (uint64, error) {
	m, r := g.dev.GetMemoryInfo()
	return m.Free, nvmlError(r)
}

func (g *goNVML) Processes() ([]uint32, error) {
	var pids []uint32
	c, r := g.dev.GetComputeRunningProcesses()
	if r != nvml.SUCCESS {
		return nil, nvmlError(r)
	}
	for _, p := range c {
		pids = append(pids, p.Pid)
	}
	if gr, r := g.dev.GetGraphicsRunningProcesses(); r == nvml.SUCCESS {
		for _, p := range gr {
			pids = append(pids, p.Pid)
		}
	}
	return pids, nil
}

func (g *goNVML) Close() error { return nvmlError(g.lib.Shutdown()) }
