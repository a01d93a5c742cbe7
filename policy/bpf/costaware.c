// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * costaware.c - pick the cheaper side from measured per-item latencies.
 *
 *   cpu_cost = batch * cpu_ns_per_item
 *   gpu_cost = gpu_batch_ns + batch * gpu_ns_per_item
 *
 * GPU when gpu_cost < cpu_cost (ties go to the CPU), never while the GPU is
 * over its utilisation cap or short of memory. Until both latencies are known
 * (either is 0) it uses the LAKE threshold rule so both sides get measured.
 * When it picks the CPU but the GPU is cheaper per item, the batch hint is the
 * smallest batch for which the GPU would win. Latencies and gpu_batch_ns are
 * clamped to LAKE_NS_CLAMP so the products cannot overflow.
 * Mirrored in Go by policy.CostAwarePolicy (policy/fallback.go).
 */
#include "policy_common.h"

SEC(LAKE_POLICY_SEC)
int lake_decide(struct lake_policy_ctx *ctx)
{
	struct lake_policy_params p;
	__u64 cpu, gpu, fixed, n, cpu_cost, gpu_cost, breakeven;

	lake_load_params(&p);
	if (!lake_gpu_available(ctx, &p))
		return LAKE_DECISION(LAKE_SIDE_CPU, 0);

	cpu = lake_clamp_ns(ctx->cpu_ns_per_item);
	gpu = lake_clamp_ns(ctx->gpu_ns_per_item);
	if (cpu == 0 || gpu == 0)
		return lake_threshold_rule(ctx, &p);

	fixed = lake_clamp_ns(p.gpu_batch_ns);
	n = ctx->batch_size;
	cpu_cost = n * cpu;
	gpu_cost = fixed + n * gpu;
	if (gpu_cost < cpu_cost)
		return LAKE_DECISION(LAKE_SIDE_GPU, 0);

	if (cpu <= gpu)
		return LAKE_DECISION(LAKE_SIDE_CPU, 0);
	breakeven = fixed / (cpu - gpu) + 1;
	if (breakeven > LAKE_HINT_MAX)
		breakeven = LAKE_HINT_MAX;
	return LAKE_DECISION(LAKE_SIDE_CPU, breakeven);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
