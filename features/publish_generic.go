//go:build !amd64 || race

package features

import (
	"sync/atomic"
	"unsafe"
)

// publishRecord is documented in publish.go: sync/atomic stores, for
// architectures without the assembly and for -race builds.
func publishRecord(seq *uint64, val uint64, dst, src unsafe.Pointer, words uintptr) {
	for i := uintptr(0); i < words; i++ {
		atomic.StoreUint64((*uint64)(unsafe.Add(dst, i*8)), *(*uint64)(unsafe.Add(src, i*8)))
	}
	atomic.StoreUint64(seq, val)
}

// ownedWrite is the fast path of writerRecord (the Go version of the
// assembly in publish_amd64.s).
func ownedWrite(h *ownedHot, src unsafe.Pointer) bool {
	if atomic.LoadUint64(h.state) != h.want {
		return false
	}
	n := h.next
	if n < h.fastFrom {
		return false
	}
	seq := (*uint64)(unsafe.Add(h.ring, (n&h.mask)*h.stride))
	atomic.StoreUint64(seq, 2*n+1)
	publishRecord(seq, 2*n+2, unsafe.Add(unsafe.Pointer(seq), recHdrSize), src, h.words)
	atomic.StoreUint64(h.widx, n+1)
	h.next = n + 1
	return true
}

// writerRecord is Writer.Record (see publish_amd64.s).
func writerRecord(w *Writer, payload []byte) error {
	if len(payload) == w.hot.size && ownedWrite(&w.hot, payloadPtr(payload)) {
		return nil
	}
	return writerRecordSlow(w, payload)
}
