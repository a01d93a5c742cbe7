package laked

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/shm"
)

// Per-session limits.
const (
	maxContextsPerSession = 64
	maxPredictItems       = 65536
	maxNameLen            = 256
	readBatch             = 64
	idleSleep             = 100 * time.Millisecond
	drainPostTimeout      = 2 * time.Second
)

// commitDeferrer is implemented by transports whose completion doorbell
// the session reader can defer while it works and combine with its next
// wait (/dev/lake's commit-and-fetch ioctl).
type commitDeferrer interface {
	BeginWork()
	EndWork()
	Flush() error
}

// kicker is implemented by transports that can wake their own sleeping
// reader (to notice a drain or a departed client at once).
type kicker interface{ Kick() }

// session serves one client region.
type session struct {
	srv    *Server
	id     uint32
	t      Transport
	region *shm.Region
	sq     *shm.SQ
	cq     *shm.CQ

	cqMu       sync.Mutex
	overflow   []shm.CQE    // completions waiting for ring space, oldest first
	heldBack   atomic.Bool  // overflow is not empty (read without cqMu by the poller)
	warnedBell atomic.Bool  // logged that its client wakes laked for nothing
	fullChecks atomic.Int64 // times its goroutine found the completion ring still full (tests)
	bellHeld   bool         // the poller defers the completion doorbell (holdBell)
	bellOwed   bool         // completions were posted while it was held
	pending    []shm.CQE    // reader-local completions not yet posted

	inflight sync.WaitGroup // accepted predict requests not yet completed
	// admission budgets of this session (Limits)
	inflightBudget budget
	queuedBudget   budget
	draining       atomic.Bool

	// lifeMu guards closed: once the transport is closed (and the region
	// unmapped) nobody may touch the region again.
	lifeMu sync.Mutex
	closed bool

	ctxs    map[uint64]backend.Context // written by the reader goroutine only, under ctxMu
	ctxMu   sync.Mutex                 // guards ctxs against abortOnDeparture
	nctx    atomic.Int32               // len(ctxs), for Sessions
	nextCtx uint64
	spinner shm.Spinner
	toRun   []*batcher // models this reader queued predicts for since it last ran them

	// The poller (poller.go) serves the ring while it holds the session:
	// handback is closed (and released set) when it gives the session
	// back to its goroutine; carry holds the submissions it consumed
	// from a device operation on, which the goroutine handles first.
	handback chan struct{}
	released atomic.Bool
	carry    []shm.SQE
	heavy    bool          // the poller takes the ring a batch at a time (owned by the poller)
	drainCh  chan struct{} // closed by drain
	drainMu  sync.Once

	unregister func() error // undoes the backend's registration of the region, or nil

	// dma: the GPU backend (Config.GPU) registered the region, so GPU
	// batches copy this client's records straight from and to its arena
	// (GPURunsModel).
	dma     bool
	kernel  bool // the client is the kernel: its predicts count as kernel items
	trusted bool // contexts come from backend.TrustedBackend.NewTrustedContext
}

func newSession(s *Server, id uint32, t Transport) *session {
	r := t.Region()
	sess := &session{
		srv: s, id: id, t: t, region: r, sq: r.SQ(), cq: r.CQ(),
		ctxs:    map[uint64]backend.Context{},
		drainCh: make(chan struct{}),
		spinner: shm.Spinner{Forever: s.cfg.BusyPoll, Window: s.cfg.IdleSpin, OSYield: s.cfg.IdleYield},
	}
	sess.inflightBudget.max = uint64(s.limits.SessionInflight)
	sess.queuedBudget.max = s.limits.SessionQueuedBytes
	if k, ok := t.(interface{ Kernel() bool }); ok {
		sess.kernel = k.Kernel()
	}
	if k, ok := t.(interface{ Trusted() bool }); ok {
		sess.trusted = k.Trusted()
	}
	// Register the region for DMA with the GPU backend (the model path's;
	// a registration is portable to all its contexts, so with
	// gpu.contexts it also serves the client's own), else with the
	// backend serving the client's contexts.
	hr, gpu := s.cfg.GPU.(backend.HostRegisterer)
	if !gpu {
		hr, _ = s.cfg.Backend.(backend.HostRegisterer)
	}
	if hr != nil {
		if u, err := hr.RegisterHost(r.Bytes()); err == nil {
			sess.unregister = u
			sess.dma = gpu
		} else {
			s.log.Warn().Err(err).Uint32("client", id).Msg("register region for DMA: this client's GPU batches and copies are staged through laked's buffers (Stats.GPUStagedItems)")
		}
	}
	return sess
}

