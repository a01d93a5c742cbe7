package laked

import (
	"testing"
	"time"

	"github.com/lakeos/lake/shm"
)

// stubTransport is a Transport whose client never goes away; the batcher
// order tests only need sessions to tell apart.
type stubTransport struct{}

func (stubTransport) Region() *shm.Region                              { return nil }
func (stubTransport) WaitSubmissions(func() bool, time.Duration) error { return nil }
func (stubTransport) NotifyCompletions() error                         { return nil }
func (stubTransport) Gone() <-chan struct{}                            { return nil }
func (stubTransport) Close() error                                     { return nil }
func (stubTransport) String() string                                   { return "stub" }

// TestLightSessionGoesFirst: with more sessions holding backlogs than a
// batch has room for, a session that had nothing queued gets its lone
// request into the very next batch (ahead of the backlogs), every
// backlogged session still gets one request per turn, and a backlog is
// not overtaken twice by the same session.
func TestLightSessionGoesFirst(t *testing.T) {
	const heavy, backlog, maxBatch = 12, 16, 4
	srv := &Server{cfg: Config{MaxBatch: maxBatch}}
	b := &batcher{s: srv, queues: map[*session]*sessQueue{}}
	var hs []*session
	for k := 0; k < heavy; k++ {
		s := &session{id: uint32(k + 1), t: stubTransport{}}
		hs = append(hs, s)
		for i := 0; i < backlog; i++ {
			if st := b.enqueue(&predictReq{sess: s, n: 1, tag: uint64(i)}); st != shm.StatusOK {
				t.Fatal(st)
			}
		}
	}
	take := func() []*predictReq {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.takeLocked(time.Time{}, maxBatch)
		out := append([]*predictReq(nil), b.batch...)
		b.batch, b.items = b.batch[:0], 0
		return out
	}
	// Two batches of the backlogs: round robin, one per session.
	seen := map[*session]int{}
	for _, r := range append(take(), take()...) {
		seen[r.sess]++
	}
	if len(seen) != 2*maxBatch {
		t.Fatalf("two batches served %d sessions, want %d (one request per session per turn)", len(seen), 2*maxBatch)
	}
	light := &session{id: 100, t: stubTransport{}}
	if st := b.enqueue(&predictReq{sess: light, n: 1, tag: 999}); st != shm.StatusOK {
		t.Fatal(st)
	}
	next := take()
	if len(next) != maxBatch || next[0].sess != light {
		t.Fatalf("the light session's request is not first in the next batch: %v", sessionsOf(next))
	}
	// The rest of that batch and the following ones continue the round
	// robin where it was: the sessions not yet served this turn.
	served := map[*session]bool{light: true}
	for s := range seen {
		served[s] = true
	}
	for _, r := range next[1:] {
		if served[r.sess] {
			t.Fatalf("session %d served twice before every backlog had its turn: %v", r.sess.id, sessionsOf(next))
		}
		served[r.sess] = true
	}
	// The light session, now empty, is gone from the ring; every heavy
	// session is served within the turn.
	for len(served) < heavy+1 {
		batch := take()
		if len(batch) == 0 {
			t.Fatal("queue ran dry before every session had its turn")
		}
		for _, r := range batch {
			if served[r.sess] && len(served) < heavy+1 {
				t.Fatalf("session %d served twice in one turn", r.sess.id)
			}
			served[r.sess] = true
		}
	}
	for _, s := range hs {
		if !served[s] {
			t.Fatalf("heavy session %d starved", s.id)
		}
	}
}

func sessionsOf(rs []*predictReq) []uint32 {
	var ids []uint32
	for _, r := range rs {
		ids = append(ids, r.sess.id)
	}
	return ids
}

// TestPieceCheapCountsWholeRequest: the poller runs a batch itself only
// if it is cheap; a piece of a large request counts with the request's
// items not yet run (it goes to the runner goroutine, as the whole
// request did as one batch), while a batch of as many small items is
// cheap. A large request's piece starts a batch of its own: a small
// request queued behind it in the turn forms the next batch.
func TestPieceCheapCountsWholeRequest(t *testing.T) {
	const maxBatch = 8
	srv := &Server{cfg: Config{MaxBatch: maxBatch}}
	b := &batcher{s: srv, queues: map[*session]*sessQueue{}}
	b.cpuItem = float64(polledBatchCost) / (2 * maxBatch) // a full batch is cheap
	heavy, light := &session{id: 1, t: stubTransport{}}, &session{id: 2, t: stubTransport{}}
	for _, r := range []*predictReq{{sess: heavy, n: 8 * maxBatch}, {sess: light, n: 1}} {
		if st := b.enqueue(r); st != shm.StatusOK {
			t.Fatal(st)
		}
	}
	take := func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.batch, b.items = b.batch[:0], 0
		b.takeLocked(time.Time{}, maxBatch)
	}
	take() // the light request; the large one does not join its batch
	if len(b.batch) != 1 || b.batch[0].sess != light || !b.cheap() {
		t.Fatalf("first batch %v (%d items), cheap %v: want the light request alone, cheap", sessionsOf(b.batch), b.items, b.cheap())
	}
	take() // a piece of the large request
	if len(b.batch) != 1 || b.items != maxBatch || b.batch[0].piece != maxBatch {
		t.Fatalf("second batch %v of %d items, want one piece of %d", sessionsOf(b.batch), b.items, maxBatch)
	}
	if b.cheap() {
		t.Fatalf("a piece of %d of a %d-item request counted as cheap for the poller", maxBatch, 8*maxBatch)
	}
	b.batch[0].piece = 0
	b.batch[0].done = 8*maxBatch - 2 // its last piece: 2 items
	if !b.cheap() {
		t.Fatal("a large request's last 2 items not cheap")
	}
}
