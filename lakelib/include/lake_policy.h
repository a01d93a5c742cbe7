/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lake_policy.h - the contract between laked and an eBPF scheduling policy.
 *
 * This header is the single C definition of the policy ABI. The Go mirror is
 * policy.Context / policy.Params in policy/context.go; a test
 * (TestLayoutMatchesBTF) compares them with the compiled C and fails if the
 * two drift. The shipped policies (policy/bpf) include it from here.
 *
 * A policy object must contain:
 *   - a program named "lake_decide" in section "raw_tp" (preferred: fastest
 *     to run, see policy/doc.go) or "syscall" (sleepable); its context is a
 *     read-only struct lake_policy_ctx (56 bytes, little-endian, no padding);
 *   - an array map named "lake_params": key __u32 (index 0), value
 *     struct lake_policy_params (32 bytes), at least 1 entry. laked writes it.
 *
 * Return value of lake_decide (a __u32):
 *   bits 0..7   side: LAKE_SIDE_CPU (0) or LAKE_SIDE_GPU (1); other values
 *               are rejected by laked, which then uses its built-in policy;
 *   bits 8..31  batch size hint (0 = no hint): the batch size at which the
 *               policy would change its mind, so the batcher may wait for it.
 *   Build it with LAKE_DECISION(side, hint).
 */
#ifndef LAKE_POLICY_H
#define LAKE_POLICY_H

#if defined(__bpf__) && !defined(LAKE_POLICY_HAVE_TYPES)
/* Self-contained for BPF builds: no host or libbpf headers needed. */
typedef unsigned int __u32;
typedef unsigned long long __u64;
#else
#include <linux/types.h>
#endif

#define LAKE_SIDE_CPU 0u
#define LAKE_SIDE_GPU 1u
#define LAKE_HINT_MAX 0xffffffu
#define LAKE_DECISION(side, hint) \
	(((__u32)(side) & 0xffu) | (((__u32)(hint) & LAKE_HINT_MAX) << 8))

/* Per-item latencies above this are clamped so cost products fit in 64 bits. */
#define LAKE_NS_CLAMP 0xffffffffull

/* What laked knows when it must place one batch. Offsets are fixed. */
struct lake_policy_ctx {
	__u32 model_id;         /*  0: model the batch is for */
	__u32 batch_size;       /*  4: requests in the batch */
	__u32 queue_depth;      /*  8: requests still waiting behind it */
	__u32 gpu_util_pct;     /* 12: GPU utilisation, 0..100 */
	__u32 gpu_mem_free_mib; /* 16: free GPU memory, MiB */
	__u32 cpu_util_pct;     /* 20: CPU utilisation, 0..100 */
	__u64 cpu_ns_per_item;  /* 24: recent CPU latency per item, ns (0 = unknown) */
	__u64 gpu_ns_per_item;  /* 32: recent GPU latency per item, ns (0 = unknown) */
	__u32 gpu_other_procs;  /* 40: other processes using the GPU (NVML; 0 = none or unknown) */
	__u32 gpu_self_util_pct; /* 44: laked's own part of gpu_util_pct, 0..100 (its GPU busy time) */
	__u32 kernel_items;     /* 48: items in the batch submitted by kernel clients (/dev/lake) */
	__u32 reserved;         /* 52: 0 */
};                              /* 56 bytes */

/* Tunables laked writes into map "lake_params" at key 0. */
struct lake_policy_params {
	__u32 gpu_min_batch;    /*  0: GPU only for batches >= this (default 256) */
	__u32 gpu_max_util_pct; /*  4: GPU only while utilisation < this (default 80) */
	__u32 gpu_min_mem_mib;  /*  8: GPU only with at least this much free (default 0) */
	__u32 kernel_gpu_share_pct; /* 12: GPU share reserved for kernel batches, 0..100 (0 = none) */
	__u64 gpu_batch_ns;     /* 16: cost policy: fixed GPU cost per batch, ns (default 0) */
	__u64 reserved2;        /* 24: must be 0 */
};                              /* 32 bytes */

/*
 * The kernel's reserved GPU share (both shipped policies): a batch with
 * kernel items judges the GPU by laked's own utilisation alone, not the
 * whole GPU's, while laked's own utilisation is below kernel_gpu_share_pct.
 * Userspace processes loading the GPU can then push kernel batches off it
 * only once laked already uses the reserved share; batches from userspace
 * clients of laked always see the whole GPU's utilisation.
 */
static inline __u32 lake_effective_util_pct(const struct lake_policy_ctx *ctx,
					    const struct lake_policy_params *p)
{
	if (ctx->kernel_items > 0 && ctx->gpu_self_util_pct < p->kernel_gpu_share_pct &&
	    ctx->gpu_self_util_pct < ctx->gpu_util_pct)
		return ctx->gpu_self_util_pct;
	return ctx->gpu_util_pct;
}

/* Re-derived from the vectorised CPU cost (docs/PERFORMANCE.md, issue 15). */
#define LAKE_DEFAULT_GPU_MIN_BATCH 256u
#define LAKE_DEFAULT_GPU_MAX_UTIL_PCT 80u

#endif /* LAKE_POLICY_H */
