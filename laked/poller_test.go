package laked

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/lakeos/lake/shm"
)

// addOne answers each 4-byte record with the record plus one.
type addOne struct{}

func (addOne) Info() ModelInfo { return ModelInfo{Name: "add-one", InputBytes: 4, OutputBytes: 4} }
func (addOne) Predict(in, out []byte, n int) error {
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(out[4*i:], binary.LittleEndian.Uint32(in[4*i:])+1)
	}
	return nil
}

// goneTransport is a memTransport whose client can leave; it counts
// the completion doorbell's rings.
type goneTransport struct {
	memTransport
	gone  chan struct{}
	rings atomic.Int64
}

func (t *goneTransport) NotifyCompletions() error {
	t.rings.Add(1)
	return t.memTransport.NotifyCompletions()
}

func (t *goneTransport) Gone() <-chan struct{} { return t.gone }

// pollClient is the client side of a session the test drives by hand:
// every submission is a predict of one record (or the opcode given),
// tagged with a sequence number, whose input is the tag. Its input and
// output records lie at (tag mod window)*8 in the arena: a client keeps
// at most window submissions unanswered.
type pollClient struct {
	t      *testing.T
	s      *session
	next   uint64          // tag of the next submission
	sent   int             // submissions published
	done   map[uint64]bool // completions seen, by tag
	status map[uint64]shm.Status
}

// newPollClient makes a client whose ring has 64 slots and whose
// completion ring has cqEntries: a client whose completion ring holds
// everything it keeps unanswered (window) never makes laked hold
// completions back.
func newPollClient(t *testing.T, srv *Server, id, cqEntries uint32) *pollClient {
	cfg := shm.Config{SQEntries: 64, CQEntries: cqEntries, ArenaSize: 64 << 10}
	l, _ := cfg.Layout()
	m, err := shm.NewAnonymous(l.RegionSize)
	if err != nil {
		t.Fatal(err)
	}
	r, err := shm.NewRegion(m.Mem, cfg, id)
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(srv, id, &goneTransport{memTransport: memTransport{bellTransport: newBellTransport(r), m: m, r: r}, gone: make(chan struct{})})
	return &pollClient{t: t, s: s, done: map[uint64]bool{}, status: map[uint64]shm.Status{}}
}

const window = 1024

