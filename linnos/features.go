package linnos

import "fmt"

// Feature layout constants. A feature vector is NumInputs decimal digits,
// most significant digit first:
//
//	[0:3]   pending I/Os now (3 digits, clamped to 999)
//	[3:15]  pending I/Os seen at the last 4 arrivals, oldest first (4×3 digits)
//	[15:31] latency in µs of the last 4 completed I/Os, oldest first (4×4 digits, clamped to 9999)
const (
	NumInputs      = 31
	HistoryLen     = 4
	PendingDigits  = 3
	LatencyDigits  = 4
	MaxPending     = 999
	MaxLatencyUs   = 9999
	latencyOffset  = PendingDigits * (1 + HistoryLen)
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

// Extractor keeps one device's history (pending counts at the last arrivals and
// latencies of the last completed I/Os) and turns it into feature vectors.
// It is a plain value type; it is not safe for concurrent use.
type Extractor struct {
	pending [HistoryLen]int // oldest first
	lat     [HistoryLen]int // oldest first
}

// Features writes the NumInputs digits for an I/O arriving while pending I/Os
// (or pages) are outstanding on the device into dst[:NumInputs]. It does not
// change the history; call Arrive afterwards.
func (e *Extractor) Features(pending int, dst []int32) {
	_ = dst[NumInputs-1]
	putDigits(dst[0:PendingDigits], clamp(pending, MaxPending))
	for i := 0; i < HistoryLen; i++ {
		o := PendingDigits * (i + 1)
		putDigits(dst[o:o+PendingDigits], clamp(e.pending[i], MaxPending))
	}
	for i := 0; i < HistoryLen; i++ {
		o := latencyOffset + LatencyDigits*i
		putDigits(dst[o:o+LatencyDigits], clamp(e.lat[i], MaxLatencyUs))
	}
}

// Arrive records the pending count seen by an arriving I/O.
func (e *Extractor) Arrive(pending int) {
	copy(e.pending[:], e.pending[1:])
	e.pending[HistoryLen-1] = pending
}

// Complete records the latency (µs) of a completed I/O (read or write).
func (e *Extractor) Complete(latencyUs int) {
	copy(e.lat[:], e.lat[1:])
	e.lat[HistoryLen-1] = latencyUs
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
