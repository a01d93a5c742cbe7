package shm

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

func newTestRegion(t testing.TB, cfg Config) *Region {
	t.Helper()
	l, err := cfg.Layout()
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewAnonymous(l.RegionSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r, err := NewRegion(m.Mem, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSQFullAndWrap(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 8, CQEntries: 8, ArenaSize: PageSize})
	sq := r.SQ()
	for i := 0; i < 8; i++ {
		if err := sq.TrySubmit(&SQE{Opcode: OpNop, Tag: uint64(i)}); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	if err := sq.TrySubmit(&SQE{Opcode: OpNop}); !errors.Is(err, ErrRingFull) {
		t.Fatalf("9th submit into 8 slots: got %v, want ErrRingFull", err)
	}
	out := make([]SQE, 3)
	if n := sq.Consume(out); n != 3 || out[2].Tag != 2 {
		t.Fatalf("consume: n=%d out=%+v", n, out)
	}
	for i := 8; i < 11; i++ {
		if err := sq.TrySubmit(&SQE{Opcode: OpNop, Tag: uint64(i)}); err != nil {
			t.Fatalf("submit after free %d: %v", i, err)
		}
	}
	all := make([]SQE, 16)
	n := sq.Consume(all)
	if n != 8 {
		t.Fatalf("consumed %d, want 8", n)
	}
	for i := 0; i < n; i++ {
		if all[i].Tag != uint64(3+i) {
			t.Fatalf("order: slot %d has tag %d", i, all[i].Tag)
		}
	}
}

// TestMPSCStress has many producers and one consumer; every submission
// must arrive exactly once and each producer's submissions in order.
func TestMPSCStress(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 16, CQEntries: 16, ArenaSize: PageSize})
	sq := r.SQ()
	const producers, per = 8, 5000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				e := SQE{Opcode: OpNop, Tag: uint64(p)<<32 | uint64(i), Args: [NumArgs]uint64{uint64(i) * 3}}
				for sq.TrySubmit(&e) != nil {
					// a full ring: let the consumer (and a producer
					// preempted between reserving and publishing) run;
					// eight spinners on two cores under -race
					// otherwise starve them for seconds
					runtime.Gosched()
				}
			}
		}(p)
	}
	next := make([]uint64, producers)
	buf := make([]SQE, 7)
	got := 0
	// A stall is 30 s without one submission consumed: a lost or stuck
	// publication. How long the whole run takes depends on the machine's
	// load (-race, eight spinners on two shared cores) and is bounded by
	// the test timeout, not asserted.
	const stall = 30 * time.Second
	deadline := time.Now().Add(stall)
	for got < producers*per {
		if time.Now().After(deadline) {
			t.Fatalf("stalled: nothing consumed for %v after %d submissions", stall, got)
		}
		n := sq.Consume(buf)
		if n == 0 {
			runtime.Gosched()
		} else {
			deadline = time.Now().Add(stall)
		}
		for _, e := range buf[:n] {
			p, i := e.Tag>>32, e.Tag&0xffffffff
			if p >= producers || i != next[p] || e.Args[0] != i*3 {
				t.Fatalf("producer %d: got seq %d args %d, want %d", p, i, e.Args[0], next[p])
			}
			next[p]++
		}
		got += n
	}
	wg.Wait()
	if sq.Pending() {
		t.Fatal("ring still has a submission after all were consumed")
	}
}

