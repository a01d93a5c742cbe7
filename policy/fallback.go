package policy

// Func is a policy implemented in Go. It must give the same answer as the BPF
// program it mirrors for every context and params.
type Func func(c *Context, p *Params) Decision

// nsClamp mirrors LAKE_NS_CLAMP.
const nsClamp = 0xffffffff

func clampNs(v uint64) uint64 {
	if v > nsClamp {
		return nsClamp
	}
	return v
}

// EffectiveUtilPct is the GPU utilisation a batch is judged by (the
// kernel's reserved share, lake_effective_util_pct in lake_policy.h): a
// batch with kernel items sees only laked's own utilisation while that
// is below KernelGPUSharePct, so userspace GPU load cannot push kernel
// work off the GPU until laked uses the reserved share; every other batch
// sees the whole GPU's utilisation.
func EffectiveUtilPct(c *Context, p *Params) uint32 {
	if c.KernelItems > 0 && c.GPUSelfUtilPct < p.KernelGPUSharePct && c.GPUSelfUtilPct < c.GPUUtilPct {
		return c.GPUSelfUtilPct
	}
	return c.GPUUtilPct
}

func gpuAvailable(c *Context, p *Params) bool {
	return EffectiveUtilPct(c, p) < p.GPUMaxUtilPct && c.GPUMemFreeMiB >= p.GPUMinMemMiB
}

func thresholdRule(c *Context, p *Params) Decision {
	if c.BatchSize >= p.GPUMinBatch && gpuAvailable(c, p) {
		return Decision{Side: GPU}
	}
	return Decision{Side: CPU}
}

// DefaultPolicy is the Go twin of bpf/default.c, the LAKE rule: GPU when the
// batch has at least GPUMinBatch items, GPU utilisation is below
// GPUMaxUtilPct and at least GPUMinMemMiB MiB are free. It never hints.
func DefaultPolicy(c *Context, p *Params) Decision {
	return thresholdRule(c, p)
}

// CostAwarePolicy is the Go twin of bpf/costaware.c: with the GPU available,
// GPU when GPUBatchNs + n*GPUNsPerItem < n*CPUNsPerItem; the LAKE rule while
// either latency is unknown (0). Choosing the CPU although the GPU is cheaper
// per item, it hints the smallest batch for which the GPU would win.
func CostAwarePolicy(c *Context, p *Params) Decision {
	if !gpuAvailable(c, p) {
		return Decision{Side: CPU}
	}
	cpu, gpu := clampNs(c.CPUNsPerItem), clampNs(c.GPUNsPerItem)
	if cpu == 0 || gpu == 0 {
		return thresholdRule(c, p)
	}
	fixed := clampNs(p.GPUBatchNs)
	n := uint64(c.BatchSize)
	if fixed+n*gpu < n*cpu {
		return Decision{Side: GPU}
	}
	if cpu <= gpu {
		return Decision{Side: CPU}
	}
	breakeven := fixed/(cpu-gpu) + 1
	if breakeven > MaxBatchHint {
		breakeven = MaxBatchHint
	}
	return Decision{Side: CPU, BatchHint: uint32(breakeven)}
}
