package laked

import (
	"slices"
	"sync"
	"time"

	"github.com/lakeos/lake/shm"
)

// poller serves the submission rings of the userspace sessions from one
// goroutine, as io_uring's SQPOLL thread does, instead of a reader
// goroutine per session asleep on its own doorbell (with which every
// ring cycle of N bursting clients woke N OS threads, and a light
// session's reader waited in Go's run queue behind them: milliseconds).
// While any session has work the poller makes passes (pass): it scans
// every ring, consumes a bounded number of submissions, handles them,
// and runs the batches they queued on its own goroutine
// (batcher.tryRunFor: light sessions first, no hand-off for a cheap CPU
// batch; a GPU batch, a costly one or a long backlog goes to the
// model's runner goroutine). A bursting client costs laked no wake-up
// per ring cycle, and a light client's request is consumed within one
// pass, however many sessions burst.
//
// The poller runs only the operations that complete at once: nop, init,
// model_info, predict (and answers to malformed slots). At a session's
// first other operation (a device operation, model_fetch) it hands the
// session back to the session's own goroutine (with the submissions it consumed from that
// one on, session.carry), which serves the ring itself, in order, until
// it runs dry, and then hands it to the poller again: a synchronous
// device call (a CPU-backend launch, a GPU copy) never holds up the
// other sessions.
//
// Doorbells: while the poller is awake no session announces a sleeper
// on its submission doorbell, so clients do not ring it. When the
// poller has found nothing for its idle window (Config.IdleSpin;
// BusyPoll: never) it sleeps; each session's goroutine then sleeps on
// its session's doorbell (announced as before, PROTOCOL.md "Doorbells")
// and wakes the poller when its client rings. A drain or a departure
// wakes the poller too; it hands such a session back to its goroutine,
// which drains it (finalDrain) and tears it down.
//
// Sessions of transports that defer their completion doorbell (the
// kernel's /dev/lake, commitDeferrer) keep their own reader.
type poller struct {
	srv *Server

	mu       sync.Mutex
	incoming []*session // handed to the poller, not yet taken by its loop
	nap      *nap       // the loop's next (or current) sleep
	started  bool

	wake chan struct{} // capacity 1: something for the loop to look at

	// ringer takes the completion doorbells of heavy visits to
	// ringLoop, which rings them on another goroutine: a futex wake of
	// a sleeping client costs its ringer 2-4 µs, and tens of µs when
	// the woken thread takes the ringer's CPU, which the poller must
	// not lose.
	ringer chan *session

	// Owned by the loop goroutine.
	sessions []*session // sessions the loop serves, in scan order
	next     int        // where the next heavy visit looks first
	buf      []shm.SQE
	runs     []*batcher // models with predicts queued in this pass
	spinner  shm.Spinner

	handedBack func(*session) // tests: called as handBack gives a session back
}

// A pass of the poller (pass) is a light scan, then one heavy visit:
//
//   - the light scan visits every light session and consumes at most
//     lightQuota submissions of each, then runs the batches;
//   - the heavy visit (heavyVisit) consumes at most heavyQuota (and
//     MaxBatch) submissions of the next heavy session in round robin
//     that has any, heavyChunk at a time, and after each chunk scans
//     the light sessions again and runs the batches (the light requests
//     first in them: batcher.newQueueLocked); the heavy session's
//     completion doorbell is rung once, at the end of the visit.
//
// A session turns heavy when a visit finds at least lightQuota
// submissions in its ring (a bursting client), and light when a visit
// finds fewer, but some (a closed-loop client); it starts light. A
// light session's request therefore waits for at most one chunk of a
// heavy visit and its batch, however many sessions burst; a bursting
// session's ring is taken about a batch at a time, with one completion
// doorbell per visit; and every heavy session with work gets a visit
// within one round of the heavy sessions.
const (
	lightQuota = 4
	heavyQuota = readBatch
	heavyChunk = 16
)

// nap is one sleep of the poller's loop.
type nap struct {
	asleep chan struct{} // closed when the loop falls asleep
	woke   chan struct{} // closed when it wakes again
}

func newNap() *nap { return &nap{asleep: make(chan struct{}), woke: make(chan struct{})} }

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func newPoller(s *Server) *poller {
	return &poller{
		srv:     s,
		nap:     newNap(),
		wake:    make(chan struct{}, 1),
		ringer:  make(chan *session, 1024),
		buf:     make([]shm.SQE, readBatch),
		spinner: shm.Spinner{Forever: s.cfg.BusyPoll, Window: s.cfg.IdleSpin, OSYield: s.cfg.IdleYield},
	}
}

