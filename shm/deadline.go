package shm

import "time"

// Predict deadlines (PROTOCOL.md, "Deadlines"). A predict submission
// with FlagDeadline set in its flags carries the time after which its
// answer is useless: the low DeadlineBits bits of CLOCK_MONOTONIC in
// microseconds, bits 22..16 in flags bits 7..1 and bits 15..0 in pad.
// Both sides read the same clock (the kernel's ktime_get_ns is
// CLOCK_MONOTONIC), so a deadline needs no clock agreement beyond that.
// The value wraps every 2^23 µs (8.4 s); a deadline is compared with now
// as a signed difference, so a client may set it at most MaxDeadlineAhead
// into the future.
const (
	// FlagDeadline marks a predict submission that carries a deadline.
	FlagDeadline uint8 = 1 << 0
	// DeadlineBits is the width of an encoded deadline.
	DeadlineBits = 23
	deadlineMask = 1<<DeadlineBits - 1
	// MaxDeadlineAhead is the furthest into the future a deadline may be.
	MaxDeadlineAhead = (1<<(DeadlineBits-1) - 1) * time.Microsecond
)

// SetDeadline marks e (a predict submission) with the deadline dl, a
// CLOCK_MONOTONIC time in nanoseconds (MonotonicNow's clock, never
// negative).
func SetDeadline(e *SQE, dl int64) {
	us := uint32(uint64(dl)/1000) & deadlineMask // as C's u64 division: bit-exact with lake_sqe_set_deadline
	e.Flags = FlagDeadline | uint8(us>>16)<<1
	e.Pad = uint16(us)
}

// DeadlineOf returns the encoded deadline of e, if it has one.
func DeadlineOf(e *SQE) (uint32, bool) {
	if e.Flags&FlagDeadline == 0 {
		return 0, false
	}
	return uint32(e.Flags>>1)<<16 | uint32(e.Pad), true
}

// DeadlineLeft is how long remains until the encoded deadline dl at the
// CLOCK_MONOTONIC time now (ns); negative once it has passed.
func DeadlineLeft(dl uint32, now int64) time.Duration {
	d := (dl - uint32(uint64(now)/1000)) & deadlineMask
	if d >= 1<<(DeadlineBits-1) {
		return -time.Duration(1<<DeadlineBits-d) * time.Microsecond
	}
	return time.Duration(d) * time.Microsecond
}
