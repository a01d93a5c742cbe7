package features

import "unsafe"

// The store half of the record protocol (shm/PROTOCOL.md, "Records") is
// publishRecord(seq, val, dst, src, words), declared per platform: it
// stores words 8-byte words from src (a private payload) to dst (a ring
// record's payload in the shared area) and then stores val to seq. The
// writer has already made the record's sequence odd with a CAS, which
// orders that store before these; the payload stores may be relaxed, and
// the final sequence store must be a release store, so that a reader that
// sees val also sees the payload.
//
// Two implementations:
//
//   - publish_amd64.s (amd64 without -race): plain MOVs. On x86-64 (TSO)
//     every store is a release store and stores are not reordered with
//     each other; the routine is assembly so that the Go compiler can
//     neither reorder nor merge the stores. This is what lake_features.h's
//     C producer does with __atomic_store_n(RELAXED) and
//     __atomic_store_n(RELEASE), which compile to the same MOVs.
//   - publish_generic.go (other architectures, and every -race build):
//     sync/atomic stores, sequentially consistent, which the race detector
//     understands. On amd64 each is an XCHG, a locked instruction (about
//     3 ns on the machine in docs/PERFORMANCE.md), which is why the
//     assembly exists.
//
// An owner's record (owner.go) needs no CAS: it stores seq = 2n+1 with a
// plain store too, then publishes as above, then stores the slot's write
// index. A record the owner itself published last can be touched by nobody
// else, and with x86-64's store order a reader that sees the payload
// change also sees the odd sequence (its second sequence load fails).
//
// writerRecord(w, payload) is Writer.Record: the owner's fast path (the
// checks and an owner's stores in one call; owner.go says when it
// declines), else writerRecordSlow.
//
// src need not be aligned (x86-64 and arm64 allow unaligned loads); dst is
// 8-byte aligned by the layout.

// payloadPtr returns the address of a payload slice's first byte (nil for
// an empty slice).
func payloadPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
