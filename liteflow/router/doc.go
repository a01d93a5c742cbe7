// Package router owns LiteFlow's serving path: per application, an
// active/standby pair of snapshot slots read lock-free by queries, the
// install protocol that writes the standby and flips, reference counting
// that frees a replaced snapshot only when no query and no pinned flow uses
// it, and a flow cache that keeps every query of a flow on the snapshot the
// flow started with.
//
// # Install protocol
//
// Queries read the index of the active slot with an atomic load, announce
// themselves on that slot's in-flight counter, and re-check the index; if it
// changed they back off and retry, so a query never reads a slot the
// installer may be writing. Install (serialised by a mutex that queries
// never take) waits for the standby slot's in-flight counter to reach zero,
// writes the new snapshot into it, flips the index, then waits for the old
// slot's in-flight counter to drain and drops the slot's reference to the
// old snapshot. A snapshot is freed (OnFree is called and its buffers are
// recycled for a later install) when its reference count reaches zero:
// the slot's reference and one per flow pinned to it.
//
// # Flow cache
//
// A query with a non-zero flow id pins the flow to the snapshot that
// answers its first query; later queries of that flow use the pinned
// snapshot even after installs. The cache is split into Shards shards,
// each guarded by its own mutex (held for a map lookup, never during
// inference, never by Install) and each holding at most
// ceil(FlowCapacity/Shards) flows.
//
//   - Expiry: a flow not queried for FlowTTL is expired; expiry is applied
//     lazily when the flow is next looked up, when its shard needs room,
//     and by Sweep. An expired flow's next query starts it afresh on the
//     active snapshot.
//   - Eviction: inserting a new flow into a full shard first drops one
//     expired flow if the least recently used one is expired, otherwise it
//     evicts the least recently used flow. An evicted flow that queries
//     again restarts on the active snapshot (Stats.Evictions counts them;
//     size FlowCapacity above the number of live flows to avoid it).
//   - EndFlow removes a flow explicitly.
//
// Flow id 0 means "no flow": the query is answered by the active snapshot
// and nothing is cached.
//
// QueryBatch answers many queries, each exactly as Query would, running
// consecutive rows answered by the same snapshot together
// (snapshot.RunBatch); laked's LiteFlow model serves its batches through
// it.
package router
