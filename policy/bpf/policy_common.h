/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * policy_common.h - BPF-side helpers shared by the shipped lake policies.
 * Self-contained (no libbpf headers) so `go generate` needs only clang.
 */
#ifndef LAKE_POLICY_COMMON_H
#define LAKE_POLICY_COMMON_H

#include "lake_policy.h"

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_ARRAY 2

/* Helper 1: bpf_map_lookup_elem. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

/*
 * Shipped policies are built as raw_tp programs (cheapest BPF_PROG_TEST_RUN
 * path, see policy/doc.go); -DLAKE_POLICY_SYSCALL builds the same code as a
 * sleepable BPF_PROG_TYPE_SYSCALL program, kept for the benchmark.
 */
#ifdef LAKE_POLICY_SYSCALL
#define LAKE_POLICY_SEC "syscall"
#else
#define LAKE_POLICY_SEC "raw_tp"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lake_policy_params);
} lake_params SEC(".maps");

/* Reads the tunables, falling back to the documented defaults. */
static __always_inline void lake_load_params(struct lake_policy_params *out)
{
	__u32 key = 0;
	struct lake_policy_params *p = bpf_map_lookup_elem(&lake_params, &key);

	if (p) {
		*out = *p;
		return;
	}
	out->gpu_min_batch = LAKE_DEFAULT_GPU_MIN_BATCH;
	out->gpu_max_util_pct = LAKE_DEFAULT_GPU_MAX_UTIL_PCT;
	out->gpu_min_mem_mib = 0;
	out->kernel_gpu_share_pct = 0;
	out->gpu_batch_ns = 0;
	out->reserved2 = 0;
}

/*
 * The GPU can take work: utilisation (with the kernel's reserved share,
 * lake_effective_util_pct) below the cap and enough free memory.
 */
static __always_inline int lake_gpu_available(const struct lake_policy_ctx *ctx,
					      const struct lake_policy_params *p)
{
	return lake_effective_util_pct(ctx, p) < p->gpu_max_util_pct &&
	       ctx->gpu_mem_free_mib >= p->gpu_min_mem_mib;
}

/* The LAKE rule: GPU for large-enough batches while the GPU has room. */
static __always_inline __u32 lake_threshold_rule(const struct lake_policy_ctx *ctx,
						 const struct lake_policy_params *p)
{
	if (ctx->batch_size >= p->gpu_min_batch && lake_gpu_available(ctx, p))
		return LAKE_DECISION(LAKE_SIDE_GPU, 0);
	return LAKE_DECISION(LAKE_SIDE_CPU, 0);
}

static __always_inline __u64 lake_clamp_ns(__u64 v)
{
	return v > LAKE_NS_CLAMP ? LAKE_NS_CLAMP : v;
}

#endif /* LAKE_POLICY_COMMON_H */