// kick wakes the loop (or makes its next sleep return at once).
func (p *poller) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// polled reports whether the poller may run op: it completes at once
// (model_fetch copies an image of up to MaxImageBytes: it is not).
func polled(op shm.Opcode) bool {
	switch op {
	case shm.OpNop, shm.OpInit, shm.OpModelInfo, shm.OpPredict:
		return true
	}
	return !op.Valid() // answered "bad opcode" at once
}

// serve hands s to the poller and returns when the poller gives it back:
// s drains, its client left, or the poller met a device operation (left
// in s.carry with what followed it). Meanwhile the calling goroutine is
// s's doorbell sleeper for the times the poller sleeps.
func (p *poller) serve(s *session) {
	s.released.Store(false)
	s.handback = make(chan struct{})
	back := s.handback
	p.mu.Lock()
	p.incoming = append(p.incoming, s)
	if !p.started {
		p.started = true
		go p.loop()
	}
	n := p.nap
	p.mu.Unlock()
	p.kick()
	stop := s.t.Gone()
	bell := doorbellBackoff()
	for {
		select {
		case <-back:
			return
		case <-stop:
			stop = nil // the poller notices it on its next visit
			p.kick()
		case <-s.drainCh:
			p.kick()
			<-back
			return
		case <-n.asleep:
			// The poller sleeps: sleep on s's doorbell for it.
			ready := func() bool {
				return s.sq.Published() || s.heldBack.Load() || s.released.Load() || s.stopSpinning() || closed(n.woke)
			}
			start := time.Now()
			if err := s.t.WaitSubmissions(ready, idleSleep); err != nil {
				s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("doorbell wait failed")
				time.Sleep(time.Millisecond)
			}
			s.afterDoorbellWait(&bell, start, ready())
			if s.sq.Published() || s.heldBack.Load() || s.stopSpinning() {
				// Wake the poller, and sleep on the doorbell again
				// only at its next nap.
				p.kick()
				select {
				case <-n.woke:
				case <-back:
					return
				}
			}
		}
		p.mu.Lock()
		n = p.nap
		p.mu.Unlock()
	}
}

// handBack gives s back to its goroutine (the loop has forgotten it).
func (p *poller) handBack(s *session) {
	s.released.Store(true)
	close(s.handback)
	if k, ok := s.t.(kicker); ok {
		k.Kick() // its goroutine may sleep on the doorbell
	}
	if p.handedBack != nil {
		p.handedBack(s)
	}
}

func (p *poller) loop() {
	go p.ringLoop()
	defer func() { p.ringer <- nil }() // after every ring the loop left to it
	worked := false                    // found work since it last slept: the idle window applies
	for {
		p.take()
		if p.pass() > 0 {
			worked = true
			continue
		}
		if len(p.wake) > 0 {
			<-p.wake
			continue
		}
		if worked && (p.srv.cfg.BusyPoll || p.srv.cfg.IdleSpin >= 0) && len(p.sessions) > 0 {
			if p.spinner.Spin(p.ready, nil) {
				continue
			}
		}
		worked = false
		if !p.sleep() {
			return
		}
	}
}

// take adds the sessions handed to the poller to the scan.
func (p *poller) take() {
	p.mu.Lock()
	p.sessions = append(p.sessions, p.incoming...)
	clear(p.incoming)
	p.incoming = p.incoming[:0]
	p.mu.Unlock()
}

// ready reports whether the loop has something to do (spin condition).
func (p *poller) ready() bool {
	if len(p.wake) > 0 {
		return true
	}
	for _, s := range p.sessions {
		if s.sq.Pending() || s.heldBack.Load() {
			return true
		}
	}
	return false
}

// sleep waits for a kick; false once the server has stopped and no
// session is left to serve.
func (p *poller) sleep() bool {
	p.mu.Lock()
	if len(p.incoming) > 0 {
		p.mu.Unlock()
		return true
	}
	n := p.nap
	close(n.asleep)
	p.mu.Unlock()
	select {
	case <-p.wake:
	case <-p.srv.done:
		p.mu.Lock()
		if len(p.sessions) == 0 && len(p.incoming) == 0 {
			// The server has stopped and nothing is left to serve: end
			// the loop (serve starts another if a session comes back).
			p.started = false
			p.nap = newNap()
			p.mu.Unlock()
			close(n.woke)
			return false
		}
		p.mu.Unlock()
		<-p.wake
	}
	p.mu.Lock()
	p.nap = newNap()
	p.mu.Unlock()
	close(n.woke)
	return true
}

