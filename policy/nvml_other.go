//go:build !(linux && cgo)

package policy

import "fmt"

// OpenNVML needs cgo (github.com/NVIDIA/go-nvml loads the library with
// dlopen); a build without it has no NVML.
func OpenNVML(index int) (*NVML, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrNVMLUnavailable)
}
