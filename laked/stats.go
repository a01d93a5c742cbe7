package laked

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/shm"
)

// numStatuses is the number of protocol status codes.
const numStatuses = shm.NumStatuses

// batchBuckets are the upper bounds of the batch-size histogram.
var batchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// Histogram bucket upper bounds for durations, in seconds (as Prometheus
// expects): 1 µs to 1 s.
var durationBuckets = []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1}

// histogram is a fixed-bucket histogram updated with atomics.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, last is +Inf
	sumNs  atomic.Uint64   // sum of observations in ns (durations) or units
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64, raw uint64) {
	i := len(h.bounds)
	for k, ub := range h.bounds {
		if v <= ub {
			i = k
			break
		}
	}
	h.counts[i].Add(1)
	h.sumNs.Add(raw)
}

// HistogramSnapshot is a histogram's state: Counts[i] observations fell
// at or below Bounds[i] and above Bounds[i-1]; the last count is above the
// last bound. Sum is the sum of observations (seconds for durations).
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
}

// Count is the number of observations.
func (h HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

func (h *histogram) snapshot(scale float64) HistogramSnapshot {
	out := HistogramSnapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.Sum = float64(h.sumNs.Load()) * scale
	return out
}

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
	// GPU batches' items whose records moved by DMA between a registered
	// arena and the GPU (gpuDirectItems), or through laked's buffers
	// (gpuStagedItems: the client's region is not registered, or the
	// model has no runs path).
	gpuDirectItems atomic.Uint64
	gpuStagedItems atomic.Uint64
	batchWaits     atomic.Uint64
	serviceNanos   atomic.Uint64
	queueNanos     atomic.Uint64
	sessions       atomic.Int64
	sessionsSeen   atomic.Uint64
	overflowed     atomic.Uint64
	spuriousWakes  atomic.Uint64 // doorbell wake-ups with nothing submitted that cost a backoff sleep
	refused        atomic.Uint64 // handshakes refused (limits, bad region fds)
	// deadlineMissed counts predicts answered "deadline exceeded"
	// (also counted under that status in completions).
	deadlineMissed atomic.Uint64

	batchSize   *histogram // items per batch
	queueWait   *histogram // accept to completion of a predict request
	serviceTime *histogram // model run time per batch
}

func newStats() stats {
	b := make([]float64, len(batchBuckets))
	for i, v := range batchBuckets {
		b[i] = float64(v)
	}
	return stats{batchSize: newHistogram(b), queueWait: newHistogram(durationBuckets), serviceTime: newHistogram(durationBuckets)}
}

func (s *stats) complete(st shm.Status) {
	i := int(st)
	if i < 0 || i >= numStatuses {
		i = numStatuses
	}
	s.completions[i].Add(1)
}

// completeBatch counts a batch of completions with one atomic add per
// status present.
func (s *stats) completeBatch(cs []shm.CQE) {
	if len(cs) == 0 {
		return
	}
	first := cs[0].Status
	same := true
	for i := range cs {
		if cs[i].Status != first {
			same = false
			break
		}
	}
	if same {
		i := int(first)
		if i < 0 || i >= numStatuses {
			i = numStatuses
		}
		s.completions[i].Add(uint64(len(cs)))
		return
	}
	for i := range cs {
		s.complete(cs[i].Status)
	}
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
	s.batchSize.observe(float64(items), uint64(items))
	s.serviceTime.observe(d.Seconds(), uint64(d))
	_ = gpu
}

func (s *stats) observeWait(d time.Duration) {
	s.queueNanos.Add(uint64(d))
	s.queueWait.observe(d.Seconds(), uint64(d))
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
	GPUFallbacks   uint64        // GPU chosen but the batch ran on the CPU
	GPUDirectItems uint64        // items of GPU batches copied straight between a client's registered arena and the GPU
	GPUStagedItems uint64        // items of GPU batches staged through laked's buffers (region not registered with the GPU, or no runs path)
	BatchWaits     uint64        // batches held for more requests (to fill a GPU batch to the placer's hint)
	ServiceTotal   time.Duration // total model run time
	QueueTotal     time.Duration // total predict accept-to-completion time
	Sessions       int64
	SessionsServed uint64
	Overflowed     uint64 // completions held back because a ring was full
	SpuriousWakes  uint64 // clients' doorbell wake-ups with nothing submitted, past the free ones (each cost laked a backoff sleep)
	Refused        uint64 // handshakes refused: max_clients, limits, bad region fds
	DeadlineMissed uint64 // predicts answered "deadline exceeded" instead of running late

	BatchSize   HistogramSnapshot // items per predict batch
	QueueWait   HistogramSnapshot // seconds from accepting a predict to its completion
	ServiceTime HistogramSnapshot // seconds a model spent on one batch
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
		GPUDirectItems: st.gpuDirectItems.Load(),
		GPUStagedItems: st.gpuStagedItems.Load(),
		BatchWaits:     st.batchWaits.Load(),
		ServiceTotal:   time.Duration(st.serviceNanos.Load()),
		QueueTotal:     time.Duration(st.queueNanos.Load()),
		Sessions:       st.sessions.Load(),
		SessionsServed: st.sessionsSeen.Load(),
		Overflowed:     st.overflowed.Load(),
		SpuriousWakes:  st.spuriousWakes.Load(),
		Refused:        st.refused.Load(),
		DeadlineMissed: st.deadlineMissed.Load(),
		BatchSize:      st.batchSize.snapshot(1),
		QueueWait:      st.queueWait.snapshot(1e-9),
		ServiceTime:    st.serviceTime.snapshot(1e-9),
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