func TestCQSPSCAndCorruptHead(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 8, CQEntries: 8, ArenaSize: PageSize})
	cq := r.CQ()
	const total = 10000
	done := make(chan error, 1)
	go func() {
		out := make([]CQE, 5)
		want := uint64(0)
		for want < total {
			n := cq.Reap(out)
			for _, c := range out[:n] {
				if c.Tag != want || c.Results[0] != want*7 || c.Status != Status(want%4) {
					done <- errors.New("out of order or torn completion")
					return
				}
				want++
			}
		}
		done <- nil
	}()
	for i := uint64(0); i < total; {
		if cq.Post([]CQE{{Tag: i, Status: Status(i % 4), Results: [2]uint64{i * 7}}}) == 1 {
			i++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A consumer that moves its head past the tail gets no space, not an
	// overwrite of unread completions or an out-of-range write.
	r.word(OffCQHead).Add(1000)
	if s := cq.Space(); s != 0 {
		t.Fatalf("space with corrupt head = %d, want 0", s)
	}
	if n := cq.Post([]CQE{{Tag: 1}}); n != 0 {
		t.Fatalf("posted %d into a ring with a corrupt head", n)
	}
}

func TestLayoutValidation(t *testing.T) {
	bad := []Config{
		{SQEntries: 7, CQEntries: 8, ArenaSize: PageSize},
		{SQEntries: 4, CQEntries: 8, ArenaSize: PageSize},
		{SQEntries: 16, CQEntries: 8, ArenaSize: PageSize},
		{SQEntries: 8, CQEntries: 8, ArenaSize: 100},
		{SQEntries: 8, CQEntries: 8, ArenaSize: 0},
		{SQEntries: 8, CQEntries: 8, ArenaSize: PageSize, FeaturesSize: 10},
		{SQEntries: 8, CQEntries: 8, ArenaSize: PageSize, Flags: 1 << 9},
		{SQEntries: 1 << 15, CQEntries: 1 << 15, ArenaSize: PageSize},
	}
	for _, c := range bad {
		if _, err := c.Layout(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: got %v, want ErrBadConfig", c, err)
		}
	}
	r := newTestRegion(t, DefaultConfig)
	mem := r.Bytes()
	if _, err := OpenRegion(mem); err != nil {
		t.Fatalf("reopen fresh region: %v", err)
	}
	for _, tc := range []struct {
		off  int
		val  byte
		want error
	}{
		{OffMagic, 0, ErrBadMagic},
		{OffVersionMajor, 9, ErrBadVersion},
		{OffArenaOff, 1, ErrBadLayout},
		{OffSQEntries, 3, ErrBadLayout},
		{OffRegionSize + 5, 1, ErrBadLayout},
	} {
		saved := mem[tc.off]
		mem[tc.off] = tc.val
		if _, err := OpenRegion(mem); !errors.Is(err, tc.want) {
			t.Errorf("corrupt byte %#x: got %v, want %v", tc.off, err, tc.want)
		}
		mem[tc.off] = saved
	}
	if _, err := OpenRegion(mem[:len(mem)-PageSize]); !errors.Is(err, ErrBadLayout) {
		t.Errorf("truncated mapping: got %v", err)
	}
}

func TestArenaRange(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 8, CQEntries: 8, ArenaSize: 2 * PageSize})
	if _, err := r.ArenaRange(0, 2*PageSize); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]uint64{{1, 2 * PageSize}, {2*PageSize + 1, 0}, {^uint64(0), 2}, {8, ^uint64(0) - 4}} {
		if _, err := r.ArenaRange(c[0], c[1]); err == nil {
			t.Errorf("range %v accepted", c)
		}
	}
}

func TestBellWakesSleeper(t *testing.T) {
	r := newTestRegion(t, DefaultConfig)
	sq := r.SQ()
	woke := make(chan struct{})
	go func() {
		for !sq.Pending() {
			sq.Bell.Wait(sq.Pending, 10*time.Second)
		}
		close(woke)
	}()
	// Wait until the sleeper announced itself, then publish and ring.
	for sq.Bell.Waiters.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := sq.TrySubmit(&SQE{Opcode: OpNop}); err != nil {
		t.Fatal(err)
	}
	if err := sq.Bell.Ring(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("sleeper not woken by the doorbell")
	}
}

func TestSQBatchSubmit(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 8, CQEntries: 8, ArenaSize: PageSize})
	sq := r.SQ()
	es := make([]SQE, 12)
	for i := range es {
		es[i] = SQE{Opcode: OpNop, Tag: uint64(i)}
	}
	first, n, err := sq.TrySubmitBatch(es)
	if err != nil || first != 0 || n != 8 {
		t.Fatalf("first batch: first=%d n=%d err=%v", first, n, err)
	}
	if _, _, err := sq.TrySubmitBatch(es[8:]); !errors.Is(err, ErrRingFull) {
		t.Fatalf("full ring: %v", err)
	}
	out := make([]SQE, 3)
	if k := sq.Consume(out); k != 3 {
		t.Fatal(k)
	}
	// 3 slots free: a batch of 4 gets the largest power-of-two prefix
	// that fits (2), then the rest one at a time.
	first, n, err = sq.TrySubmitBatch(es[8:])
	if err != nil || first != 8 || n != 2 {
		t.Fatalf("partial batch: first=%d n=%d err=%v", first, n, err)
	}
	all := make([]SQE, 16)
	k := sq.Consume(all)
	if k != 7 {
		t.Fatalf("consumed %d, want 7", k)
	}
	for i := 0; i < k; i++ {
		if all[i].Tag != uint64(3+i) {
			t.Fatalf("position %d has tag %d", i, all[i].Tag)
		}
	}
}

