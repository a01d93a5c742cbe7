//go:build amd64 && !race

package features

import "unsafe"

// publishRecord is documented in publish.go; the body is publish_amd64.s.
//
//go:noescape
func publishRecord(seq *uint64, val uint64, dst, src unsafe.Pointer, words uintptr)

// writerRecord is Writer.Record: the owner's fast path, falling through
// (a tail jump) to writerRecordSlow. Being one call, Writer.Record inlines
// to it. The body is publish_amd64.s.
//
//go:noescape
func writerRecord(w *Writer, payload []byte) error
