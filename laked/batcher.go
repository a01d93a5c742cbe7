package laked

import (
	"sync"
	"time"

	"github.com/lakeos/lake/shm"
)

// predictReq is one accepted predict submission: its inputs already
// copied out of the client's arena, and where its outputs go.
type predictReq struct {
	sess   *session
	tag    uint64
	n      int
	in     []byte
	inp    *[]byte // pooled buffer behind in
	outOff uint64
	outLen uint64
	start  time.Time
}

// batcher gathers predict requests for one model and runs them in
// batches. A batch closes when it holds MaxBatch items or when its wait
// expires. The wait adapts to the arrival rate: with an exponentially
// weighted inter-arrival time ia, a batch waits min(MaxWait, ia*missing)
// for the missing items, and not at all when ia exceeds MaxWait, so a lone
// request is never delayed longer than the configured window (and usually
// not at all).
type batcher struct {
	s     *Server
	model *servedModel
	queue chan *predictReq

	ia       float64 // EWMA of inter-arrival time, ns
	lastSeen time.Time
	cpuItem  float64 // EWMA of CPU ns per item
	gpuItem  float64 // EWMA of GPU ns per item

	inBuf, outBuf []byte
	batch         []*predictReq

	quit     chan struct{} // closed when the model is unregistered
	quitOnce sync.Once
}

// stop ends the batcher after the batch in progress; queued requests
// complete with "not found".
func (b *batcher) stop() { b.quitOnce.Do(func() { close(b.quit) }) }

// queueDepth bounds the requests waiting for a model; beyond it predict
// completes with "busy" at once.
const queueDepth = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf(n int) *[]byte {
	p := bufPool.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	*p = (*p)[:n]
	return p
}

func newBatcher(s *Server, m *servedModel) *batcher {
	return &batcher{s: s, model: m, queue: make(chan *predictReq, queueDepth), quit: make(chan struct{})}
}

// offer enqueues r without blocking; false means the queue is full.
func (b *batcher) offer(r *predictReq) bool {
	select {
	case b.queue <- r:
		return true
	default:
		return false
	}
}

func (b *batcher) observe(now time.Time) {
	if !b.lastSeen.IsZero() {
		d := float64(now.Sub(b.lastSeen))
		if b.ia == 0 {
			b.ia = d
		} else {
			b.ia = 0.875*b.ia + 0.125*d
		}
	}
	b.lastSeen = now
}

// wait returns how long to hold a batch of items for more.
func (b *batcher) wait(items int) time.Duration {
	cfg := &b.s.cfg
	if items >= cfg.MaxBatch || cfg.MaxWait <= 0 || b.ia == 0 || b.ia > float64(cfg.MaxWait) {
		return 0
	}
	w := time.Duration(b.ia * float64(cfg.MaxBatch-items))
	if w > cfg.MaxWait {
		w = cfg.MaxWait
	}
	return w
}

func (b *batcher) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *predictReq
		select {
		case first = <-b.queue:
		case <-b.s.done:
			b.drainWith(shm.StatusShutdown)
			return
		case <-b.quit:
			b.drainWith(shm.StatusNotFound)
			return
		}
		b.observe(time.Now())
		b.batch = append(b.batch[:0], first)
		items := first.n
	gather:
		for items < b.s.cfg.MaxBatch {
			// Take what is already queued without waiting.
			select {
			case r := <-b.queue:
				b.observe(time.Now())
				b.batch = append(b.batch, r)
				items += r.n
				continue
			default:
			}
			w := b.wait(items)
			if w <= 0 {
				break
			}
			timer.Reset(w)
			select {
			case r := <-b.queue:
				if !timer.Stop() {
					<-timer.C
				}
				b.observe(time.Now())
				b.batch = append(b.batch, r)
				items += r.n
			case <-timer.C:
				break gather
			}
		}
		b.execute(items)
	}
}

