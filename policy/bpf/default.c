// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * default.c - the LAKE threshold policy: run a batch on the GPU only when it
 * has at least gpu_min_batch items (default 256) and GPU utilisation is below
 * gpu_max_util_pct (default 80) with at least gpu_min_mem_mib MiB free.
 * Mirrored in Go by policy.DefaultPolicy (policy/fallback.go).
 */
#include "policy_common.h"

SEC(LAKE_POLICY_SEC)
int lake_decide(struct lake_policy_ctx *ctx)
{
	struct lake_policy_params p;

	lake_load_params(&p);
	return lake_threshold_rule(ctx, &p);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