// submit publishes one submission; false when the ring is full (or
// window submissions are unanswered).
func (c *pollClient) submit(op shm.Opcode) bool {
	if c.sent-len(c.done) >= window {
		return false
	}
	tag := c.next
	slot := tag % window
	e := shm.SQE{Opcode: op, Tag: tag}
	if op == shm.OpPredict {
		in, err := c.s.region.ArenaRange(slot*8, 4)
		if err != nil {
			c.t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(in, uint32(tag))
		e.Args = [shm.NumArgs]uint64{1, 1, slot * 8, 4, slot*8 + 4, 4}
	}
	if err := c.s.sq.TrySubmit(&e); err != nil {
		if errors.Is(err, shm.ErrRingFull) {
			return false
		}
		c.t.Fatal(err)
	}
	c.next++
	c.sent++
	return true
}

// fill submits predicts until the ring is full (or at most max).
func (c *pollClient) fill(max int) {
	for i := 0; i < max && c.submit(shm.OpPredict); i++ {
	}
}

// reap takes every posted completion, checking each predict's output.
func (c *pollClient) reap() {
	var cs [64]shm.CQE
	for {
		n := c.s.cq.Reap(cs[:])
		if n == 0 {
			return
		}
		for _, e := range cs[:n] {
			if c.done[e.Tag] {
				c.t.Fatalf("client %d: tag %d completed twice", c.s.id, e.Tag)
			}
			c.done[e.Tag] = true
			c.status[e.Tag] = e.Status
			if e.Status != shm.StatusOK {
				continue
			}
			out, _ := c.s.region.ArenaRange((e.Tag%window)*8+4, 4)
			if got := binary.LittleEndian.Uint32(out); got != uint32(e.Tag)+1 {
				c.t.Fatalf("client %d: tag %d answered %d, want %d", c.s.id, e.Tag, got, e.Tag+1)
			}
		}
	}
}

// consumed is how many submissions laked has taken from the ring.
func (c *pollClient) consumed() int { return int(c.s.sq.Head()) }

// newTestPoller returns a server serving addOne as model 1 whose poller
// the test drives by hand (its loop is not started), and n clients with
// completion rings of cqEntries.
func newTestPoller(t *testing.T, n int, cqEntries uint32) (*Server, *poller, []*pollClient) {
	srv, err := New(Config{IdleSpin: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterModel(1, addOne{}); err != nil {
		t.Fatal(err)
	}
	p := srv.poller
	rang := make(chan struct{})
	go func() { p.ringLoop(); close(rang) }() // as the loop does
	var cs []*pollClient
	for i := 0; i < n; i++ {
		c := newPollClient(t, srv, uint32(i+1), cqEntries)
		c.s.handback = make(chan struct{})
		p.sessions = append(p.sessions, c.s)
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		// What a failed test left queued is answered "shutting down";
		// the regions stay mapped until nothing is in flight.
		_ = srv.Shutdown(context.Background())
		p.ringer <- nil
		<-rang
		for _, c := range cs {
			c.s.inflight.Wait()
			_ = c.s.t.Close()
		}
	})
	return srv, p, cs
}

// settle makes passes and reaps until every client has all its
// submissions answered (the batches of a model whose cost is not yet
// known run on its runner goroutine, so completions may come after the
// pass that consumed them).
func settle(t *testing.T, p *poller, cs []*pollClient) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.pass()
		left := 0
		for _, c := range cs {
			c.reap()
			left += c.sent - len(c.done)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, c := range cs {
				if len(c.done) != c.sent {
					c.s.cqMu.Lock()
					held := len(c.s.overflow)
					c.s.cqMu.Unlock()
					t.Fatalf("client %d: %d of %d submissions answered (handed back %v, %d completions held back, ring pending %v)",
						c.s.id, len(c.done), c.sent, c.s.released.Load(), held, c.s.sq.Published())
				}
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestPollerLightRequestWithinOnePass: 31 sessions keep their 64-entry
// rings full (refilled after every pass) and one light session submits
// one request at a time. Every light request is consumed by the very
// pass that follows its submission, each pass consumes at most one
// heavy ring's worth plus the light scan (a bounded pass), every
// bursting session gets a visit in every round of 31 passes (no
// starvation), and every request of every session is answered exactly
// once with the right output.
func TestPollerLightRequestWithinOnePass(t *testing.T) {
	const heavy, rounds = 31, 4
	_, p, cs := newTestPoller(t, heavy+1, 2*window)
	light := cs[heavy] // scanned last
	for _, c := range cs[:heavy] {
		c.fill(64)
	}
	// The first pass sees every session for the first time: each gives
	// lightQuota at the light scan and turns heavy.
	p.pass()
	for _, c := range cs[:heavy] {
		if !c.s.heavy {
			t.Fatalf("client %d: gave %d at its first visit and is not heavy", c.s.id, c.consumed())
		}
	}
	before := make([]int, heavy)
	for i, c := range cs[:heavy] {
		before[i] = c.consumed()
	}
	for pass := 0; pass < rounds*heavy; pass++ {
		for _, c := range cs {
			c.reap()
		}
		for _, c := range cs[:heavy] {
			c.fill(64)
		}
		want := light.consumed() + 1
		if !light.submit(shm.OpPredict) {
			t.Fatal("light ring full")
		}
		taken := 0
		for _, c := range cs {
			taken -= c.consumed()
		}
		p.pass()
		for _, c := range cs {
			taken += c.consumed()
		}
		if got := light.consumed(); got != want {
			t.Fatalf("pass %d: light session consumed %d, want %d: its request waits for more than one pass", pass, got, want)
		}
		if taken > heavyQuota+lightQuota*len(cs) {
			t.Fatalf("pass %d consumed %d submissions: not bounded", pass, taken)
		}
		if light.s.heavy {
			t.Fatalf("pass %d: the light session turned heavy", pass)
		}
		if (pass+1)%heavy == 0 {
			// A round of the heavy sessions: every one had a visit.
			for i, c := range cs[:heavy] {
				if c.consumed()-before[i] < heavyQuota {
					t.Fatalf("round %d: client %d got %d submissions consumed, want a visit (%d)", pass/heavy, c.s.id, c.consumed()-before[i], heavyQuota)
				}
				before[i] = c.consumed()
			}
		}
	}
	// Let every session run dry: everything is answered, once, right.
	settle(t, p, cs)
	for _, c := range cs {
		for tag, st := range c.status {
			if st != shm.StatusOK {
				t.Fatalf("client %d: tag %d: %v", c.s.id, tag, st)
			}
		}
	}
}

// TestPollerHandsBackDeviceOps: the poller runs predicts but hands a
// session back to its goroutine at a device operation, with the
// submissions from that one on, which the goroutine then handles in
// order before anything else in the ring.
func TestPollerHandsBackDeviceOps(t *testing.T) {
	_, p, cs := newTestPoller(t, 2, 2*window)
	c, other := cs[0], cs[1]
	c.submit(shm.OpPredict)  // tag 0: run by the poller
	c.submit(shm.OpMemAlloc) // tag 1: no backend: "not supported", on the session's goroutine
	c.submit(shm.OpPredict)  // tag 2: after it, also on the session's goroutine
	other.fill(3)
	p.pass()
	if !c.s.released.Load() || !closed(c.s.handback) {
		t.Fatal("the session with a device operation was not handed back")
	}
	if len(p.sessions) != 1 || p.sessions[0] != other.s {
		t.Fatalf("the poller still serves %d sessions, want only the other one", len(p.sessions))
	}
	if other.consumed() != 3 {
		t.Fatalf("the other session's 3 predicts: %d consumed", other.consumed())
	}
	if len(c.s.carry) != 2 || c.s.carry[0].Tag != 1 || c.s.carry[1].Tag != 2 {
		t.Fatalf("carried %d submissions, want tags 1 and 2", len(c.s.carry))
	}
	c.submit(shm.OpPredict) // tag 3: published after the hand-back
	buf := make([]shm.SQE, readBatch)
	if !c.s.read(buf, true) {
		t.Fatal("the session's goroutine ended its session")
	}
	if len(c.s.carry) != 0 || c.consumed() != 4 {
		t.Fatalf("after its goroutine ran dry: %d carried, %d consumed, want 0 and 4", len(c.s.carry), c.consumed())
	}
	settle(t, p, cs)
	want := map[uint64]shm.Status{0: shm.StatusOK, 1: shm.StatusNotSupported, 2: shm.StatusOK, 3: shm.StatusOK}
	for tag, st := range want {
		if c.status[tag] != st {
			t.Fatalf("tag %d: %v, want %v", tag, c.status[tag], st)
		}
	}
}

// TestPollerHandsBackDepartedAndDraining: a session whose client left,
// and one that drains, are handed back at the next pass even when they
// are heavy and their rings are empty; the draining one's goroutine
// answers what is left in its ring with "shutting down", every other
// request having been answered once.
func TestPollerHandsBackDepartedAndDraining(t *testing.T) {
	_, p, cs := newTestPoller(t, 3, 2*window)
	left, draining, stays := cs[0], cs[1], cs[2]
	for _, c := range cs {
		c.fill(64)
	}
	p.pass() // all three turn heavy
	for pending := true; pending; {
		p.pass()
		pending = false
		for _, c := range cs {
			c.reap()
			pending = pending || c.s.sq.Published()
		}
	}
	settle(t, p, cs)
	close(left.s.t.(*goneTransport).gone)
	draining.s.drain()
	p.pass()
	if !closed(left.s.handback) || !closed(draining.s.handback) {
		t.Fatal("the departed or the draining session was not handed back")
	}
	if len(p.sessions) != 1 || p.sessions[0] != stays.s {
		t.Fatalf("the poller serves %d sessions, want the one that stays", len(p.sessions))
	}
	if left.s.heavy == false || draining.s.heavy == false {
		t.Fatal("the sessions were not heavy when handed back")
	}
	draining.fill(64)
	draining.s.finalDrain(make([]shm.SQE, readBatch))
	stays.fill(64)
	for i := 0; i < 40; i++ {
		p.pass()
	}
	settle(t, p, []*pollClient{draining, stays})
	shut := 0
	for _, st := range draining.status {
		if st == shm.StatusShutdown {
			shut++
		}
	}
	if shut == 0 {
		t.Fatal("the draining session's unconsumed submissions were not answered shutting down")
	}
}

// TestPollerHandsBackAClientThatDoesNotReap: a session whose completion
// ring is full and whose client does not reap is handed back to its
// goroutine (which waits for the reaping, back-pressure) instead of
// being visited by every pass; once the client reaps, its goroutine
// posts what laked held back, serves the ring and returns the session
// to the poller, every request answered once.
func TestPollerHandsBackAClientThatDoesNotReap(t *testing.T) {
	_, p, cs := newTestPoller(t, 2, 64)
	c := cs[0]
	for deadline := time.Now().Add(10 * time.Second); !closed(c.s.handback); {
		if time.Now().After(deadline) {
			t.Fatal("a session whose client does not reap is still served by the poller")
		}
		c.fill(64)
		p.pass()
		time.Sleep(100 * time.Microsecond)
	}
	c.s.cqMu.Lock()
	held := len(c.s.overflow)
	c.s.cqMu.Unlock()
	if held == 0 {
		t.Fatal("handed back with no completion held back")
	}
	if len(p.sessions) != 1 {
		t.Fatalf("the poller serves %d sessions, want 1", len(p.sessions))
	}
	dry := make(chan bool)
	go func() { dry <- c.s.read(make([]shm.SQE, readBatch), true) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.reap()
		select {
		case ok := <-dry:
			if !ok {
				t.Fatal("the session ended")
			}
			settle(t, p, cs)
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the session's goroutine did not run its ring dry once the client reaped")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestPollerRingsOncePerHeavyVisit: the poller takes a heavy session's
// ring in chunks (a batch each) but its completion doorbell is rung once
// per visit (by the ringer goroutine), after every completion of the
// visit is posted.
func TestPollerRingsOncePerHeavyVisit(t *testing.T) {
	srv, p, cs := newTestPoller(t, 1, 2*window)
	c := cs[0]
	tr := c.s.t.(*goneTransport)
	// Warm up: the model's cost becomes known, so that the poller runs
	// its batches itself (polledBatchCost).
	for i := 0; i < 4; i++ {
		c.fill(64)
		settle(t, p, cs)
	}
	for try := 0; ; try++ {
		c.fill(64)
		c.s.heavy = true
		// The rings of the warm-up first.
		for len(p.ringer) > 0 {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(10 * time.Millisecond)
		r0 := tr.rings.Load()
		b := srv.models.lookup(1).b
		b.mu.Lock()
		h0 := b.handoffs
		b.mu.Unlock()
		p.pass()
		b.mu.Lock()
		handed := b.handoffs != h0
		b.mu.Unlock()
		ready := 0
		for c.s.cq.Ready() && ready < 64 {
			var e [1]shm.CQE
			ready += c.s.cq.Reap(e[:])
			c.done[e[0].Tag] = true
			c.status[e[0].Tag] = e[0].Status
		}
		// The ring is the ringer goroutine's: wait for it, and a little
		// longer for any other.
		for deadline := time.Now().Add(5 * time.Second); tr.rings.Load() == r0 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(10 * time.Millisecond)
		rings := tr.rings.Load() - r0
		if handed && try < 5 {
			// A batch went to the model's runner goroutine (this
			// machine was slow: polledBatchCost): its completions,
			// and their rings, come on their own.
			settle(t, p, cs)
			continue
		}
		if handed {
			t.Fatal("every try handed a batch to the model's runner goroutine")
		}
		if ready != 64 {
			t.Fatalf("one heavy visit answered %d of 64", ready)
		}
		if rings != 1 {
			t.Fatalf("one heavy visit of %d chunks rang the doorbell %d times, want once", 64/heavyChunk, rings)
		}
		break
	}
	settle(t, p, cs)
}

// TestPolledOps: the poller runs only the operations that complete at
// once; every device operation and model_fetch (an image copy of up to
// MaxImageBytes) goes to the session's goroutine.
func TestPolledOps(t *testing.T) {
	for op := shm.Opcode(0); op < 255; op++ {
		want := !op.Valid()
		switch op {
		case shm.OpNop, shm.OpInit, shm.OpModelInfo, shm.OpPredict:
			want = true
		}
		if polled(op) != want {
			t.Errorf("opcode %d (%v): polled %v, want %v", op, op, polled(op), want)
		}
	}
	if polled(shm.OpModelFetch) || polled(shm.OpLaunchKernel) || polled(shm.OpMemcpyHtoD) {
		t.Fatal("a copying or launching operation runs on the poller")
	}
}

// regionWord is the u32 at off in r (as a client writes it).
func regionWord(r *shm.Region, off uint64) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&r.Bytes()[off]))
}

// napOf returns the poller's current nap once its loop sleeps in it.
// newTestServer is New(cfg), shut down when the test ends.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// answerNop submits a nop with tag on r's ring, rings laked, and returns
// its completion once laked has posted it.
func answerNop(t *testing.T, r *shm.Region, tag uint64) shm.CQE {
	t.Helper()
	sq, cq := r.SQ(), r.CQ()
	if err := sq.TrySubmit(&shm.SQE{Opcode: shm.OpNop, Tag: tag}); err != nil {
		t.Fatal(err)
	}
	_ = sq.Bell.Ring()
	var e [1]shm.CQE
	for deadline := time.Now().Add(10 * time.Second); cq.Reap(e[:]) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("nop %d not answered", tag)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return e[0]
}

// newGoneTransport is a client region (64-slot rings, client id 1) in
// anonymous memory, and a transport for it whose gone channel the test
// closes when the client should leave.
func newGoneTransport(t *testing.T) *goneTransport {
	t.Helper()
	return newGoneTransportWith(t, shm.Config{SQEntries: 64, CQEntries: 64, ArenaSize: 64 << 10})
}

// newGoneTransportWith is newGoneTransport with a region of cfg's sizes.
func newGoneTransportWith(t *testing.T, cfg shm.Config) *goneTransport {
	t.Helper()
	l, err := cfg.Layout()
	if err != nil {
		t.Fatal(err)
	}
	m, err := shm.NewAnonymous(l.RegionSize)
	if err != nil {
		t.Fatal(err)
	}
	r, err := shm.NewRegion(m.Mem, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &goneTransport{memTransport: memTransport{bellTransport: newBellTransport(r), m: m, r: r}, gone: make(chan struct{})}
}

func napOf(t *testing.T, p *poller) *nap {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		p.mu.Lock()
		n := p.nap
		p.mu.Unlock()
		if closed(n.asleep) && !closed(n.woke) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("the poller does not nap")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPollerNapsWhenAClientScribblesItsHead: a client that writes its
// ring's shared head word and the sequence word of the slot it names (as
// if a submission were published there, where laked's consumer is not)
// and rings its doorbell cannot keep laked's poller awake: the poller
// naps on, its session's goroutine asleep on the doorbell. (When the
// session goroutine's wake-up check read the shared head word, it woke
// the poller, which found nothing, napped, and was woken again, for as
// long as the client liked.) The client's real submissions are served
// afterwards as before.
func TestPollerNapsWhenAClientScribblesItsHead(t *testing.T) {
	srv := newTestServer(t, Config{IdleSpin: -1})
	p := srv.poller
	tr := newGoneTransport(t)
	r := tr.r
	l := r.Layout()
	if _, err := srv.Attach(tr); err != nil {
		t.Fatal(err)
	}
	sq := r.SQ()
	nop := func(tag uint64) {
		t.Helper()
		if e := answerNop(t, r, tag); e.Tag != tag || e.Status != shm.StatusOK {
			t.Fatalf("nop %d answered tag %d, %v", tag, e.Tag, e.Status)
		}
	}
	nop(1)
	n0 := napOf(t, p)
	// Scribble: head names slot 9, whose sequence word reads published.
	regionWord(r, shm.OffSQHead).Store(9)
	regionWord(r, l.SQEsOff+9*shm.SlotSize).Store(10)
	_ = sq.Bell.Kick() // the client rings (whether or not laked sleeps)
	time.Sleep(50 * time.Millisecond)
	if n := napOf(t, p); n != n0 {
		t.Fatal("a client's scribbled head word woke laked's poller (it naps again and again)")
	}
	// Repair the words; the client's real submissions are still served.
	regionWord(r, l.SQEsOff+9*shm.SlotSize).Store(9)
	regionWord(r, shm.OffSQHead).Store(1)
	nop(2)
}

// endedTransport is a goneTransport that reports a completion doorbell
// rung after its session ended (a torn-down session's region is
// unmapped: that ring would fault).
type endedTransport struct {
	goneTransport
	t     *testing.T
	ended atomic.Bool
}

func (e *endedTransport) NotifyCompletions() error {
	if e.ended.Load() {
		e.t.Error("the completion doorbell of an ended session was rung")
	}
	return e.goneTransport.NotifyCompletions()
}

// TestPollerNeverRingsAnEndedSession: a heavy visit that hands its
// session back (here at a device operation) owes the session a
// completion doorbell for what it posted before; when the ringer's
// queue is full the poller rings it itself, and by then the session's
// goroutine may have torn the session down (its client left) and
// unmapped the region. The poller rings it only if the session has not
// ended, as the ringer does; a session that has not ended still gets its
// one ring.
func TestPollerNeverRingsAnEndedSession(t *testing.T) {
	for _, end := range []bool{true, false} {
		_, p, cs := newTestPoller(t, 2, 2*window)
		c, blocker := cs[0], cs[1]
		old := c.s.t.(*goneTransport)
		tr := &endedTransport{goneTransport: goneTransport{memTransport: old.memTransport, gone: old.gone}, t: t}
		c.s.t = tr
		// Fill the ringer's queue: its goroutine blocks on the first
		// session it rings.
		blocker.s.lifeMu.Lock()
		p.ringer <- blocker.s
		for deadline := time.Now().Add(10 * time.Second); len(p.ringer) > 0; {
			if time.Now().After(deadline) {
				t.Fatal("the ringer does not take its queue")
			}
			time.Sleep(100 * time.Microsecond)
		}
		for len(p.ringer) < cap(p.ringer) {
			p.ringer <- blocker.s
		}
		// 16 nops (a chunk, answered at once), then a device operation.
		for i := 0; i < heavyChunk; i++ {
			c.submit(shm.OpNop)
		}
		c.submit(shm.OpMemAlloc)
		c.s.heavy = true
		p.handedBack = func(s *session) {
			if s == c.s && end {
				// Its goroutine runs at once and its client has left:
				// it tears the session down.
				s.lifeMu.Lock()
				s.closed = true
				s.lifeMu.Unlock()
				tr.ended.Store(true)
			}
		}
		r0 := tr.rings.Load()
		p.pass()
		if !closed(c.s.handback) {
			t.Fatal("the session with a device operation was not handed back")
		}
		rings := tr.rings.Load() - r0
		blocker.s.lifeMu.Unlock()
		if !end && rings != 1 {
			t.Fatalf("a visit with the ringer's queue full rang its session's doorbell %d times, want once", rings)
		}
		tr.ended.Store(false) // the cleanup's drain may ring
		var e [2 * heavyChunk]shm.CQE
		if n := c.s.cq.Reap(e[:]); n != heavyChunk || e[0].Tag != 0 || e[n-1].Tag != heavyChunk-1 {
			t.Fatalf("%d answers to the %d nops", n, heavyChunk)
		}
		c.sent = 0 // the cleanup's drain answers the device operation
	}
}

// failingWaitTransport is a goneTransport whose doorbell wait fails at
// once, every time; it counts the calls.
type failingWaitTransport struct {
	goneTransport
	waits atomic.Int64
}

func (f *failingWaitTransport) WaitSubmissions(func() bool, time.Duration) error {
	f.waits.Add(1)
	return errors.New("doorbell broken")
}

// TestPollerDoorbellWaitErrorBacksOff: while the poller naps, a
// session's goroutine whose doorbell wait fails retries it after a
// pause (as the session reader always did), instead of calling it (and
// logging its warning) in a tight loop.
func TestPollerDoorbellWaitErrorBacksOff(t *testing.T) {
	srv := newTestServer(t, Config{IdleSpin: -1})
	tr := &failingWaitTransport{goneTransport: *newGoneTransport(t)}
	if _, err := srv.Attach(tr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(tr.gone) }) // before the server's Shutdown (cleanups run last first)
	napOf(t, srv.poller)
	w0 := tr.waits.Load()
	time.Sleep(100 * time.Millisecond)
	if n := tr.waits.Load() - w0; n > 1000 {
		t.Fatalf("a failing doorbell wait was retried %d times in 100 ms", n)
	}
}

// TestReattachClearsADeadLakedsSleeper: a laked killed while its session
// slept on the region's submission doorbell leaves its sleeper announced
// in the region (the decrement died with it), and the client would then
// ring the doorbell (a futex wake) at every submission to the laked that
// re-attaches it, even while that laked's poller is awake. The new laked
// clears the dead one's announcement when it attaches a region that was
// not detached.
func TestReattachClearsADeadLakedsSleeper(t *testing.T) {
	srv := newTestServer(t, Config{IdleSpin: 500 * time.Millisecond})
	tr := newGoneTransport(t)
	r := tr.r
	sq := r.SQ()
	// What a laked killed while it slept leaves behind.
	r.SetDaemonState(shm.DaemonServing)
	sq.Bell.Waiters.Store(1)
	if _, err := srv.Attach(tr); err != nil {
		t.Fatal(err)
	}
	answerNop(t, r, 7)
	// The poller is in its idle window (500 ms): nobody sleeps on the
	// doorbell.
	time.Sleep(20 * time.Millisecond)
	if w := sq.Bell.Waiters.Load(); w != 0 {
		t.Fatalf("%d sleepers announced on the doorbell while laked's poller is awake: the dead laked's is still there", w)
	}
}

// TestPollerIdleWindow: after work, the poller spins for its idle window
// and then naps (IdleSpin), never naps (BusyPoll), or naps at once
// (negative IdleSpin); once its last session has left it naps whatever
// the mode.
func TestPollerIdleWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		// awake: the poller must still be awake this long after the
		// work; napBy: it must nap within this (0: never).
		awake, napBy time.Duration
	}{
		{"IdleSpin=-1", Config{IdleSpin: -1}, 0, 2 * time.Second},
		{"IdleSpin=300ms", Config{IdleSpin: 300 * time.Millisecond}, 100 * time.Millisecond, 5 * time.Second},
		{"BusyPoll", Config{BusyPoll: true}, 300 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, tc.cfg)
			p := srv.poller
			tr := newGoneTransport(t)
			r := tr.r
			if _, err := srv.Attach(tr); err != nil {
				t.Fatal(err)
			}
			answerNop(t, r, 1)
			answered := time.Now()
			p.mu.Lock()
			n := p.nap
			p.mu.Unlock()
			for {
				napped := closed(n.asleep)
				since := time.Since(answered)
				if napped && since < tc.awake {
					t.Fatalf("the poller napped %v after its work, inside its idle window", since)
				}
				if napped {
					t.Logf("napped within %v", since)
					break
				}
				if tc.napBy == 0 && since > tc.awake {
					break // BusyPoll: still awake
				}
				if tc.napBy > 0 && since > tc.napBy {
					t.Fatalf("the poller is still awake %v after its work", since)
				}
				time.Sleep(time.Millisecond)
			}
			// The session leaves: the poller hands it back and naps.
			close(tr.gone)
			napOf(t, p)
		})
	}
}
