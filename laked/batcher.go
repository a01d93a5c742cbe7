package laked

import (
	"slices"
	"sync"
	"time"

	"github.com/lakeos/lake/shm"
)

// predictReq is one accepted predict submission: its inputs already
// copied out of the client's arena (in), or, for a model with a GPU runs
// path and a client whose region the GPU backend registered, left there
// (in is nil, inOff says where: see GPURunsModel); and where its outputs
// go.
type predictReq struct {
	sess     *session
	tag      uint64
	n        int
	in       []byte
	inp      *[]byte // pooled buffer behind in
	inOff    uint64  // arena offset of the inputs when in is nil
	bad      bool    // its arena range could not be read: completes "internal error"
	outOff   uint64
	outLen   uint64
	start    time.Time
	deadline time.Time // zero: none
	cost     uint64    // bytes taken from the admission budgets (session.admit)
	// A request of more than Config.MaxBatch items runs in pieces, one
	// per batch (see takeLocked): done counts its items already run (by
	// earlier batches), piece its items [done, done+piece) in the batch
	// that holds it now; version is the model version its pieces ran on,
	// gpu whether one ran on the GPU. Only the runner touches them.
	done, piece int
	version     uint64
	gpu         bool
}

// Queue bounds. A session's queued predicts per model are bounded so that
// one client bursting its whole ring cannot crowd out the others; beyond
// either bound predict completes with "busy" at once.
const (
	sessionQueueReqs = 1024    // queued requests per session and model
	modelQueueReqs   = 1 << 16 // queued requests per model, all sessions
	// inlineBatches is how many batches a session reader runs for a
	// model before it hands the remaining backlog to the model's runner
	// goroutine and goes back to its own ring.
	inlineBatches = 4
	// polledBatchCost bounds the expected CPU time of a batch the poller
	// runs itself (the model's recent cost per item times the batch's
	// items); a costlier batch, or one of a model whose cost is not yet
	// known, goes to the model's runner goroutine, so that a slow model
	// never holds up the other sessions' rings.
	polledBatchCost = 50 * time.Microsecond
)

// sessQueue is one session's FIFO of requests for one model.
type sessQueue struct {
	sess *session
	reqs []*predictReq
	head int
}

func (q *sessQueue) len() int           { return len(q.reqs) - q.head }
func (q *sessQueue) peek() *predictReq  { return q.reqs[q.head] }
func (q *sessQueue) push(r *predictReq) { q.reqs = append(q.reqs, r) }

// pushFront puts r back at the head of the queue (an unfinished large
// request after one of its pieces ran).
func (q *sessQueue) pushFront(r *predictReq) {
	if q.head > 0 {
		q.head--
		q.reqs[q.head] = r
		return
	}
	q.reqs = slices.Insert(q.reqs, 0, r)
}

func (q *sessQueue) pop() *predictReq {
	r := q.reqs[q.head]
	q.reqs[q.head] = nil
	q.head++
	if q.head == len(q.reqs) {
		q.reqs, q.head = q.reqs[:0], 0
	}
	return r
}

