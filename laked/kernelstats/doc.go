// Package kernelstats exports the statistics kernel components publish in
// the region's feature registry as Prometheus metrics: the guardrail and
// decision counters of the dm-linnos target (revokes, revoke-cap hits,
// accuracy bypasses, deadline misses, fast-path fallbacks, ...), and any
// other kernel producer that follows the same convention.
//
// The convention (shm/PROTOCOL.md, "Kernel statistics"): a schema whose
// name starts with "stats." holds one key per kernel object (a target, a
// device) and the object records its current values as one record now and
// then (the dm target: every second); the newest record of each key is
// the current value. Every element of every integer or float field is
// exported as lake_kernel_stat{schema, key, field} (field "name[i]" for
// array elements), so a producer adds a statistic by adding a field, with
// no change here.
//
// What it trusts: nothing in the registry beyond the features package's
// validation (geometry, field layout); values are the producer's and are
// exported as they are. A schema or key that cannot be read is skipped
// and counted in lake_kernel_stats_errors_total.
package kernelstats