// drainWith answers whatever is still queued when the batcher stops.
// A request that a session queued just after the drain is answered by
// the straggler goroutine, so that nothing is left unanswered.
func (b *batcher) drainWith(st shm.Status) {
	for {
		select {
		case r := <-b.queue:
			r.sess.completeAsync(shm.CQE{Tag: r.tag, Status: st}, r)
		default:
			go b.stragglers(st)
			return
		}
	}
}

// stragglers answers requests offered after the batcher stopped (a
// session may have looked the model up just before it was removed).
func (b *batcher) stragglers(st shm.Status) {
	for {
		select {
		case r := <-b.queue:
			r.sess.completeAsync(shm.CQE{Tag: r.tag, Status: st}, r)
		case <-time.After(10 * time.Second):
			select {
			case r := <-b.queue:
				r.sess.completeAsync(shm.CQE{Tag: r.tag, Status: st}, r)
				continue
			default:
			}
			return
		}
	}
}

// execute runs the gathered batch as one call and completes every request.
func (b *batcher) execute(items int) {
	mv := b.model.current.Load()
	info := b.model.info
	inLen, outLen := items*info.InputBytes, items*info.OutputBytes
	if cap(b.inBuf) < inLen {
		b.inBuf = make([]byte, inLen)
	}
	if cap(b.outBuf) < outLen {
		b.outBuf = make([]byte, outLen)
	}
	in, out := b.inBuf[:inLen], b.outBuf[:outLen]
	off := 0
	for _, r := range b.batch {
		off += copy(in[off:], r.in)
	}
	start := time.Now()
	gpu := b.s.place(BatchInfo{
		Model: b.model.id, Items: items, QueueDepth: len(b.queue),
		CPUPerItem: time.Duration(b.cpuItem), GPUPerItem: time.Duration(b.gpuItem),
	})
	var err error
	ranGPU := false
	if gpu {
		if gm, ok := mv.m.(GPUModel); ok && b.s.gpuAvailable() {
			err = gm.PredictGPU(in, out, items)
			ranGPU = err == nil
		} else {
			b.s.stats.gpuFallbacks.Add(1)
		}
	}
	if !ranGPU {
		err = safePredict(mv.m, in, out, items)
	}
	took := time.Since(start)
	b.s.stats.observeBatch(items, took, ranGPU)
	if err == nil {
		per := float64(took) / float64(items)
		if ranGPU {
			b.gpuItem = ewma(b.gpuItem, per)
		} else {
			b.cpuItem = ewma(b.cpuItem, per)
		}
	}
	status := shm.StatusOK
	if err != nil {
		status = shm.StatusModelFailed
		b.s.log.Warn().Err(err).Uint32("model", b.model.id).Int("items", items).Msg("batch failed")
	}
	var gpuFlag uint64
	if ranGPU {
		gpuFlag = 1
	}
	off = 0
	for _, r := range b.batch {
		n := r.n * info.OutputBytes
		c := shm.CQE{Tag: r.tag, Status: status, Results: [2]uint64{mv.version, gpuFlag}}
		if status == shm.StatusOK {
			if dst, aerr := r.sess.region.ArenaRange(r.outOff, r.outLen); aerr == nil && len(dst) == n {
				copy(dst, out[off:off+n])
			} else {
				c.Status = shm.StatusInternal // validated at accept time: cannot happen
			}
		}
		off += n
		r.sess.completeAsync(c, r)
	}
	clear(b.batch)
	b.batch = b.batch[:0]
}

func ewma(old, v float64) float64 {
	if old == 0 {
		return v
	}
	return 0.875*old + 0.125*v
}

// safePredict runs a model and turns a panic into an error: a model bug
// must not take laked down.
func safePredict(m Model, in, out []byte, n int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{p}
		}
	}()
	return m.Predict(in, out, n)
}

type panicError struct{ v any }

func (p *panicError) Error() string { return "model panicked: " + fmtAny(p.v) }