// batcher runs the predict requests of one model.
//
// There is no batching window on the CPU path. A session reader queues
// the predicts it read from its ring and then, if nobody runs the model,
// becomes the runner: it takes everything already queued (round robin
// across sessions, one request per session per turn, a session that had
// nothing queued first, up to Config.MaxBatch items), asks the
// placer, and when the batch goes to the CPU runs it on its own goroutine
// and completes it without a hand-off. Requests that arrive meanwhile
// form the next batch (the natural backlog). A batch is never larger
// than Config.MaxBatch items: a larger request runs one piece per batch
// (takeLocked), and between its pieces the other sessions' requests ride
// the following batches, so a light client never waits for another
// client's whole large request. After inlineBatches batches,
// or for a batch placed on the GPU, the reader hands the runner role to
// the model's runner goroutine and goes back to its ring.
//
// A deliberate wait happens only on the runner goroutine, only when the
// GPU is usable for the model and the placer's batch-size hint says the
// GPU would take a larger batch, the arrival rate says it fills within
// Config.MaxWait, and the expected saving exceeds the wait; never past a
// request's deadline.
type batcher struct {
	s     *Server
	model *servedModel

	mu       sync.Mutex
	queues   map[*session]*sessQueue
	ring     []*sessQueue // sessions with queued requests, round-robin order
	next     int          // ring position the next batch starts at
	queued   int          // requests queued, all sessions
	spare    []*sessQueue
	running  bool // a runner owns the batch (the fields under "runner")
	waiting  bool // the runner goroutine waits for more requests
	stopped  bool
	stopSt   shm.Status // what requests get once stopped
	exited   bool       // the runner goroutine has ended
	handoffs int        // runner roles handed to the runner goroutine (tests)
	ia       float64    // EWMA of inter-arrival time, ns
	last     time.Time  // last arrival

	handoff chan struct{} // passes the runner role to the runner goroutine
	wake    chan struct{} // wakes a waiting runner goroutine
	quit    chan struct{} // closed by stop

	// runner: owned by whoever holds running.
	cpuItem, gpuItem float64 // EWMA of ns per item
	kernelItems      int     // items of the batch from kernel clients
	inBuf, outBuf    []byte
	inMem, outMem    stagedMem // inBuf and outBuf of the batch as hostMem
	inSpans          []recSpan // GPU runs path: where each request's records lie
	outSpans         []recSpan // ...and where its outputs go
	runs             []copyRun // planned copies of one model call
	inRuns, outRuns  [][]byte  // ...resolved to host memory
	batch            []*predictReq
	items            int
	late             []*predictReq // answered without running (deadline missed, or the client left)
	done             []sessDone    // completions of the batch, by session
	decided          bool          // gpu and hint hold the placer's answer for batch
	gpu              bool
	hint             int
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// reqPool recycles predictReqs: a steady stream of predicts allocates
// nothing in laked (no garbage, so no GC cycle preempting a spinning
// reader). A request goes back once its completion is posted.
var reqPool = sync.Pool{New: func() any { return new(predictReq) }}

func putReq(r *predictReq) {
	*r = predictReq{}
	reqPool.Put(r)
}

func getBuf(n int) *[]byte {
	p := bufPool.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	*p = (*p)[:n]
	return p
}

func newBatcher(s *Server, m *servedModel) *batcher {
	return &batcher{
		s: s, model: m, queues: map[*session]*sessQueue{},
		handoff: make(chan struct{}, 1), wake: make(chan struct{}, 1), quit: make(chan struct{}),
	}
}

// enqueue queues r. Any status other than OK means r was not queued (the
// caller still owns it). The caller must call tryRun after it (once for
// many enqueues), so that every queued request has a runner.
func (b *batcher) enqueue(r *predictReq) shm.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return b.stopSt
	}
	q := b.queues[r.sess]
	if b.queued >= modelQueueReqs || (q != nil && q.len() >= sessionQueueReqs) {
		return shm.StatusBusy
	}
	if q == nil {
		q = b.newQueueLocked(r.sess)
	}
	q.push(r)
	b.queued++
	if !b.last.IsZero() {
		b.ia = ewma(b.ia, float64(r.start.Sub(b.last)))
	}
	b.last = r.start
	if b.waiting {
		b.waiting = false
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return shm.StatusOK
}

// tryRun runs the queued batches on the calling goroutine unless a runner
// already owns the model (it takes what is queued before it lets go).
func (b *batcher) tryRun() { b.tryRunFor(false) }

// tryRunFor is tryRun; for the poller (polled) it runs only batches
// expected to take at most polledBatchCost and hands the others to the
// runner goroutine.
func (b *batcher) tryRunFor(polled bool) {
	b.mu.Lock()
	if b.running || b.queued == 0 {
		b.mu.Unlock()
		return
	}
	b.running = true
	b.mu.Unlock()
	b.runInline(polled)
}

func (b *batcher) newQueueLocked(s *session) *sessQueue {
	var q *sessQueue
	if n := len(b.spare); n > 0 {
		q, b.spare = b.spare[n-1], b.spare[:n-1]
	} else {
		q = &sessQueue{}
	}
	q.sess = s
	b.queues[s] = q
	// A session that had nothing queued goes next in the round robin,
	// ahead of the sessions with a backlog: a light client's lone request
	// rides the next batch even when more sessions have backlogs than a
	// batch has room for. It gains at most one turn (it is behind the
	// others once served), so no backlog starves.
	i := 0
	if len(b.ring) > 0 {
		i = b.next % len(b.ring)
	}
	b.ring = slices.Insert(b.ring, i, q)
	b.next = i
	return q
}

