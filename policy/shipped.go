package policy

import (
	"sort"

	"github.com/cilium/ebpf"
)

// shippedPolicy is one policy that comes with lake: its Go twin and, on
// little-endian architectures, its committed BPF object.
type shippedPolicy struct {
	goFn Func
	spec func() (*ebpf.CollectionSpec, error) // nil where no object is built
}

// Names of the shipped policies.
const (
	// ShippedDefault is the LAKE threshold policy (bpf/default.c).
	ShippedDefault = "default"
	// ShippedCostAware is the measured-cost policy (bpf/costaware.c).
	ShippedCostAware = "costaware"
)

// shipped is filled in by shipped_le.go with the BPF objects.
var shipped = map[string]*shippedPolicy{
	ShippedDefault:   {goFn: DefaultPolicy},
	ShippedCostAware: {goFn: CostAwarePolicy},
}

// defaultSyscallSpec is the default policy built as a sleepable
// BPF_PROG_TYPE_SYSCALL program (nil where no object is built); only the
// benchmark and tests use it.
var defaultSyscallSpec func() (*ebpf.CollectionSpec, error)

// Shipped returns the names of the policies that come with lake, sorted.
func Shipped() []string {
	names := make([]string, 0, len(shipped))
	for n := range shipped {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// GoPolicy returns the Go twin of a shipped policy, or nil if name is not a
// shipped policy.
func GoPolicy(name string) Func {
	if s, ok := shipped[name]; ok {
		return s.goFn
	}
	return nil
}
