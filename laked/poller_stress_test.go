package laked

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/lakeos/lake/shm"
)

// keptTransport is a goneTransport whose Close leaves the region mapped
// (the test reads the answers after laked ended the session, and unmaps
// it at cleanup).
type keptTransport struct{ goneTransport }

func (*keptTransport) Close() error { return nil }

// A stress client's predict has at most stressMaxItems 4-byte records,
// its inputs and then its outputs in its tag's stretch of the arena.
const (
	stressMaxItems = 128 // twice the default batch.max_size
	stressStride   = 8 * stressMaxItems
)

// stressClient submits a random mix of predicts, nops and device
// operations (which the poller hands to the session's goroutine), tags
// them with their ring positions and checks every answer.
type stressClient struct {
	r     *shm.Region
	tr    *keptTransport
	sq    *shm.SQ
	cq    *shm.CQ
	next  uint64                // tag (= ring position) of the next submission
	low   uint64                // no tag below it is unanswered
	ops   map[uint64]shm.Opcode // submitted, not yet answered
	items map[uint64]uint64     // records of the predicts in ops
	sync  []uint64              // tags of the non-predicts not yet answered, in order
	done  int                   // answers
	err   error
}

func (c *stressClient) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *stressClient) submit(rng *rand.Rand) bool {
	// Its records are at its tag's stretch of the arena: no submission
	// may reuse the stretch of one still unanswered.
	for c.low < c.next {
		if _, ok := c.ops[c.low]; ok {
			break
		}
		c.low++
	}
	if c.next-c.low >= window {
		return false
	}
	tag := c.next
	e := shm.SQE{Opcode: shm.OpNop, Tag: tag}
	switch k := rng.IntN(10); {
	case k < 7:
		// Mostly 1-4 records; a few larger than a batch (run in
		// pieces, with other sessions' requests between them).
		n := uint64(1 + rng.IntN(4))
		if rng.IntN(20) == 0 {
			n = stressMaxItems/2 + uint64(rng.IntN(stressMaxItems/2))
		}
		off := (tag % window) * stressStride
		in, _ := c.r.ArenaRange(off, 4*n)
		for i := uint64(0); i < n; i++ {
			binary.LittleEndian.PutUint32(in[4*i:], uint32(tag*stressMaxItems+i))
		}
		e.Opcode = shm.OpPredict
		e.Args = [shm.NumArgs]uint64{1, n, off, 4 * n, off + 4*stressMaxItems, 4 * n}
		c.items[tag] = n
	case k < 9:
	default:
		e.Opcode = shm.OpMemAlloc // no backend: "not supported", by the session's goroutine
		e.Args = [shm.NumArgs]uint64{1, 64}
	}
	pos, err := c.sq.TrySubmitPos(&e)
	if err != nil {
		if !errors.Is(err, shm.ErrRingFull) {
			c.fail("submit: %v", err)
		}
		return false
	}
	if uint64(pos) != tag {
		c.fail("submission %d took ring position %d", tag, pos)
	}
	c.ops[tag] = e.Opcode
	if e.Opcode != shm.OpPredict {
		c.sync = append(c.sync, tag)
	}
	c.next++
	return true
}

func (c *stressClient) reap() {
	var cs [64]shm.CQE
	for {
		n := c.cq.Reap(cs[:])
		if n == 0 {
			return
		}
		for _, e := range cs[:n] {
			op, ok := c.ops[e.Tag]
			if !ok {
				c.fail("tag %d answered twice or never submitted (%d submitted)", e.Tag, c.next)
				continue
			}
			n := c.items[e.Tag]
			delete(c.ops, e.Tag)
			delete(c.items, e.Tag)
			c.done++
			if op != shm.OpPredict {
				// Operations that complete at once are answered in
				// order, whichever goroutine ran them.
				if c.sync[0] != e.Tag {
					c.fail("tag %d (%v) answered before the earlier operation %d", e.Tag, op, c.sync[0])
				}
				c.sync = c.sync[1:]
			}
			want := shm.StatusOK
			if op == shm.OpMemAlloc {
				want = shm.StatusNotSupported
			}
			switch e.Status {
			case want:
				if op == shm.OpPredict {
					out, _ := c.r.ArenaRange((e.Tag%window)*stressStride+4*stressMaxItems, 4*n)
					for i := uint64(0); i < n; i++ {
						if got, want := binary.LittleEndian.Uint32(out[4*i:]), uint32(e.Tag*stressMaxItems+i)+1; got != want {
							c.fail("tag %d record %d of %d answered %d, want %d", e.Tag, i, n, got, want)
							break
						}
					}
				}
			case shm.StatusShutdown:
			default:
				c.fail("tag %d (%v): %v, want %v", e.Tag, op, e.Status, want)
			}
		}
	}
}