// dropQueueLocked forgets the empty queue at ring position i.
func (b *batcher) dropQueueLocked(i int) {
	q := b.ring[i]
	copy(b.ring[i:], b.ring[i+1:])
	b.ring[len(b.ring)-1] = nil
	b.ring = b.ring[:len(b.ring)-1]
	delete(b.queues, q.sess)
	q.sess = nil
	b.spare = append(b.spare, q)
}

// stop ends the batcher: queued requests complete with "not found" (the
// model is gone); a batch in progress finishes.
func (b *batcher) stop() { b.stopWith(shm.StatusNotFound) }

func (b *batcher) stopWith(st shm.Status) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.stopped, b.stopSt = true, st
	var drop []*predictReq
	for _, q := range b.ring {
		for q.len() > 0 {
			drop = append(drop, q.pop())
		}
	}
	for len(b.ring) > 0 {
		b.dropQueueLocked(len(b.ring) - 1)
	}
	b.queued = 0
	b.mu.Unlock()
	for _, r := range drop {
		r.sess.completeAsync(shm.CQE{Tag: r.tag, Status: st}, r)
	}
	close(b.quit)
}

// run is the model's runner goroutine: it runs the backlog handed to it
// by session readers (and batches that wait for the GPU).
func (b *batcher) run() {
	for {
		select {
		case <-b.handoff:
			b.runOwned()
			continue
		case <-b.quit:
		case <-b.s.done:
			b.stopWith(shm.StatusShutdown)
		}
		// A runner that handed off before seeing exited has sent its
		// token under mu: take it and finish that batch here.
		b.mu.Lock()
		b.exited = true
		b.mu.Unlock()
		select {
		case <-b.handoff:
			b.runOwned()
		default:
		}
		return
	}
}

// handOff gives the runner role (and any gathered batch) to the runner
// goroutine, or keeps running here once that goroutine has ended.
func (b *batcher) handOff() {
	b.mu.Lock()
	if b.exited {
		b.mu.Unlock()
		b.runOwned()
		return
	}
	b.handoff <- struct{}{} // capacity 1, one runner: never blocks
	b.handoffs++
	b.mu.Unlock()
}

// runInline runs batches placed on the CPU on the calling session reader
// (or the poller: polled).
func (b *batcher) runInline(polled bool) {
	for i := 0; ; i++ {
		if !b.gather() {
			return
		}
		if i == inlineBatches {
			b.handOff()
			return
		}
		b.decide()
		if b.gpu || b.waitFor() > 0 || (polled && !b.cheap()) {
			b.handOff()
			return
		}
		b.execute()
	}
}

// cheap reports whether the gathered batch is expected to run on the CPU
// within polledBatchCost (the model's cost per item is known). A piece
// of a large request counts with the request's items not yet run: the
// poller would otherwise run its pieces back to back (up to
// inlineBatches) instead of reading the other sessions' rings; such a
// request goes to the runner goroutine, as it did as one batch.
func (b *batcher) cheap() bool {
	items := b.items
	for _, r := range b.batch {
		items += r.n - r.done - r.piece
	}
	return b.cpuItem > 0 && b.cpuItem*float64(items) <= float64(polledBatchCost)
}

// runOwned runs batches on the runner goroutine until nothing is queued.
func (b *batcher) runOwned() {
	for {
		if len(b.batch) == 0 && !b.gather() {
			return
		}
		b.decide()
		if w := b.waitFor(); w > 0 {
			b.waitMore(w)
			b.decided = false
			b.decide()
		}
		b.execute()
	}
}

// gather fills the batch from the queues, answering requests that can no
// longer meet their deadlines. false: nothing was queued and the caller
// is no longer the runner.
func (b *batcher) gather() bool {
	for {
		b.mu.Lock()
		b.takeLocked(time.Time{}, b.s.cfg.MaxBatch)
		if len(b.batch) == 0 && len(b.late) == 0 {
			b.running = false
			b.mu.Unlock()
			return false
		}
		b.mu.Unlock()
		b.answerLate()
		if len(b.batch) > 0 {
			return true
		}
	}
}

