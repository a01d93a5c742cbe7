//go:build nvml && linux && cgo

package policy

/*
#cgo LDFLAGS: -lnvidia-ml
// The few NVML declarations used, copied from nvml.h (ABI-stable), so the
// build needs libnvidia-ml but not the CUDA headers.
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } nvmlMemory_t;
int nvmlInit_v2(void);
int nvmlShutdown(void);
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);
int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
const char *nvmlErrorString(int result);
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
)

// NVML is a LoadSource reading one GPU's utilisation and free memory from
// NVIDIA's management library. Built only with the "nvml" tag (and cgo);
// needs libnvidia-ml at link and run time.
type NVML struct {
	mu     sync.Mutex
	dev    C.nvmlDevice_t
	closed bool
}

func nvmlErr(what string, r C.int) error {
	return fmt.Errorf("nvml: %s: %s (code %d)", what, C.GoString(C.nvmlErrorString(r)), int(r))
}

// OpenNVML initialises NVML and opens the GPU with the given index.
func OpenNVML(index uint) (*NVML, error) {
	if r := C.nvmlInit_v2(); r != 0 {
		return nil, nvmlErr("init", r)
	}
	n := &NVML{}
	if r := C.nvmlDeviceGetHandleByIndex_v2(C.uint(index), &n.dev); r != 0 {
		C.nvmlShutdown()
		return nil, nvmlErr(fmt.Sprintf("open GPU %d", index), r)
	}
	return n, nil
}

// Sample reads utilisation (NVML's sampling window, driver-defined) and free
// memory.
func (n *NVML) Sample() (Load, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Load{}, errors.New("nvml: closed")
	}
	var u C.nvmlUtilization_t
	if r := C.nvmlDeviceGetUtilizationRates(n.dev, &u); r != 0 {
		return Load{}, nvmlErr("utilisation", r)
	}
	var m C.nvmlMemory_t
	if r := C.nvmlDeviceGetMemoryInfo(n.dev, &m); r != 0 {
		return Load{}, nvmlErr("memory info", r)
	}
	free := uint64(m.free) >> 20
	if free > 0xffffffff {
		free = 0xffffffff
	}
	return Load{GPUUtilPct: min(uint32(u.gpu), 100), GPUMemFreeMiB: uint32(free)}, nil
}

// Close shuts NVML down.
func (n *NVML) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if r := C.nvmlShutdown(); r != 0 {
		return nvmlErr("shutdown", r)
	}
	return nil
}
