// Package features owns LAKE's cross-subsystem feature store: a lock-free
// registry of feature schemas and per-key sample histories that lives
// entirely inside a caller-provided memory area (in production an area of
// the shared-memory region, so that a C producer such as the kernel module
// can record samples that laked reads).
//
// What it offers:
//
//   - Register a Schema (name, typed fields with widths, history length per
//     key, key capacity) and get a SchemaID.
//   - Record a sample for a u64 key (a device, a flow) from any goroutine,
//     process or CPU without locks: a per-key atomic fetch-add reserves a
//     record in a ring and a per-record sequence number (seqlock style)
//     marks it in progress or complete. Writers never block or wait.
//     Registry.Key returns a KeyHandle that skips the key lookup for
//     producers with a fixed set of keys.
//   - Own a key: Registry.Own returns a Writer for a producer that is the
//     key's only writer (one per device or CPU). It records with plain
//     stores, no atomic read-modify-write (on amd64, a few MOVs in
//     assembly; see publish.go), while readers and drainers see the key as
//     usual and other writers get ErrOwned. A key whose owner process died
//     is taken over.
//   - ReadWindow: the latest N complete samples of a key, oldest first;
//     readers validate every record's sequence before and after the copy
//     and never return a torn or reordered sample.
//   - Build a model input vector (CompileVector / Vector.Build), with
//     LinnOS-style decimal digit expansion; LinnOS wires up the 31-input
//     LinnOS feature vector.
//   - Drainer: training capture that hands out every recorded sample once,
//     in batches, and counts samples it could not deliver (Batch.Dropped).
//   - Schemas, Keys, DropKey for inspection and key removal.
//
// The memory is untrusted: Attach validates every header field against the
// length of the area, schema descriptors are validated and copied before
// use, and every offset derived from shared words is reduced into bounds, so
// a corrupt or hostile area yields errors, never a panic or an access
// outside the slice.
//
// The byte layout and the seqlock/memory-ordering protocol are specified in
// shm/PROTOCOL.md, "Feature registry area"; lakelib/include/lake_features.h declares the same layout for C.
// The layout is little-endian (x86-64 and arm64 are supported); Create and
// Attach refuse to run on a big-endian machine.
package features