// takeLocked moves queued requests into the batch, one per session per
// turn, until the batch holds limit items or the next request does not
// fit (it then starts the next batch, so a request is never starved).
//
// A request of more than Config.MaxBatch items (a large one) is taken a
// piece at a time (r.piece items from r.done): a piece of limit items
// starts a batch of its own and fills it; only a last piece that fits
// joins a batch with other requests. Once the batch has run, execute
// puts an unfinished request back at the head of its session's queue
// (requeue); the round robin has moved on meanwhile, so the other
// sessions' requests (a light session's first) form the next batch
// instead of waiting for the whole large request, and a light request
// never waits for more than the piece in progress and its own batch. A
// batch therefore holds at most one unfinished piece. A zero now reads
// the clock when a request with a deadline needs it (most have none).
func (b *batcher) takeLocked(now time.Time, limit int) {
	for b.items < limit && len(b.ring) > 0 {
		b.next %= len(b.ring)
		q := b.ring[b.next]
		r := q.peek()
		if now.IsZero() && !r.deadline.IsZero() {
			now = time.Now()
		}
		rest, k := r.n-r.done, 0
		switch {
		case b.missed(r, now) || r.sess.gone():
			// answered without running: too late, or its client left
			// (also between two pieces of a large request)
			b.late = append(b.late, r)
		case r.n > b.s.cfg.MaxBatch && b.items == 0:
			k = min(rest, limit)
		case b.items == 0 || b.items+rest <= limit:
			k = rest
		default:
			return
		}
		if k > 0 {
			r.piece = k
			b.batch = append(b.batch, r)
			b.items += k
			if r.sess.kernel {
				b.kernelItems += k
			}
		}
		q.pop()
		b.queued--
		if q.len() == 0 {
			b.dropQueueLocked(b.next)
		} else {
			b.next++
		}
	}
}

// missed reports whether r cannot finish by its deadline: it has passed,
// or the recent CPU cost of r's remaining items would take it past.
func (b *batcher) missed(r *predictReq, now time.Time) bool {
	if r.deadline.IsZero() {
		return false
	}
	est := time.Duration(b.cpuItem * float64(r.n-r.done))
	return now.Add(est).After(r.deadline)
}

func (b *batcher) answerLate() {
	for i, r := range b.late {
		st := shm.StatusShutdown // its client left: nobody reads the answer, the budgets come back
		if !r.sess.gone() {
			b.s.stats.deadlineMissed.Add(1)
			st = shm.StatusDeadline
		}
		r.sess.completeAsync(shm.CQE{Tag: r.tag, Status: st}, r)
		b.late[i] = nil
	}
	b.late = b.late[:0]
}

// decide asks the placer where the batch runs (once per batch).
func (b *batcher) decide() {
	if b.decided {
		return
	}
	b.mu.Lock()
	depth := b.queued
	b.mu.Unlock()
	// A piece of a large request is placed as the whole request was
	// before it ran in pieces: the placer counts its items not yet run
	// too (with max_size 64, a 1024-item request still meets a GPU
	// policy's minimum batch, and each of its pieces goes to the GPU).
	items, kernelItems := b.items, b.kernelItems
	for _, r := range b.batch {
		rest := r.n - r.done - r.piece
		items += rest
		if r.sess.kernel {
			kernelItems += rest
		}
	}
	b.gpu, b.hint = b.s.placeHint(BatchInfo{
		Model: b.model.id, Items: items, QueueDepth: depth, KernelItems: kernelItems,
		CPUPerItem: time.Duration(b.cpuItem), GPUPerItem: time.Duration(b.gpuItem),
	})
	b.decided = true
}

// gpuUsable reports whether a batch of this model can run on the GPU.
func (b *batcher) gpuUsable() bool {
	_, ok := b.model.current.Load().m.(GPUModel)
	return ok && b.s.gpuAvailable()
}

