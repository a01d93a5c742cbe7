package blktrace

import (
	"fmt"
	"sync/atomic"

	"github.com/lakeos/lake/features"
)

// FeatureSink turns traced events into LinnOS feature-registry records: an
// issue is an arrival with its queue depth, a completed read is a history
// entry (its queue depth at issue and its latency: the history inputs, and
// the training label). Completed writes are not history (LinnOS keeps
// reads only). Queue depths count the I/O itself, as LinnOS does (the
// tracer's depth does not, so the sink adds one).
// Device keys are the kernel dev_t. It is safe for concurrent use.
type FeatureSink struct {
	l      *features.LinnOS
	errors atomic.Uint64
}

// NewFeatureSink records into l.
func NewFeatureSink(l *features.LinnOS) (*FeatureSink, error) {
	if l == nil {
		return nil, fmt.Errorf("blktrace: nil LinnOS feature recorder")
	}
	return &FeatureSink{l: l}, nil
}

// MaxLatencyUs is the largest latency recorded (larger ones are clamped;
// the LinnOS input clamps at 9999 anyway).
const MaxLatencyUs = 1<<32 - 1

// Record stores e. Errors from the registry (for example a full key table)
// are counted and returned.
func (s *FeatureSink) Record(e Event) error {
	var err error
	switch e.Kind {
	case KindIssue:
		err = s.l.RecordArrival(uint64(e.Dev), pendingWith(e.QueueDepth))
	case KindComplete:
		if e.Op != OpRead {
			return nil
		}
		us := e.LatencyNs() / 1000
		if us > MaxLatencyUs {
			us = MaxLatencyUs
		}
		err = s.l.RecordCompletion(uint64(e.Dev), features.LinnOSCompletion{LatencyUs: uint32(us), Pending: pendingWith(e.QueueDepth)})
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrEvent, e.Kind)
	}
	if err != nil {
		s.errors.Add(1)
		return fmt.Errorf("blktrace: record dev %d:%d: %w", e.Major(), e.Minor(), err)
	}
	return nil
}

// Features builds the 31 LinnOS inputs for a read issued at e.Dev with
// e.QueueDepth others in flight, from the history recorded so far.
func (s *FeatureSink) Features(e Event, dst []int32) ([]int32, error) {
	return s.l.Features(uint64(e.Dev), pendingWith(e.QueueDepth), dst)
}

// pendingWith is a queue depth that counts the I/O itself.
func pendingWith(depth uint32) uint32 {
	if depth == 1<<32-1 {
		return depth
	}
	return depth + 1
}

// Errors is the number of events the registry refused.
func (s *FeatureSink) Errors() uint64 { return s.errors.Load() }