// drain asks the session to finish: answer what is in the ring, complete
// what is in flight, and end.
func (s *session) drain() {
	s.draining.Store(true)
	if s.drainCh != nil {
		s.drainMu.Do(func() { close(s.drainCh) })
	}
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return
	}
	s.region.SetDaemonState(shm.DaemonDraining)
	if k, ok := s.t.(kicker); ok {
		k.Kick()
	}
}

func (s *session) gone() bool {
	g := s.t.Gone()
	if g == nil {
		return false
	}
	select {
	case <-g:
		return true
	default:
		return false
	}
}

func (s *session) stopSpinning() bool { return s.draining.Load() || s.gone() }

// spin waits for the next submission without sleeping, for the idle
// window, if a spin slot is free (BusyPoll readers always spin).
func (s *session) spin() bool {
	if s.srv.cfg.BusyPoll {
		return s.spinner.Spin(s.sq.Pending, s.stopSpinning)
	}
	if s.srv.cfg.IdleSpin < 0 {
		return false
	}
	select {
	case s.srv.spinSlots <- struct{}{}:
	default:
		return false
	}
	ok := s.spinner.Spin(s.sq.Pending, s.stopSpinning)
	<-s.srv.spinSlots
	return ok
}

// abortOnDeparture aborts the session's contexts as soon as the client
// is gone, so that a kernel it launched stops now instead of running to
// completion for nobody (the reader may be inside a synchronous launch
// and only notice the departure after it).
func (s *session) abortOnDeparture(ended <-chan struct{}) {
	g := s.t.Gone()
	if g == nil {
		return
	}
	select {
	case <-g:
	case <-ended:
		return
	}
	s.ctxMu.Lock()
	for _, c := range s.ctxs {
		if a, ok := c.(backend.Aborter); ok {
			a.Abort()
		}
	}
	s.ctxMu.Unlock()
}

func (s *session) run() {
	ended := make(chan struct{})
	defer close(ended)
	go s.abortOnDeparture(ended)
	defer s.teardown()
	if s.region.DaemonState() != shm.DaemonDetached {
		// The laked that served the region before died without
		// detaching it (kill -9): a sleeper it had announced on the
		// submission doorbell is announced for good (its decrement died
		// with it), and the client would ring the doorbell at every
		// submission. No other laked serves the region now (a client
		// re-attaches once the old laked's connection has closed; one
		// laked at a time opens /dev/lake).
		s.sq.Bell.Waiters.Store(0)
	}
	s.sq.ResumeConsumer()
	s.region.BumpDaemonEpoch()
	s.region.SetDaemonState(shm.DaemonServing)
	buf := make([]shm.SQE, readBatch)
	if _, ok := s.t.(commitDeferrer); ok {
		// The kernel's transport: its own reader, which defers the
		// completion doorbell to its next wait.
		s.read(buf, false)
		return
	}
	for {
		if s.draining.Load() {
			s.finalDrain(buf)
			return
		}
		if s.gone() {
			return
		}
		s.srv.poller.serve(s)
		if !s.read(buf, true) {
			return
		}
	}
}

// read serves the session's ring on its own goroutine, starting with the
// submissions in s.carry. With untilDry it returns true as soon as the
// ring has run dry (the session then goes back to the poller); otherwise
// it spins for the idle window and sleeps on the doorbell when idle. It
// returns false when the session ends (drained, or its client left).
func (s *session) read(buf []shm.SQE, untilDry bool) bool {
	worked := false // found work since it last slept: the idle window applies
	cqFull, bell := cqFullBackoff(s.kernel), doorbellBackoff()
	for {
		if s.draining.Load() {
			s.finalDrain(buf)
			return false
		}
		if s.gone() {
			return false
		}
		if !s.flushOverflow() {
			// The client's completion ring is full: stop reading its
			// submissions until it reaps (back-pressure), looking again
			// after 50 µs, then less and less often (backoff).
			s.fullChecks.Add(1)
			cqFull.wait()
			continue
		}
		cqFull.reset()
		n := copy(buf, s.carry)
		if n > 0 {
			s.carry = append(s.carry[:0], s.carry[n:]...)
		} else {
			n = s.sq.Consume(buf)
			s.srv.stats.submissions.Add(uint64(n))
		}
		if n > 0 {
			cd, _ := s.t.(commitDeferrer)
			if cd != nil {
				cd.BeginWork()
			}
			for i := range buf[:n] {
				s.handle(&buf[i])
			}
			s.postPending()
			s.runQueued()
			if cd != nil {
				cd.EndWork()
			}
			worked = true
			continue
		}
		if untilDry {
			return true
		}
		if worked && (s.srv.cfg.BusyPoll || s.srv.cfg.IdleSpin >= 0) {
			// Spinning: let the kernel callers have their completions now.
			if cd, ok := s.t.(commitDeferrer); ok {
				if err := cd.Flush(); err != nil {
					s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("completion doorbell")
				}
			}
			if s.spin() {
				continue
			}
		}
		worked = false
		start := time.Now()
		if err := s.t.WaitSubmissions(s.sq.Pending, idleSleep); err != nil {
			s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("doorbell wait failed")
			time.Sleep(time.Millisecond)
		}
		s.afterDoorbellWait(&bell, start, s.sq.Pending() || s.stopSpinning())
	}
}

