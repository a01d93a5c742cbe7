package policy

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
)

// gpuDevice is what NVML reads from one GPU. The real one is
// github.com/NVIDIA/go-nvml (nvml_cgo.go); tests fake it.
type gpuDevice interface {
	// Utilization is the GPU's utilisation in percent over the driver's
	// sampling window.
	Utilization() (uint32, error)
	// MemoryFree is the free device memory in bytes.
	MemoryFree() (uint64, error)
	// Processes lists the pids of processes with a context on the GPU
	// (compute and graphics).
	Processes() ([]uint32, error)
	// Close releases the library.
	Close() error
}

// NVML is a LoadSource reading one GPU's utilisation, free memory and
// the other processes using it from NVIDIA's management library, which
// github.com/NVIDIA/go-nvml loads at run time (no build tag; without the
// driver OpenNVML fails and laked keeps the other sources). A sample
// costs several driver calls: wrap it in a Cached source on the hot path.
type NVML struct {
	mu     sync.Mutex
	dev    gpuDevice
	self   uint32
	closed bool
}

// ErrNVMLUnavailable is wrapped by OpenNVML when the library, the driver
// or the GPU is missing.
var ErrNVMLUnavailable = errors.New("nvml: unavailable")

func newNVML(dev gpuDevice) *NVML {
	return &NVML{dev: dev, self: uint32(os.Getpid())}
}

// Sample reads utilisation, free memory and the processes other than
// this one using the GPU. A failed process query is not fatal (it needs
// privileges on some systems): the count is then 0, unknown.
func (n *NVML) Sample() (Load, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Load{}, errors.New("nvml: closed")
	}
	u, err := n.dev.Utilization()
	if err != nil {
		return Load{}, fmt.Errorf("nvml: utilisation: %w", err)
	}
	free, err := n.dev.MemoryFree()
	if err != nil {
		return Load{}, fmt.Errorf("nvml: memory: %w", err)
	}
	l := Load{GPUUtilPct: min(u, 100), GPUMemFreeMiB: uint32(min(free>>20, math.MaxUint32))}
	if pids, err := n.dev.Processes(); err == nil {
		seen := make(map[uint32]bool, len(pids))
		for _, p := range pids {
			if p != n.self && !seen[p] {
				seen[p] = true
			}
		}
		l.GPUOtherProcs = uint32(min(len(seen), math.MaxUint32))
	}
	return l, nil
}

// Close shuts NVML down.
func (n *NVML) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	return n.dev.Close()
}
