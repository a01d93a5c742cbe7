// Package snapshot owns lake's LiteFlow snapshot: the in-memory integer
// model (Snapshot), its versioned, checksummed binary format (Encode,
// Decode; specified byte by byte in liteflow/SNAPSHOT.md) and the Go
// reference integer engine that executes it (Snapshot.Run). Run and
// RunQuantized execute on vecmath (Net8: one AVX-512 call for small
// networks), RunBatch and RunQuantizedBatch several inputs side by side
// (Net8.RunBatch: 8 or 16 per pass over the weights), all bit for bit
// what the scalar engine (RunQuantizedReference) computes for each input.
//
// Decode treats its input as hostile: every length, offset, enum, scale,
// zero point, multiplier and bias is validated so that the engine can run
// without overflow or out-of-range access, and the C kernel engine can rely
// on the same checks.
package snapshot
