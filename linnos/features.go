package linnos

import "fmt"

// Feature layout constants: the layout of LinnOS and LAKE (their trace
// parser, traceParser.py, and the kernel code that runs their weight
// headers). A feature vector is NumInputs decimal digits, each value most
// significant digit first; the history is that of the last 4 completed
// *reads* of the device, oldest first:
//
//	[0:12]  pending count when each of the last 4 completed reads arrived
//	        (4×3 digits, clamped to 999)
//	[12:15] pending count now, at the arrival of the read being predicted
//	        (3 digits, clamped to 999)
//	[15:31] latency in µs of each of the last 4 completed reads (4×4 digits,
//	        clamped to 9999)
//
// A pending count includes the arriving I/O itself (LinnOS adds the I/O to
// the device's count before it reads it), and counts reads and writes in
// the file's PendingUnit. History a device does not have yet is 0. Weight
// files of FormatVersion 1 were trained on another layout and are refused.
const (
	NumInputs      = 31
	HistoryLen     = 4
	PendingDigits  = 3
	LatencyDigits  = 4
	MaxPending     = 999
	MaxLatencyUs   = 9999
	pendingNowOff  = PendingDigits * HistoryLen       // 12
	latencyOffset  = PendingDigits * (HistoryLen + 1) // 15
	pageSize       = 4096
	maxPendingSize = 1 << 30
)

// PendingUnit says what the "pending" feature counts.
type PendingUnit int

const (
	// PendingIOs counts outstanding I/O requests (the LinnOS default).
	PendingIOs PendingUnit = iota
	// PendingPages counts outstanding 4 KiB pages (a 64 KiB read counts 16).
	PendingPages
)

// String returns "ios" or "pages".
func (u PendingUnit) String() string {
	switch u {
	case PendingIOs:
		return "ios"
	case PendingPages:
		return "pages"
	}
	return fmt.Sprintf("PendingUnit(%d)", int(u))
}

// ParsePendingUnit parses "ios" or "pages".
func ParsePendingUnit(s string) (PendingUnit, error) {
	switch s {
	case "ios", "io", "":
		return PendingIOs, nil
	case "pages", "page":
		return PendingPages, nil
	}
	return 0, fmt.Errorf("linnos: unknown pending unit %q (want ios or pages)", s)
}

// Weight returns how much one I/O of size bytes adds to the pending count.
func (u PendingUnit) Weight(size int64) int {
	if u != PendingPages {
		return 1
	}
	if size <= 0 {
		return 1
	}
	if size > maxPendingSize {
		size = maxPendingSize
	}
	return int((size + pageSize - 1) / pageSize)
}

// Extractor keeps one device's history (for each of the last 4 completed
// reads, the pending count at its arrival and its latency) and turns it
// into feature vectors. It is a plain value type; it is not safe for
// concurrent use.
type Extractor struct {
	pending [HistoryLen]int // at each history read's arrival, oldest first
	lat     [HistoryLen]int // µs, oldest first
}

// Features writes the NumInputs digits for a read arriving while pending
// I/Os (or pages, counting the arriving read) are outstanding on the device
// into dst[:NumInputs]. It does not change the history.
func (e *Extractor) Features(pending int, dst []int32) {
	_ = dst[NumInputs-1]
	for i := 0; i < HistoryLen; i++ {
		o := PendingDigits * i
		putDigits(dst[o:o+PendingDigits], clamp(e.pending[i], MaxPending))
	}
	putDigits(dst[pendingNowOff:latencyOffset], clamp(pending, MaxPending))
	for i := 0; i < HistoryLen; i++ {
		o := latencyOffset + LatencyDigits*i
		putDigits(dst[o:o+LatencyDigits], clamp(e.lat[i], MaxLatencyUs))
	}
}

// Complete records a completed read: the pending count when it arrived
// (the value its own Features call was given) and its latency in µs. Only
// reads enter the history; writes only count in the pending number.
func (e *Extractor) Complete(pendingAtArrival, latencyUs int) {
	copy(e.pending[:], e.pending[1:])
	e.pending[HistoryLen-1] = pendingAtArrival
	copy(e.lat[:], e.lat[1:])
	e.lat[HistoryLen-1] = latencyUs
}

// Expire forgets the history's stale oldest entries (0..HistoryLen; more
// is all of them): they read as zeros, as on a device with no history.
// This is what the kernel does with entries older than its history
// time-to-live (lake_linnos_hist_stale in lakelib/include/lake_linnos.h),
// which it records as features.LinnOSCompletion.Stale.
func (e *Extractor) Expire(stale int) {
	for i := 0; i < min(stale, HistoryLen); i++ {
		e.pending[i], e.lat[i] = 0, 0
	}
}

func clamp(v, max int) int {
	if v < 0 {
		return 0
	}
	if v > max {
		return max
	}
	return v
}

// putDigits writes v in decimal into d, most significant digit first, padded
// with leading zeros.
func putDigits(d []int32, v int) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = int32(v % 10)
		v /= 10
	}
}