// waitFor is how long the batch should wait for more requests: non-zero
// only when the placer's hint asks for a larger batch than the batch
// holds, the GPU is usable, twice the time the arrival rate needs to fill
// the batch to the hint is within MaxWait, the expected saving (running hint items at the GPU's
// per-item cost instead of the CPU's; an unmeasured GPU cost counts as
// zero) exceeds the wait, and no request's deadline would be missed.
func (b *batcher) waitFor() time.Duration {
	cfg := &b.s.cfg
	target := min(b.hint, cfg.MaxBatch)
	if cfg.MaxWait <= 0 || target <= b.items || !b.gpuUsable() {
		return 0
	}
	b.mu.Lock()
	ia := b.ia
	b.mu.Unlock()
	if ia <= 0 {
		return 0
	}
	// Twice the expected fill time: arrivals are bursty.
	w := time.Duration(2 * ia * float64(target-b.items))
	if w > cfg.MaxWait {
		return 0
	}
	if gain := float64(target) * (b.cpuItem - b.gpuItem); gain <= float64(w) {
		return 0
	}
	now := time.Now()
	for _, r := range b.batch {
		if r.deadline.IsZero() {
			continue
		}
		slack := r.deadline.Sub(now) - time.Duration(b.gpuItem*float64(target))
		if slack < w {
			w = slack
		}
	}
	return max(w, 0)
}

// waitMore waits up to w on the runner goroutine for requests that bring
// the batch to the placer's hint.
func (b *batcher) waitMore(w time.Duration) {
	b.s.stats.batchWaits.Add(1)
	target := min(b.hint, b.s.cfg.MaxBatch)
	end := time.Now().Add(w)
	timer := time.NewTimer(w)
	defer timer.Stop()
wait:
	for {
		now := time.Now()
		b.mu.Lock()
		b.takeLocked(now, target)
		if b.items >= target || len(b.late) > 0 || !now.Before(end) {
			b.mu.Unlock()
			break
		}
		b.waiting = true
		b.mu.Unlock()
		select {
		case <-b.wake:
		case <-timer.C:
			b.mu.Lock()
			b.takeLocked(time.Now(), target)
			b.mu.Unlock()
			break wait
		case <-b.quit:
			break wait
		}
	}
	b.mu.Lock()
	b.waiting = false
	b.mu.Unlock()
	b.answerLate()
}

// execute runs the gathered batch (at most MaxBatch items) and completes
// every request of it whose last piece it ran; an unfinished large
// request goes back to its queue (requeue).
func (b *batcher) execute() {
	b.decide()
	mv := b.model.current.Load()
	info := b.model.info
	items := b.items
	for _, r := range b.batch {
		if r.done > 0 && r.version != mv.version {
			// The model was replaced between two pieces of r: this piece
			// starts r over (its items from 0), so that all of r's
			// outputs are of the version its completion reports.
			r.done, r.gpu = 0, false
		}
	}
	inLen, outLen := items*info.InputBytes, items*info.OutputBytes
	if cap(b.inBuf) < inLen {
		b.inBuf = make([]byte, inLen)
	}
	if cap(b.outBuf) < outLen {
		b.outBuf = make([]byte, outLen)
	}
	in, out := b.inBuf[:inLen], b.outBuf[:outLen]
	ranGPU, direct, staged := false, false, false
	var err error
	start := time.Now()
	if b.gpu {
		if gm, ok := mv.m.(GPUModel); ok && b.s.gpuAvailable() {
			if rm, ok := gm.(GPURunsModel); ok {
				err = b.runGPURuns(rm, in, out, info)
				direct = err == nil
			} else {
				b.stageInputs(in, info)
				staged = true
				b.s.stats.gpuStagedItems.Add(uint64(items))
				err = runChunks(gm.PredictGPU, in, out, items, b.s.cfg.MaxBatch, info)
			}
			ranGPU = err == nil
			if err != nil {
				// A GPU fault or launch timeout: the batch runs on the
				// CPU, and counts as a fallback like a batch with no GPU.
				b.s.stats.gpuFallbacks.Add(1)
				b.s.log.Warn().Err(err).Uint32("model", b.model.id).Int("items", items).Msg("GPU batch failed: running it on the CPU")
			}
		} else {
			b.s.stats.gpuFallbacks.Add(1)
		}
	}
	cpuStart := start
	if !ranGPU {
		// The CPU's per-item cost is the CPU run's alone, not a failed
		// GPU attempt's (up to the launch timeout) before it: that cost
		// feeds the placer and the deadline check (missed).
		cpuStart = time.Now()
		if !staged {
			b.stageInputs(in, info)
		}
		err = runChunks(func(in, out []byte, n int) error { return safePredict(mv.m, in, out, n) }, in, out, items, b.s.cfg.MaxBatch, info)
	}
	took := time.Since(start)
	b.s.stats.observeBatch(items, took, ranGPU)
	if err == nil {
		if ranGPU {
			b.gpuItem = ewma(b.gpuItem, float64(took)/float64(items))
		} else {
			b.cpuItem = ewma(b.cpuItem, float64(time.Since(cpuStart))/float64(items))
		}
	}
	status := shm.StatusOK
	if err != nil {
		status = shm.StatusModelFailed
		b.s.log.Warn().Err(err).Uint32("model", b.model.id).Int("items", items).Msg("batch failed")
	}
	off := 0
	for i, r := range b.batch {
		b.batch[i] = nil
		n := r.piece * info.OutputBytes
		c := shm.CQE{Tag: r.tag, Status: status}
		if r.bad {
			c.Status = shm.StatusInternal
		} else if status == shm.StatusOK && !(direct && r.sess.dma) { // direct: the GPU wrote the arena
			// The piece's outputs go to its offset in the request's
			// output range (the client reads none before the completion).
			at := uint64(r.done * info.OutputBytes)
			if dst, aerr := r.sess.region.ArenaRange(r.outOff+at, uint64(n)); aerr == nil && at+uint64(n) <= r.outLen {
				copy(dst, out[off:off+n])
			} else {
				c.Status = shm.StatusInternal // validated at accept time: cannot happen
			}
		}
		off += n
		if c.Status == shm.StatusOK {
			r.done += r.piece
			r.gpu = r.gpu || ranGPU
			r.version, r.piece = mv.version, 0
			if r.done < r.n {
				b.requeue(r)
				continue
			}
		}
		var gpuFlag uint64 // 1: (a piece of) it ran on the GPU
		if r.gpu || ranGPU {
			gpuFlag = 1
		}
		c.Results = [2]uint64{mv.version, gpuFlag}
		b.addCompletion(c, r)
	}
	b.flushCompletions()
	b.batch = b.batch[:0]
	b.items = 0
	b.kernelItems = 0
	b.decided = false
}

