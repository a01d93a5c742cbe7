package laked

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lakeos/lake/shm"
)

// poller serves the submission rings of the userspace sessions from one
// goroutine, as io_uring's SQPOLL thread does: while any of them has
// work it scans every ring in turn, consumes at most a small quota from
// each (so that one pass handles about one batch, MaxBatch submissions,
// however many sessions burst), and then runs the batches it queued on
// its own goroutine (batcher.tryRun: light sessions first, no hand-off
// for a CPU batch; a GPU batch or a long backlog goes to the model's
// runner goroutine). A request published in any ring is therefore
// consumed within one pass of the poller, whatever the other sessions
// do, and a bursting session costs laked no OS-thread wake-up per
// submission.
//
// The poller runs only the operations that cannot block: nop, init,
// model_info, model_fetch, predict (and answers to malformed slots). At
// the first device operation of a session it hands the session back to
// the session's own goroutine (with the submissions it consumed after
// it, session.carry), which serves the ring itself, in order, until it
// runs dry, and then hands it to the poller again: a synchronous device
// call (a launch on the CPU backend, a GPU copy) never holds up the
// other sessions.
//
// Doorbells: while the poller is awake nobody announces that it sleeps
// on a session's submission doorbell, so clients do not ring it. When
// the poller has found nothing for its idle window (Config.IdleSpin;
// BusyPoll: never) it sleeps; each session's goroutine then sleeps on
// its session's doorbell (announced as before, PROTOCOL.md "Doorbells")
// and wakes the poller when its client rings. Drains and departures
// wake the poller too; it gives such a session back to its goroutine,
// which drains it (finalDrain) and tears it down.
//
// Sessions of transports that defer their completion doorbell (the
// kernel's /dev/lake, commitDeferrer) keep their own reader.
type poller struct {
	srv *Server

	mu       sync.Mutex
	incoming []*session    // handed to the poller, not yet taken by its loop
	asleep   chan struct{} // closed while the loop sleeps; replaced when it wakes
	started  bool

	wake chan struct{} // capacity 1: something for the loop to look at

	// Owned by the loop goroutine.
	sessions []*session // sessions the loop serves, in scan order
	next     int        // where the next pass starts
	active   int        // sessions that had work in the last pass
	buf      []shm.SQE
	runs     []*batcher // models with predicts queued in this pass
	spinner  shm.Spinner

	passes atomic.Uint64 // passes that consumed something (tests)
}

// pollerQuota bounds the submissions the poller consumes from one
// session in one pass: MaxBatch shared among the sessions that had work
// in the previous pass, at least minPollQuota, at most the read batch.
const minPollQuota = 1

func newPoller(s *Server) *poller {
	return &poller{
		srv:     s,
		asleep:  make(chan struct{}),
		wake:    make(chan struct{}, 1),
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

// polled reports whether the poller may run op: it completes without
// blocking.
func polled(op shm.Opcode) bool {
	switch op {
	case shm.OpNop, shm.OpInit, shm.OpModelInfo, shm.OpModelFetch, shm.OpPredict:
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
	asleep := p.asleep
	p.mu.Unlock()
	p.kick()
	stop := s.t.Gone()
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
		case <-asleep:
			// The poller sleeps: sleep on s's doorbell for it.
			ready := func() bool {
				return s.sq.Published() || s.released.Load() || s.stopSpinning() || !p.sleeping()
			}
			if err := s.t.WaitSubmissions(ready, idleSleep); err != nil {
				s.srv.log.Warn().Err(err).Uint32("client", s.id).Msg("doorbell wait failed")
			}
			if s.sq.Published() || s.stopSpinning() {
				p.kick()
			}
		}
		p.mu.Lock()
		asleep = p.asleep
		p.mu.Unlock()
	}
}

// sleeping reports whether the loop sleeps now.
func (p *poller) sleeping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.asleep:
		return true
	default:
		return false
	}
}

// handBack gives s back to its goroutine (the loop has forgotten it).
func (p *poller) handBack(s *session) {
	s.released.Store(true)
	close(s.handback)
	if k, ok := s.t.(kicker); ok {
		k.Kick() // its goroutine may sleep on the doorbell
	}
}

func (p *poller) loop() {
	worked := false // found work since it last slept: the idle window applies
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
		if s.sq.Pending() {
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
	close(p.asleep)
	p.mu.Unlock()
	select {
	case <-p.wake:
	case <-p.srv.done:
		if len(p.sessions) == 0 {
			p.mu.Lock()
			p.started = false
			p.asleep = make(chan struct{})
			p.mu.Unlock()
			return false
		}
		<-p.wake
	}
	p.mu.Lock()
	p.asleep = make(chan struct{})
	p.mu.Unlock()
	return true
}

// pass visits every session once, starting after where the last pass
// started, and runs the batches it queued. It returns the submissions
// it consumed.
func (p *poller) pass() int {
	quota := min(max(minPollQuota, p.srv.cfg.MaxBatch/max(1, p.active)), readBatch)
	consumed, active := 0, 0
	n := len(p.sessions)
	if n > 0 {
		p.next %= n
	}
	start := p.next
	for k := 0; k < n; k++ {
		i := (start + k) % n
		s := p.sessions[i]
		if s == nil {
			continue
		}
		got, keep := p.visit(s, quota)
		if !keep {
			p.sessions[i] = nil
			continue
		}
		if got > 0 {
			consumed += got
			active++
		}
	}
	p.sessions = slices.DeleteFunc(p.sessions, func(s *session) bool { return s == nil })
	p.next = start + 1
	p.active = active
	for i, b := range p.runs {
		b.tryRunFor(true)
		p.runs[i] = nil
	}
	p.runs = p.runs[:0]
	if consumed > 0 {
		p.passes.Add(1)
	}
	return consumed
}

// visit consumes at most quota submissions of s and handles them. keep
// false: s was handed back to its goroutine.
func (p *poller) visit(s *session, quota int) (consumed int, keep bool) {
	if s.draining.Load() || s.gone() {
		p.handBack(s)
		return 0, false
	}
	if !s.flushOverflow() {
		return 0, true // its completion ring is full: back-pressure
	}
	n := s.sq.Consume(p.buf[:quota])
	if n == 0 {
		return 0, true
	}
	s.srv.stats.submissions.Add(uint64(n))
	keep = true
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
		p.handBack(s)
	}
	return n, keep
}
