package blktrace

import (
	"fmt"
	"sync/atomic"

	"github.com/lakeos/lake/features"
)

// FeatureSink turns traced events into LinnOS feature-registry records: an
// issue is an arrival with its queue depth (the "pending" input), a
// completion is a latency (the history inputs, and the training label).
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
		err = s.l.RecordArrival(uint64(e.Dev), e.QueueDepth)
	case KindComplete:
		us := e.LatencyNs() / 1000
		if us > MaxLatencyUs {
			us = MaxLatencyUs
		}
		err = s.l.RecordCompletion(uint64(e.Dev), uint32(us))
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrEvent, e.Kind)
	}
	if err != nil {
		s.errors.Add(1)
		return fmt.Errorf("blktrace: record dev %d:%d: %w", e.Major(), e.Minor(), err)
	}
	return nil
}

// Features builds the 31 LinnOS inputs for a read arriving at e.Dev with
// e.QueueDepth pending, from the history recorded so far.
func (s *FeatureSink) Features(e Event, dst []int32) ([]int32, error) {
	return s.l.Features(uint64(e.Dev), e.QueueDepth, dst)
}

// Errors is the number of events the registry refused.
func (s *FeatureSink) Errors() uint64 { return s.errors.Load() }