// TestMPSCBatchStress mixes batch and single producers.
func TestMPSCBatchStress(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 32, CQEntries: 32, ArenaSize: PageSize})
	sq := r.SQ()
	const producers, per = 4, 4000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			es := make([]SQE, 7)
			for i := 0; i < per; {
				m := min(len(es), per-i)
				for k := 0; k < m; k++ {
					es[k] = SQE{Opcode: OpNop, Tag: uint64(p)<<32 | uint64(i+k)}
				}
				if p%2 == 0 {
					if _, n, err := sq.TrySubmitBatch(es[:m]); err == nil {
						i += n
					}
				} else if sq.TrySubmit(&es[0]) == nil {
					i++
				}
			}
		}(p)
	}
	next := make([]uint64, producers)
	buf := make([]SQE, 5)
	deadline := time.Now().Add(30 * time.Second)
	for got := 0; got < producers*per; {
		if time.Now().After(deadline) {
			t.Fatalf("stalled after %d", got)
		}
		n := sq.Consume(buf)
		for _, e := range buf[:n] {
			p, i := e.Tag>>32, e.Tag&0xffffffff
			if i != next[p] {
				t.Fatalf("producer %d: got %d want %d", p, i, next[p])
			}
			next[p]++
		}
		got += n
	}
	wg.Wait()
}

// TestSpinnerOSYield: a Spinner with OSYield yields the CPU once it has
// polled SpinOSYield without success, and only then; one without it, or
// a busy-polling one, never does.
func TestSpinnerOSYield(t *testing.T) {
	var yields int
	old := osYield
	osYield = func() { yields++ }
	defer func() { osYield = old }()
	for _, c := range []struct {
		s    Spinner
		want bool
	}{
		{Spinner{Window: 200 * time.Microsecond, OSYield: true}, true},
		{Spinner{Window: 200 * time.Microsecond}, false},
	} {
		yields = 0
		c.s.Spin(func() bool { return false }, nil)
		if (yields > 0) != c.want {
			t.Errorf("%+v: %d yields", c.s, yields)
		}
	}
	// Found quickly: no yield.
	yields = 0
	s := Spinner{Window: time.Millisecond, OSYield: true}
	n := 0
	s.Spin(func() bool { n++; return n > 10 }, nil)
	if yields != 0 {
		t.Errorf("%d yields before work found after 10 polls", yields)
	}
	// Busy polling never yields the CPU.
	yields = 0
	stopAt := time.Now().Add(200 * time.Microsecond)
	b := Spinner{Forever: true, OSYield: true}
	b.Spin(func() bool { return false }, func() bool { return time.Now().After(stopAt) })
	if yields != 0 {
		t.Errorf("busy-polling spinner yielded %d times", yields)
	}
}

// TestSQPublishedIgnoresHeadWord: Published (read by laked's session
// goroutines while its poller consumes) reports a submission at the
// consumer's own position; what the client writes into the shared head
// word and a slot's sequence word elsewhere does not make it report one
// (a client that could would keep laked's poller from ever napping),
// while a real submission does.
func TestSQPublishedIgnoresHeadWord(t *testing.T) {
	r := newTestRegion(t, Config{SQEntries: 8, CQEntries: 8, ArenaSize: PageSize})
	sq := r.SQ()
	sq.ResumeConsumer()
	if sq.Published() {
		t.Fatal("an empty ring reads as published")
	}
	// The client scribbles: head 5, and slot 5's sequence word as if a
	// submission were published there.
	sq.head.Store(5)
	sq.seq(5).Store(6)
	if sq.Published() {
		t.Fatal("a scribbled head word and sequence word read as a published submission")
	}
	// A real submission at the consumer's position (0) is seen whatever
	// the head word says.
	if err := sq.TrySubmit(&SQE{Opcode: OpNop, Tag: 1}); err != nil {
		t.Fatal(err)
	}
	if !sq.Published() {
		t.Fatal("a submission at the consumer's position is not seen")
	}
	out := make([]SQE, 8)
	if n := sq.Consume(out); n != 1 || out[0].Tag != 1 {
		t.Fatalf("consumed %d (tag %d), want the one submission", n, out[0].Tag)
	}
	sq.head.Store(5)
	if sq.Published() {
		t.Fatal("after the consumer took it, a scribbled head reads as published")
	}
	// A laked that re-attaches resumes at the head word: Published
	// follows it there.
	sq.head.Store(1)
	sq.seq(1).Store(2)
	if sq.ResumeConsumer() != 1 || !sq.Published() {
		t.Fatal("after ResumeConsumer, the submission at the consumer's position is not seen")
	}
}