// requeue puts r, a large request whose piece ran and that has items
// left, back at the head of its session's queue for its next piece. Its
// session's turn is over: a queue still in the ring was passed when r was
// taken, and a queue made afresh goes last in the turn (not first like a
// light session's). It may take the session's or the model's queue one
// request past its bound (a batch holds at most one unfinished piece):
// r was accepted already and must not be refused. Once stopped, r is
// answered as the queued requests were.
func (b *batcher) requeue(r *predictReq) {
	b.mu.Lock()
	if b.stopped {
		st := b.stopSt
		b.mu.Unlock()
		r.sess.completeAsync(shm.CQE{Tag: r.tag, Status: st}, r)
		return
	}
	q := b.queues[r.sess]
	if q == nil {
		q = b.newQueueLocked(r.sess) // at ring position b.next...
		b.next++                     // ...which now follows it
	}
	q.pushFront(r)
	b.queued++
	b.mu.Unlock()
}

// stageInputs gathers the inputs of every request's piece into in
// (laked's batch buffer): from the copy taken at accept time, or from the
// client's arena for a request whose inputs were left there.
func (b *batcher) stageInputs(in []byte, info ModelInfo) {
	off := 0
	for _, r := range b.batch {
		n, at := r.piece*info.InputBytes, r.done*info.InputBytes
		if r.in != nil {
			copy(in[off:off+n], r.in[at:at+n])
		} else if src, err := r.sess.region.ArenaRange(r.inOff+uint64(at), uint64(n)); err == nil {
			copy(in[off:off+n], src)
		} else {
			clear(in[off : off+n]) // validated at accept time: cannot happen
			r.bad = true
		}
		off += n
	}
}

