//go:build !linux

package policy

import (
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
)

// kernelProg is a policy loaded into the kernel; never built off Linux.
type kernelProg struct{}

func loadKernel(*ebpf.CollectionSpec) (*kernelProg, error) {
	return nil, fmt.Errorf("%w: not supported on %s", ErrNoBPF, runtime.GOOS)
}

func (k *kernelProg) run(*Context) (uint32, error) {
	return 0, fmt.Errorf("%w: not supported on %s", ErrNoBPF, runtime.GOOS)
}

func (k *kernelProg) setParams(Params) error {
	return fmt.Errorf("%w: not supported on %s", ErrNoBPF, runtime.GOOS)
}

func (k *kernelProg) close() {}
