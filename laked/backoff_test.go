package laked

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/shm"
)

// waitCounting counts its session goroutine's doorbell waits.
type waitCounting struct {
	*goneTransport
	waits atomic.Int64
}

func (w *waitCounting) WaitSubmissions(ready func() bool, timeout time.Duration) error {
	w.waits.Add(1)
	return w.goneTransport.WaitSubmissions(ready, timeout)
}

// TestDoorbellStormIsBackedOff: a client that rings its submission
// doorbell and rewrites its wake-up word without publishing anything
// makes every futex wait of its session's goroutine return at once.
// Before the backoff that goroutine spun on it (a core of laked's for as
// long as the client liked); now, past backoffFree such returns, each
// costs a sleep that doubles up to 10 ms: in 300 ms of storm the
// goroutine waits on the doorbell at most a few dozen times, laked
// counts the spurious wake-ups, and the client's real submissions are
// served afterwards.
func TestDoorbellStormIsBackedOff(t *testing.T) {
	srv := newTestServer(t, Config{IdleSpin: -1})
	tr := &waitCounting{goneTransport: newGoneTransport(t)}
	r := tr.r
	if _, err := srv.Attach(tr); err != nil {
		t.Fatal(err)
	}
	if e := answerNop(t, r, 1); e.Tag != 1 || e.Status != shm.StatusOK {
		t.Fatalf("nop answered %+v", e)
	}
	napOf(t, srv.poller) // the session's goroutine now waits on the doorbell
	w0, sp0 := tr.waits.Load(), srv.Stats().SpuriousWakes
	sq := r.SQ()
	kicks := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); kicks++ {
		_ = sq.Bell.Kick() // the wake-up word changes, and sleepers are woken
	}
	waits := tr.waits.Load() - w0
	spurious := srv.Stats().SpuriousWakes - sp0
	t.Logf("%d kicks in 300 ms: %d doorbell waits, %d spurious wake-ups counted", kicks, waits, spurious)
	// 16 free, then sleeps of 50 µs doubling to 10 ms: ~45 in 300 ms.
	if waits > 200 {
		t.Fatalf("%d doorbell waits in 300 ms of a doorbell storm: the session's goroutine spins on it", waits)
	}
	if spurious == 0 || waits < backoffFree {
		t.Fatalf("%d waits, %d spurious wake-ups counted: the storm did not reach the goroutine", waits, spurious)
	}
	start := time.Now()
	if e := answerNop(t, r, 2); e.Tag != 2 || e.Status != shm.StatusOK {
		t.Fatalf("nop after the storm answered %+v", e)
	}
	t.Logf("first nop after the storm answered in %v", time.Since(start))
}

// TestFullCompletionRingIsBackedOff: a client that fills its completion
// ring and never reaps holds its session's goroutine in back-pressure;
// the goroutine looks for room after 50 µs, then less and less often, at
// most every millisecond, for as long as the client sits there. (The
// fixed 50 µs sleep before gave ~277 checks in 300 ms here too: on an
// idle machine Go rounds short sleeps up to ~1 ms; the backoff bounds
// the checks whatever the timers do.) Once the client reaps, every
// submission is answered, once.
func TestFullCompletionRingIsBackedOff(t *testing.T) {
	srv := newTestServer(t, Config{IdleSpin: -1})
	tr := newGoneTransportWith(t, shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 64 << 10})
	r := tr.r
	id, err := srv.Attach(tr)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	s := srv.sessions[id]
	srv.mu.Unlock()
	sq, cq := r.SQ(), r.CQ()
	const n = 16 // two rings' worth: the second's completions wait in laked
	for i, deadline := 0, time.Now().Add(10*time.Second); i < n; {
		if err := sq.TrySubmit(&shm.SQE{Opcode: shm.OpNop, Tag: uint64(i)}); err != nil {
			_ = sq.Bell.Ring() // full: laked consumes what is there
			if time.Now().After(deadline) {
				t.Fatalf("submitted %d of %d: %v", i, n, err)
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		i++
	}
	_ = sq.Bell.Ring()
	for deadline := time.Now().Add(10 * time.Second); s.fullChecks.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session's goroutine never met the full completion ring")
		}
	}
	c0 := s.fullChecks.Load()
	time.Sleep(300 * time.Millisecond)
	checks := s.fullChecks.Load() - c0
	t.Logf("%d checks for room in 300 ms of a full completion ring", checks)
	// Sleeps of 50 µs doubling to 1 ms: at most ~300 in 300 ms.
	if checks > 450 {
		t.Fatalf("%d checks in 300 ms: the goroutine polls a full completion ring every ~%v", checks, 300*time.Millisecond/time.Duration(checks))
	}
	seen := map[uint64]int{}
	var e [8]shm.CQE
	for deadline := time.Now().Add(10 * time.Second); len(seen) < n; {
		k := cq.Reap(e[:])
		for _, c := range e[:k] {
			if c.Status != shm.StatusOK {
				t.Fatalf("tag %d: %v", c.Tag, c.Status)
			}
			seen[c.Tag]++
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answered after the client reaped", len(seen), n)
		}
		if k == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	for tag, k := range seen {
		if k != 1 || tag >= n {
			t.Fatalf("tag %d answered %d times", tag, k)
		}
	}
}
