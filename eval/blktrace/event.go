package blktrace

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EventSize is the size in bytes of one ring-buffer record.
const EventSize = 48

// Kind says which tracepoint produced an event.
type Kind uint8

// Event kinds.
const (
	// KindIssue is a request handed to the device driver (block_rq_issue).
	KindIssue Kind = 1
	// KindComplete is the completion of a request whose issue was seen
	// (block_rq_complete).
	KindComplete Kind = 2
)

// Op is a request's direction, from the tracepoint's rwbs string.
type Op uint8

// Ops.
const (
	OpOther   Op = 0 // anything else (e.g. a zone operation)
	OpRead    Op = 1
	OpWrite   Op = 2
	OpDiscard Op = 3
)

// String returns "R", "W", "D" or "?".
func (o Op) String() string {
	switch o {
	case OpRead:
		return "R"
	case OpWrite:
		return "W"
	case OpDiscard:
		return "D"
	}
	return "?"
}

// ErrEvent is wrapped by every DecodeEvent error.
var ErrEvent = errors.New("blktrace: bad event")

// Event is one traced block request.
type Event struct {
	Kind Kind
	Op   Op
	// Dev is the kernel dev_t: major<<20 | minor.
	Dev uint32
	// Sector is the first 512-byte sector.
	Sector uint64
	// Bytes is the request size.
	Bytes uint32
	// QueueDepth is the number of requests in flight on Dev when this one
	// was issued, not counting itself, from a kernel counter that drifts up
	// by one per missed completion (see Stats; DepthTracker and
	// Tracer.Reset correct for it).
	QueueDepth uint32
	// IssueNs and DoneNs are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns);
	// DoneNs is 0 for an issue event.
	IssueNs, DoneNs uint64
	// Error is the completion's blk_status_t (0 = success).
	Error int32
}

// LatencyNs is DoneNs-IssueNs for a completion, 0 for an issue.
func (e Event) LatencyNs() uint64 {
	if e.Kind != KindComplete {
		return 0
	}
	return e.DoneNs - e.IssueNs
}

// Major and Minor split Dev.
func (e Event) Major() uint32 { return e.Dev >> 20 }

// Minor is the minor number of Dev.
func (e Event) Minor() uint32 { return e.Dev & (1<<20 - 1) }

// KernelDev encodes major:minor the way the kernel's dev_t (and so the
// tracepoints) do.
func KernelDev(major, minor uint32) uint32 { return major<<20 | minor&(1<<20-1) }

// DecodeEvent decodes one ring-buffer record. The record comes from the
// kernel but is still checked: exact size, known kind and op, zero padding,
// completion not before issue, and a non-zero size.
func DecodeEvent(b []byte) (Event, error) {
	if len(b) != EventSize {
		return Event{}, fmt.Errorf("%w: %d bytes, want %d", ErrEvent, len(b), EventSize)
	}
	le := binary.LittleEndian
	e := Event{
		IssueNs:    le.Uint64(b[0:]),
		DoneNs:     le.Uint64(b[8:]),
		Sector:     le.Uint64(b[16:]),
		Dev:        le.Uint32(b[24:]),
		Bytes:      le.Uint32(b[28:]),
		QueueDepth: le.Uint32(b[32:]),
		Error:      int32(le.Uint32(b[36:])),
		Kind:       Kind(b[40]),
		Op:         Op(b[41]),
	}
	for i, p := range b[42:48] {
		if p != 0 {
			return Event{}, fmt.Errorf("%w: padding byte %d is %#x", ErrEvent, 42+i, p)
		}
	}
	switch e.Kind {
	case KindIssue:
		if e.DoneNs != 0 || e.Error != 0 {
			return Event{}, fmt.Errorf("%w: issue event with completion fields", ErrEvent)
		}
	case KindComplete:
		if e.DoneNs < e.IssueNs {
			return Event{}, fmt.Errorf("%w: completion at %d ns before issue at %d ns", ErrEvent, e.DoneNs, e.IssueNs)
		}
	default:
		return Event{}, fmt.Errorf("%w: unknown kind %d", ErrEvent, e.Kind)
	}
	if e.Op > OpDiscard {
		return Event{}, fmt.Errorf("%w: unknown op %d", ErrEvent, e.Op)
	}
	if e.Bytes == 0 {
		return Event{}, fmt.Errorf("%w: zero-length request", ErrEvent)
	}
	return e, nil
}

// AppendEvent appends the wire form of e (the inverse of DecodeEvent; used
// by tests and to store traces).
func AppendEvent(dst []byte, e Event) []byte {
	var b [EventSize]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], e.IssueNs)
	le.PutUint64(b[8:], e.DoneNs)
	le.PutUint64(b[16:], e.Sector)
	le.PutUint32(b[24:], e.Dev)
	le.PutUint32(b[28:], e.Bytes)
	le.PutUint32(b[32:], e.QueueDepth)
	le.PutUint32(b[36:], uint32(e.Error))
	b[40] = byte(e.Kind)
	b[41] = byte(e.Op)
	return append(dst, b[:]...)
}