// TestPollerStressHandOffs: clients submit random mixes of predicts (a
// few larger than a batch), nops and device operations (each a hand-off from the poller to the
// session's goroutine and back) in bursts with pauses (the poller naps
// and is woken), some reaping slowly (back-pressure: completion rings
// smaller than what they keep unanswered); one client leaves mid-run
// and laked drains while the others still submit. Every submission
// laked consumed is answered exactly once, with the right output, the
// operations that complete at once in order; nothing unconsumed is
// answered; the submissions counter matches what laked consumed, and
// the admission budgets are all given back.
func TestPollerStressHandOffs(t *testing.T) {
	for _, spin := range []time.Duration{-1, 20 * time.Microsecond} {
		t.Run(fmt.Sprintf("IdleSpin=%v", spin), func(t *testing.T) { stressHandOffs(t, spin) })
	}
}

func stressHandOffs(t *testing.T, spin time.Duration) {
	const clients = 6
	srv, err := New(Config{IdleSpin: spin})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterModel(1, addOne{}); err != nil {
		t.Fatal(err)
	}
	var cs []*stressClient
	for i := 0; i < clients; i++ {
		cqEntries := uint32(2 * window)
		if i%3 == 2 {
			cqEntries = 64 // a slow reaper's ring overflows
		}
		cfg := shm.Config{SQEntries: 64, CQEntries: cqEntries, ArenaSize: window * stressStride}
		l, _ := cfg.Layout()
		m, err := shm.NewAnonymous(l.RegionSize)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		r, err := shm.NewRegion(m.Mem, cfg, uint32(i+1))
		if err != nil {
			t.Fatal(err)
		}
		tr := &keptTransport{goneTransport{memTransport: memTransport{bellTransport: newBellTransport(r), m: m, r: r}, gone: make(chan struct{})}}
		if _, err := srv.Attach(tr); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, &stressClient{r: r, tr: tr, sq: r.SQ(), cq: r.CQ(), ops: map[uint64]shm.Opcode{}, items: map[uint64]uint64{}})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for round := 0; c.err == nil; round++ {
				select {
				case <-stop:
					return
				default:
				}
				if i == 0 && round == 300 {
					close(c.tr.gone) // the client leaves (kill -9)
					return
				}
				for k := rng.IntN(20); k > 0 && c.submit(rng); k-- {
				}
				_ = c.sq.Bell.Ring()
				if i%3 != 2 || round%8 == 0 {
					c.reap()
				}
				switch rng.IntN(4) {
				case 0:
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond) // the poller may nap
				case 1:
					runtime.Gosched()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil { // drains while the clients still submit
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	var consumed uint64
	for i, c := range cs {
		c.reap()
		if c.err != nil {
			t.Fatalf("client %d: %v", i, c.err)
		}
		head := uint64(c.sq.Head())
		consumed += head
		if i == 0 {
			continue // it left: what it did not reap is nobody's
		}
		if c.r.DaemonState() != shm.DaemonDetached {
			t.Fatalf("client %d: laked did not detach", i)
		}
		for tag := range c.ops {
			if tag < head {
				t.Fatalf("client %d: tag %d was consumed (head %d) but never answered (%d answered)", i, tag, head, c.done)
			}
		}
		if uint64(c.done) != head {
			t.Fatalf("client %d: %d answers for %d submissions consumed", i, c.done, head)
		}
		t.Logf("client %d: %d submitted, %d consumed and answered", i, c.next, head)
	}
	st := srv.Stats()
	if st.Submissions != consumed {
		t.Fatalf("submissions counter %d, laked consumed %d", st.Submissions, consumed)
	}
	if u, q := srv.inflightBudget.used.Load(), srv.queuedBudget.used.Load(); u != 0 || q != 0 {
		t.Fatalf("after the drain %d predicts (%d bytes) of admission budget were not given back", u, q)
	}
	if st.Overflowed == 0 {
		t.Fatal("no completion was held back: the slow reapers did not test back-pressure")
	}
}