// runGPURuns runs the batch on a GPU runs path (GPURunsModel) in calls of
// at most MaxBatch records: inputs left in a registered arena are copied
// from there, one copy per stretch of records adjacent in it; outputs of
// a client whose region is registered go straight to its output range.
// Only the rest (clients whose region is not registered, requests whose
// inputs were copied at accept) passes through laked's buffers, and is
// counted in Stats.GPUStagedItems.
func (b *batcher) runGPURuns(rm GPURunsModel, in, out []byte, info ModelInfo) error {
	b.inMem.b, b.outMem.b = in, out
	defer func() {
		// Keep no reference to a client's arena past the batch.
		b.inMem.b, b.outMem.b = nil, nil
		clear(b.inRuns)
		clear(b.outRuns)
		clear(b.inSpans)
		clear(b.outSpans)
		clear(b.runs)
	}()
	b.inSpans, b.outSpans = b.inSpans[:0], b.outSpans[:0]
	item, staged := 0, 0
	for _, r := range b.batch {
		// The request's piece: its records [done, done+piece).
		ib, ob := uint64(item*info.InputBytes), uint64(item*info.OutputBytes)
		ri, ro := r.done*info.InputBytes, uint64(r.done*info.OutputBytes)
		if r.in != nil {
			copy(in[ib:], r.in[ri:ri+r.piece*info.InputBytes])
			b.inSpans = append(b.inSpans, recSpan{mem: &b.inMem, off: ib, items: r.piece})
		} else {
			b.inSpans = append(b.inSpans, recSpan{mem: r.sess.region, off: r.inOff + uint64(ri), items: r.piece})
		}
		if r.sess.dma {
			b.outSpans = append(b.outSpans, recSpan{mem: r.sess.region, off: r.outOff + ro, items: r.piece})
		} else {
			b.outSpans = append(b.outSpans, recSpan{mem: &b.outMem, off: ob, items: r.piece})
		}
		if r.in != nil || !r.sess.dma {
			staged += r.piece
		}
		item += r.piece
	}
	b.s.stats.gpuStagedItems.Add(uint64(staged))
	b.s.stats.gpuDirectItems.Add(uint64(item - staged))
	limit := b.s.cfg.MaxBatch
	for lo := 0; lo < item; lo += limit {
		hi := min(lo+limit, item)
		var err error
		if b.runs, err = planRuns(b.runs[:0], b.inSpans, uint64(info.InputBytes), lo, hi); err != nil {
			return err
		}
		if b.inRuns, err = resolveRuns(b.inRuns[:0], b.runs); err != nil {
			return err
		}
		if b.runs, err = planRuns(b.runs[:0], b.outSpans, uint64(info.OutputBytes), lo, hi); err != nil {
			return err
		}
		if b.outRuns, err = resolveRuns(b.outRuns[:0], b.runs); err != nil {
			return err
		}
		if err := rm.PredictGPURuns(b.inRuns, b.outRuns, hi-lo); err != nil {
			return err
		}
	}
	return nil
}

// sessDone gathers one session's completions of a batch, so that each
// session gets one ring post and one doorbell per batch.
type sessDone struct {
	sess *session
	cs   []shm.CQE
	rs   []*predictReq
}

func (b *batcher) addCompletion(c shm.CQE, r *predictReq) {
	for i := range b.done {
		if d := &b.done[i]; d.sess == r.sess {
			d.cs, d.rs = append(d.cs, c), append(d.rs, r)
			return
		}
	}
	if len(b.done) < cap(b.done) {
		b.done = b.done[:len(b.done)+1]
		d := &b.done[len(b.done)-1]
		d.sess, d.cs, d.rs = r.sess, append(d.cs[:0], c), append(d.rs[:0], r)
		return
	}
	b.done = append(b.done, sessDone{sess: r.sess, cs: []shm.CQE{c}, rs: []*predictReq{r}})
}

func (b *batcher) flushCompletions() {
	for i := range b.done {
		d := &b.done[i]
		d.sess.completeMany(d.cs, d.rs)
		clear(d.rs)
		d.sess = nil
	}
	b.done = b.done[:0]
}

// runChunks runs items records through run in calls of at most limit
// records (batch.max_size is a hard cap on one model call).
func runChunks(run func(in, out []byte, n int) error, in, out []byte, items, limit int, info ModelInfo) error {
	for done := 0; done < items; {
		n := min(items-done, limit)
		if err := run(in[done*info.InputBytes:(done+n)*info.InputBytes], out[done*info.OutputBytes:(done+n)*info.OutputBytes], n); err != nil {
			return err
		}
		done += n
	}
	return nil
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