// afterDoorbellWait counts a doorbell wait that began at start and
// returned quickly with nothing to do (work false) as spurious: the
// client rang, or rewrote, its doorbell without publishing anything.
// Past a few, each such return costs a sleep (backoff); one that
// finds work, or a wait that lasted, resets it.
//
// Kernel sessions (/dev/lake) are exempt: the kernel is not a hostile
// client, its wait (LAKE_IOC_COMMIT_WAIT, poll) has wake-ups of its own
// (laked's kicks, signals), and a sleep there would delay kernel I/O.
func (s *session) afterDoorbellWait(b *backoff, start time.Time, work bool) {
	if s.kernel || work || time.Since(start) >= quickReturn {
		b.reset()
		return
	}
	if !b.wait() {
		return
	}
	s.srv.stats.spuriousWakes.Add(1)
	if !s.warnedBell.Swap(true) {
		s.srv.log.Warn().Uint32("client", s.id).Msg("client wakes laked without submitting anything: its doorbell is checked less often until it does")
	}
}

// runQueued runs the batches of the models this reader queued predicts
// for (unless another runner has them): a batch placed on the CPU runs
// here, with whatever else is queued, and completes without a hand-off.
func (s *session) runQueued() {
	for i, b := range s.toRun {
		b.tryRun()
		s.toRun[i] = nil
	}
	s.toRun = s.toRun[:0]
}