// pass is one light scan and one heavy visit. It returns the
// submissions it consumed.
func (p *poller) pass() int {
	consumed := p.lightScan()
	p.runQueued()
	for k := range p.sessions {
		i := (p.next + k) % len(p.sessions)
		if s := p.sessions[i]; s != nil && s.heavy && s.sq.Pending() {
			p.next = i + 1
			consumed += p.heavyVisit(i, min(heavyQuota, p.srv.cfg.MaxBatch))
			break
		}
	}
	p.sessions = slices.DeleteFunc(p.sessions, func(s *session) bool { return s == nil })
	return consumed
}

// heavyVisit takes up to quota submissions of the heavy session
// p.sessions[i], heavyChunk at a time; after each chunk it scans the
// light sessions and runs the batches (the light requests first in
// them), so that a light request waits for one chunk, not the whole
// visit. The session's completion doorbell is rung once, at the end of
// the visit, by ringLoop (a futex wake costs its caller several µs, tens
// when the woken thread takes its CPU), or here when ringLoop has a
// long queue. It returns the submissions it consumed, the light
// sessions' included.
func (p *poller) heavyVisit(i, quota int) int {
	s := p.sessions[i]
	s.holdBell()
	defer func() {
		if !s.releaseBellTo(p.ringer) {
			s.releaseBell()
		}
	}()
	taken, consumed := 0, 0
	for taken < quota && p.sessions[i] != nil {
		n := p.visit(i, min(heavyChunk, quota-taken))
		taken += n
		consumed += n + p.lightScan()
		p.runQueued()
		if n == 0 {
			break
		}
	}
	if taken > 0 && taken < lightQuota {
		s.heavy = false
	}
	return consumed
}

// lightScan visits every light session (and hands back every session
// that drains or whose client left, and posts the completions held
// back of every session). It returns the submissions it
// consumed.
func (p *poller) lightScan() int {
	consumed := 0
	for i, s := range p.sessions {
		switch {
		case s == nil:
		case !s.heavy:
			n := p.visit(i, lightQuota)
			if n >= lightQuota {
				s.heavy = true
			}
			consumed += n
		case s.draining.Load() || s.gone():
			p.sessions[i] = nil
			p.handBack(s)
		case s.heldBack.Load():
			// Completions held back for want of ring space: post
			// them now (or hand the session back if the client still
			// does not reap), even if its ring stays empty.
			p.visit(i, 0)
		}
	}
	return consumed
}

// runQueued runs the batches of the models the poller queued predicts
// for (unless another runner has them, or they are costly: see
// polledBatchCost).
func (p *poller) runQueued() {
	for i, b := range p.runs {
		b.tryRunFor(true)
		p.runs[i] = nil
	}
	p.runs = p.runs[:0]
}

// visit consumes at most quota submissions of p.sessions[i] and handles
// them; it returns how many it consumed. A session that drains, whose
// client left, whose completion ring is full or that has a device
// operation is handed back to its goroutine and left nil in p.sessions.
func (p *poller) visit(i, quota int) int {
	s := p.sessions[i]
	if s.draining.Load() || s.gone() {
		p.sessions[i] = nil
		p.handBack(s)
		return 0
	}
	if !s.flushOverflow() {
		// Its completion ring is full: its goroutine waits for the
		// client to reap (back-pressure) before it reads the ring, so
		// that the poller neither spins nor skips it forever.
		p.sessions[i] = nil
		p.handBack(s)
		return 0
	}
	n := s.sq.Consume(p.buf[:quota])
	if n == 0 {
		return 0
	}
	s.srv.stats.submissions.Add(uint64(n))
	keep := true
	for i := range p.buf[:n] {
		if !polled(p.buf[i].Opcode) {
			s.carry = append(s.carry[:0], p.buf[i:n]...)
			keep = false
			break
		}
		s.handle(&p.buf[i])
	}
	s.postPending()
	for i, b := range s.toRun {
		if !slices.Contains(p.runs, b) {
			p.runs = append(p.runs, b)
		}
		s.toRun[i] = nil
	}
	s.toRun = s.toRun[:0]
	if !keep {
		p.sessions[i] = nil
		p.handBack(s)
	}
	return n
}

// ringLoop rings the doorbells the poller leaves to it (the loop runs
// it), until it receives nil.
func (p *poller) ringLoop() {
	for s := range p.ringer {
		if s == nil {
			return
		}
		s.ringFromRinger()
	}
}
