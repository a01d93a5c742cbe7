package laked

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/shm"
)

// numStatuses is the number of protocol status codes.
const numStatuses = int(shm.StatusContextDestroyed) + 1

// batchBuckets are the upper bounds of the batch-size histogram.
var batchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// stats are laked's counters, all atomics so that the hot path never
// takes a lock to count.
type stats struct {
	submissions  atomic.Uint64
	completions  [numStatuses + 1]atomic.Uint64 // last: unknown status
	batches      atomic.Uint64
	batchItems   atomic.Uint64
	batchHist    [len(batchBuckets) + 1]atomic.Uint64
	decisionsCPU atomic.Uint64
	decisionsGPU atomic.Uint64
	gpuFallbacks atomic.Uint64
	serviceNanos atomic.Uint64
	queueNanos   atomic.Uint64
	sessions     atomic.Int64
	sessionsSeen atomic.Uint64
	overflowed   atomic.Uint64
}

func (s *stats) complete(st shm.Status) {
	i := int(st)
	if i < 0 || i >= numStatuses {
		i = numStatuses
	}
	s.completions[i].Add(1)
}

func (s *stats) observeBatch(items int, d time.Duration, gpu bool) {
	s.batches.Add(1)
	s.batchItems.Add(uint64(items))
	s.serviceNanos.Add(uint64(d))
	b := len(batchBuckets)
	for i, ub := range batchBuckets {
		if items <= ub {
			b = i
			break
		}
	}
	s.batchHist[b].Add(1)
	_ = gpu
}

// Stats is a snapshot of laked's counters.
type Stats struct {
	Submissions    uint64
	Completions    map[string]uint64 // by status name
	Batches        uint64
	BatchItems     uint64
	BatchSizeHist  map[string]uint64 // "<=N" buckets and ">1024"
	DecisionsCPU   uint64
	DecisionsGPU   uint64
	GPUFallbacks   uint64 // GPU chosen but the batch ran on the CPU
	ServiceTime    time.Duration
	QueueTime      time.Duration
	Sessions       int64
	SessionsServed uint64
	Overflowed     uint64 // completions held back because a ring was full
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{
		Submissions:    st.submissions.Load(),
		Completions:    map[string]uint64{},
		Batches:        st.batches.Load(),
		BatchItems:     st.batchItems.Load(),
		BatchSizeHist:  map[string]uint64{},
		DecisionsCPU:   st.decisionsCPU.Load(),
		DecisionsGPU:   st.decisionsGPU.Load(),
		GPUFallbacks:   st.gpuFallbacks.Load(),
		ServiceTime:    time.Duration(st.serviceNanos.Load()),
		QueueTime:      time.Duration(st.queueNanos.Load()),
		Sessions:       st.sessions.Load(),
		SessionsServed: st.sessionsSeen.Load(),
		Overflowed:     st.overflowed.Load(),
	}
	for i := 0; i <= numStatuses; i++ {
		if v := st.completions[i].Load(); v > 0 {
			name := "unknown"
			if i < numStatuses {
				name = shm.Status(i).String()
			}
			out.Completions[name] = v
		}
	}
	for i := range st.batchHist {
		if v := st.batchHist[i].Load(); v > 0 {
			name := ">1024"
			if i < len(batchBuckets) {
				name = fmt.Sprintf("<=%d", batchBuckets[i])
			}
			out.BatchSizeHist[name] = v
		}
	}
	return out
}

// TotalCompletions sums completions over all statuses.
func (s Stats) TotalCompletions() uint64 {
	var n uint64
	for _, v := range s.Completions {
		n += v
	}
	return n
}

func fmtAny(v any) string { return fmt.Sprint(v) }