// finalDrain answers every submission still published with "shutting
// down", waits for in-flight requests and posts everything.
func (s *session) finalDrain(buf []shm.SQE) {
	for {
		n := copy(buf, s.carry) // consumed (and counted) by the poller
		if n > 0 {
			s.carry = append(s.carry[:0], s.carry[n:]...)
		} else {
			n = s.sq.Consume(buf)
			s.srv.stats.submissions.Add(uint64(n))
		}
		if n == 0 {
			break
		}
		for i := range buf[:n] {
			s.pending = append(s.pending, shm.CQE{Tag: buf[i].Tag, Status: shm.StatusShutdown})
		}
		s.postPending()
	}
	s.inflight.Wait()
	deadline := time.Now().Add(drainPostTimeout)
	for !s.flushOverflow() {
		if s.gone() || time.Now().After(deadline) {
			s.cqMu.Lock()
			lost := len(s.overflow)
			s.cqMu.Unlock()
			s.srv.log.Warn().Uint32("client", s.id).Int("completions", lost).Msg("client stopped reaping: completions not delivered before shutdown")
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *session) teardown() {
	s.inflight.Wait()
	for h, c := range s.ctxs {
		if a, ok := c.(backend.Aborter); ok && s.gone() {
			a.Abort() // nobody waits for its queued work any more
		}
		if err := c.Destroy(); err != nil {
			s.srv.log.Warn().Err(err).Uint32("client", s.id).Uint64("ctx", h).Msg("destroy context")
		}
		s.ctxMu.Lock()
		delete(s.ctxs, h)
		s.ctxMu.Unlock()
	}
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.closed = true
	s.region.SetDaemonState(shm.DaemonDetached)
	if s.unregister != nil {
		if err := s.unregister(); err != nil {
			s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("unregister region")
		}
	}
	if err := s.t.Close(); err != nil {
		s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("close transport")
	}
}

// post writes completions to the ring, keeping what does not fit in the
// overflow list, and rings the doorbell. Callers hold cqMu.
func (s *session) postLocked(cs []shm.CQE) {
	if len(s.overflow) > 0 {
		s.overflow = append(s.overflow, cs...)
		s.srv.stats.overflowed.Add(uint64(len(cs)))
		return
	}
	n := s.cq.Post(cs)
	if n < len(cs) {
		s.overflow = append(s.overflow, cs[n:]...)
		s.heldBack.Store(true)
		s.srv.stats.overflowed.Add(uint64(len(cs) - n))
	}
	if n > 0 {
		s.ringLocked()
	}
}

// ringLocked rings the completion doorbell, or, while the poller holds
// it (holdBell), notes that it owes a ring. Callers hold cqMu.
func (s *session) ringLocked() {
	if s.bellHeld {
		s.bellOwed = true
		return
	}
	if err := s.t.NotifyCompletions(); err != nil {
		s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("completion doorbell")
	}
}

// holdBell defers the completion doorbell until releaseBell: the
// completions are posted (a spinning client sees them at once), and a
// sleeping client is woken once for all of them.
func (s *session) holdBell() {
	s.cqMu.Lock()
	s.bellHeld = true
	s.cqMu.Unlock()
}

// releaseBell rings the doorbell if completions were posted since
// holdBell, unless the session has ended: the poller may have handed
// the session back during its visit, and its goroutine torn it down (and
// unmapped the region) since.
func (s *session) releaseBell() {
	s.cqMu.Lock()
	owed := s.bellOwed
	s.bellHeld, s.bellOwed = false, false
	s.cqMu.Unlock()
	if owed {
		s.ringFromRinger()
	}
}

// releaseBellTo is releaseBell that leaves the ring, if one is owed, to
// the poller's ringer; false: its queue is full, nothing was released.
func (s *session) releaseBellTo(ring chan<- *session) bool {
	s.cqMu.Lock()
	defer s.cqMu.Unlock()
	if s.bellOwed {
		select {
		case ring <- s:
		default:
			return false
		}
	}
	s.bellHeld, s.bellOwed = false, false
	return true
}

// ringFromRinger rings the completion doorbell for the poller (its ringer,
// or releaseBell when the ringer has a long queue),
// unless the session has ended (its region may be unmapped).
func (s *session) ringFromRinger() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed {
		return
	}
	if err := s.t.NotifyCompletions(); err != nil {
		s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("completion doorbell")
	}
}

func (s *session) postPending() {
	if len(s.pending) == 0 {
		return
	}
	s.srv.stats.completeBatch(s.pending)
	s.cqMu.Lock()
	s.postLocked(s.pending)
	s.cqMu.Unlock()
	s.pending = s.pending[:0]
}

// flushOverflow posts held-back completions; it reports whether none are
// left.
func (s *session) flushOverflow() bool {
	s.cqMu.Lock()
	defer s.cqMu.Unlock()
	if len(s.overflow) == 0 {
		return true
	}
	n := s.cq.Post(s.overflow)
	if n > 0 {
		s.overflow = append(s.overflow[:0], s.overflow[n:]...)
		s.ringLocked()
	}
	s.heldBack.Store(len(s.overflow) > 0)
	return len(s.overflow) == 0
}

// completeAsync posts the completion of an accepted predict request.
func (s *session) completeAsync(c shm.CQE, r *predictReq) {
	one := [1]shm.CQE{c}
	rs := [1]*predictReq{r}
	s.completeMany(one[:], rs[:])
}

// completeMany posts the completions cs of the accepted predicts rs (same
// length, all of this session) with one ring post and one doorbell.
func (s *session) completeMany(cs []shm.CQE, rs []*predictReq) {
	now := time.Now()
	for i, r := range rs {
		s.srv.stats.complete(cs[i].Status)
		s.srv.stats.observeWait(now.Sub(r.start))
		if r.inp != nil {
			bufPool.Put(r.inp)
			r.inp, r.in = nil, nil
		}
		// The budgets are given back before the client can see the
		// completion, so a client that saw it can count on the room.
		s.unadmit(r.cost)
	}
	s.cqMu.Lock()
	s.postLocked(cs)
	s.cqMu.Unlock()
	s.inflight.Add(-len(rs))
	for i, r := range rs {
		putReq(r)
		rs[i] = nil
	}
}

// statusOf maps a backend error to a protocol status.
func statusOf(err error) shm.Status {
	switch {
	case err == nil:
		return shm.StatusOK
	case errors.Is(err, backend.ErrInvalidValue):
		return shm.StatusInvalidValue
	case errors.Is(err, backend.ErrInvalidHandle):
		return shm.StatusInvalidHandle
	case errors.Is(err, backend.ErrOutOfMemory):
		return shm.StatusOutOfMemory
	case errors.Is(err, backend.ErrNotFound):
		return shm.StatusNotFound
	case errors.Is(err, backend.ErrLaunchFailed):
		return shm.StatusLaunchFailed
	case errors.Is(err, backend.ErrContextDestroyed):
		return shm.StatusContextDestroyed
	case errors.Is(err, backend.ErrNotSupported):
		return shm.StatusNotSupported
	default:
		return shm.StatusInternal
	}
}
