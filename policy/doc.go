// Package policy owns laked's per-batch placement decision: which side, CPU
// or GPU, runs a batch.
//
// The decision is made by an eBPF program running in the kernel. The ABI is
// one read-only context struct (Context, C: struct lake_policy_ctx in
// lakelib/include/lake_policy.h), one array map
// "lake_params" holding the tunables (Params), and the program's return value
// (Decision: bits 0..7 side, bits 8..31 a batch size hint).
//
// Two policies are shipped, compiled by bpf2go from bpf/*.c with the objects
// committed (little-endian only):
//
//   - "default": the LAKE rule, GPU only when the batch has at least
//     GPUMinBatch items (256) and GPU utilisation is below GPUMaxUtilPct (80)
//     and at least GPUMinMemMiB is free;
//   - "costaware": GPU when GPUBatchNs + n*gpu_ns < n*cpu_ns from measured
//     per-item latencies, with the LAKE rule until both are measured.
//
// Both judge the GPU's utilisation with the kernel's reserved share
// (EffectiveUtilPct; lake_effective_util_pct in C). LAKE gave the kernel
// the GPU only while the whole GPU was idle enough, so any userspace job
// on the GPU pushed every kernel batch to the CPU. Here a batch with
// items from kernel clients (Context.KernelItems) is judged by laked's
// own utilisation (GPUSelfUtilPct) instead of the whole GPU's while
// laked's own use is below Params.KernelGPUSharePct (config
// policy.kernel_gpu_share_pct, 0 = no reservation): up to that share the
// kernel's batches keep the GPU however loaded it is by others, beyond
// it they compete like everyone else. Batches from userspace clients of
// laked always see the whole GPU's utilisation.
//
// Engine loads a policy into the kernel and runs it once per batch with
// BPF_PROG_TEST_RUN on a BPF_PROG_TYPE_RAW_TRACEPOINT program. That mechanism
// was chosen by measurement over a sleepable BPF_PROG_TYPE_SYSCALL program
// (see BenchmarkDecide); objects with either type are accepted. Where BPF
// cannot be used, Engine runs the pure-Go twins of the shipped policies
// (DefaultPolicy, CostAwarePolicy), which give identical answers, and says
// why in Status. Policies are hot-swapped (LoadFile, LoadShipped) without
// blocking Decide; a policy that fails validation or the verifier is rejected
// with the verifier's log and the previous one stays active.
//
// GPU load comes from a LoadSource: StaticLoad (settable, for tests and
// simulation), BusyTime (utilisation from a backend's busy intervals) and
// NVML (github.com/NVIDIA/go-nvml, which loads libnvidia-ml at run time:
// no build tag, but it needs cgo: the static default build reports it
// unavailable, and on a host without the driver OpenNVML fails with the
// reason). Host CPU utilisation comes from ProcStat (/proc/stat).
package policy
