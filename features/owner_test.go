package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestOwnBasics walks a key through shared -> owned -> shared -> owned ->
// dropped and checks what every other writer sees on the way.
func TestOwnBasics(t *testing.T) {
	r := newTestRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "own", History: 8, MaxKeys: 4, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	const key = 7
	// History recorded before the ownership stays.
	for v := uint64(1); v <= 3; v++ {
		if err := r.Record(id, key, u64rec(s, v)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := r.Key(id, key)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Own(id, key)
	if err != nil {
		t.Fatal(err)
	}
	if w.Key() != key {
		t.Fatalf("Key() = %d", w.Key())
	}
	// 40 records: several laps of the 8-record ring, so the fast path runs.
	for v := uint64(4); v <= 43; v++ {
		if err := w.Record(u64rec(s, v)); err != nil {
			t.Fatalf("owned record %d: %v", v, err)
		}
	}
	var win Window
	if err := r.ReadWindow(id, key, 8, &win); err != nil {
		t.Fatal(err)
	}
	if got := windowVals(&win); fmt.Sprint(got) != fmt.Sprint([]uint64{36, 37, 38, 39, 40, 41, 42, 43}) {
		t.Fatalf("window %v", got)
	}
	if win.Index[7] != 42 {
		t.Fatalf("indices %v: the owner must continue the key's index sequence", win.Index)
	}
	if st, err := r.Stats(id, key); err != nil || st.Recorded != 43 || st.Lost != 0 || !st.Owned || st.OwnerPID != os.Getpid() {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if keys, _ := r.Keys(id); len(keys) != 1 || keys[0] != key {
		t.Fatalf("keys %v", keys)
	}

	// Nobody else writes, drops or owns it.
	for name, err := range map[string]error{
		"Record":           r.Record(id, key, u64rec(s, 0)),
		"KeyHandle.Record": h.Record(u64rec(s, 0)),
		"DropKey":          r.DropKey(id, key),
	} {
		if !errors.Is(err, ErrOwned) {
			t.Errorf("%s on an owned key: %v, want ErrOwned", name, err)
		}
	}
	if _, err := r.Own(id, key); !errors.Is(err, ErrOwned) {
		t.Errorf("second Own: %v, want ErrOwned", err)
	}
	if err := w.Record(make([]byte, 16)); !errors.Is(err, ErrWidth) {
		t.Errorf("wrong width: %v", err)
	}
	// Other keys are unaffected.
	if err := r.Record(id, key+1, u64rec(s, 1)); err != nil {
		t.Fatal(err)
	}

	// Close: shared writers again, the history continues.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(u64rec(s, 0)); !errors.Is(err, ErrNotOwner) {
		t.Errorf("record after Close: %v, want ErrNotOwner", err)
	}
	if err := h.Record(u64rec(s, 44)); err != nil {
		t.Fatalf("handle after Close: %v", err)
	}
	if err := r.Record(id, key, u64rec(s, 45)); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadWindow(id, key, 3, &win); err != nil || fmt.Sprint(windowVals(&win)) != "[43 44 45]" {
		t.Fatalf("window after Close %v, %v", windowVals(&win), err)
	}
	if st, err := r.Stats(id, key); err != nil || st.Owned || st.Recorded != 45 {
		t.Fatalf("stats after Close %+v, %v", st, err)
	}

	// Own again, then Drop: the key is gone and can be recreated.
	w2, err := r.Own(id, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Record(u64rec(s, 46)); err != nil {
		t.Fatal(err)
	}
	if err := w2.Drop(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadWindow(id, key, 1, &win); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("read after Drop: %v", err)
	}
	if err := w2.Record(u64rec(s, 0)); !errors.Is(err, ErrNotOwner) {
		t.Errorf("record after Drop: %v", err)
	}
	if err := w2.Drop(); !errors.Is(err, ErrNotOwner) {
		t.Errorf("second Drop: %v", err)
	}
	if err := r.Record(id, key, u64rec(s, 1)); err != nil {
		t.Fatalf("recreate after Drop: %v", err)
	}

	// Own inserts a missing key, within capacity.
	for k := uint64(100); ; k++ {
		w, err := r.Own(id, k)
		if errors.Is(err, ErrKeyCapacity) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if k > 110 {
			t.Fatal("capacity not enforced for Own")
		}
		defer w.Close()
	}
	if _, err := r.Own(SchemaID(99), 1); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("Own of an unknown schema: %v", err)
	}
}

// TestOwnedStress: an owner takes and gives back one key over and over
// while shared writers keep recording into it, readers check windows and a
// drainer checks every sample: no torn, foreign, reordered or phantom
// sample, and every reserved index delivered or counted as dropped.
func TestOwnedStress(t *testing.T) {
	const (
		shared   = 3
		readers  = 2
		rounds   = 60
		perRound = 50 // > 3 laps of the 8-record ring: the owner's fast path runs
		ownerID  = 100
		key      = 0x77
	)
	r, id, s, dr := newStressRegistry(t)
	var (
		done      atomic.Bool
		errOnce   sync.Once
		firstErr  error
		okMu      sync.Mutex
		succeeded = map[[2]uint64]bool{} // (writer, counter) recorded without error
		owned     atomic.Uint64
		windows   atomic.Uint64
		liveDrain atomic.Uint64 // samples drained while the owner runs
		quiet     atomic.Bool   // every writer has returned
	)
	fail := func(err error) { errOnce.Do(func() { firstErr = err }); done.Store(true) }
	ok := func(writer, c uint64) { okMu.Lock(); succeeded[[2]uint64{writer, c}] = true; okMu.Unlock() }

	var owner, writers sync.WaitGroup
	owner.Add(1)
	go func() { // the owner: it bounds the test
		defer owner.Done()
		buf := s.NewRecord()
		c := uint64(0)
		// At least `rounds` rounds, and on until the readers and the
		// drainer have worked alongside (bounded for a slow machine).
		for round := 0; ; round++ {
			if round >= 100*rounds || (round >= rounds && windows.Load() >= 2000 && liveDrain.Load() >= 200) {
				break
			}
			w, err := r.Own(id, key)
			if err != nil {
				fail(fmt.Errorf("own: %w", err))
				return
			}
			for range perRound {
				c++
				makeStress(buf, ownerID, c, key)
				switch err := w.Record(buf); {
				case err == nil:
					ok(ownerID, c)
					owned.Add(1)
				case errors.Is(err, ErrLost): // a straggler held the record
				default:
					fail(fmt.Errorf("owner record: %w", err))
					return
				}
			}
			if err := w.Close(); err != nil {
				fail(err)
				return
			}
		}
	}()
	for wr := range uint64(shared) {
		writers.Add(1)
		go func() {
			defer writers.Done()
			buf := s.NewRecord()
			for c := uint64(1); !done.Load(); c++ {
				makeStress(buf, wr, c, key)
				switch err := r.Record(id, key, buf); {
				case err == nil:
					ok(wr, c)
				case errors.Is(err, ErrOwned), errors.Is(err, ErrLost):
				default:
					fail(fmt.Errorf("shared record: %w", err))
					return
				}
			}
		}()
	}
	var rwg sync.WaitGroup
	for rd := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			var win Window
			rng := rand.New(rand.NewPCG(uint64(rd), 3))
			for !done.Load() {
				if err := r.ReadWindow(id, key, 1+rng.IntN(8), &win); err != nil {
					if !errors.Is(err, ErrUnknownKey) {
						fail(err)
					}
					continue
				}
				windows.Add(1)
				if err := checkStressWindow(&win, key); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	type smp struct{ idx, writer, c uint64 }
	drained := make(chan []smp, 1)
	var dropped atomic.Uint64
	go func() {
		var got []smp
		var b Batch
		for {
			stop := quiet.Load() // then drain what is left and stop
			if err := dr.Drain(32, &b); err != nil {
				fail(err)
				break
			}
			dropped.Add(b.Dropped)
			if !done.Load() {
				liveDrain.Add(uint64(len(b.Samples)))
			}
			for _, x := range b.Samples {
				wr, c, err := checkStress(x.Data, x.Key)
				if err != nil {
					fail(fmt.Errorf("drain: %w", err))
				}
				got = append(got, smp{x.Index, wr, c})
			}
			if stop && len(b.Samples) == 0 && b.Dropped == 0 {
				break
			}
		}
		drained <- got
	}()

	owner.Wait()
	done.Store(true)
	writers.Wait()
	quiet.Store(true)
	rwg.Wait()
	got := <-drained
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	seen := map[uint64]bool{}
	last := map[uint64]uint64{}
	for _, x := range got {
		if seen[x.idx] {
			t.Fatalf("index %d delivered twice", x.idx)
		}
		seen[x.idx] = true
		if !succeeded[[2]uint64{x.writer, x.c}] {
			t.Fatalf("drained writer %d counter %d, which no Record reported as recorded", x.writer, x.c)
		}
		if x.c <= last[x.writer] {
			t.Fatalf("drain: writer %d counter %d after %d", x.writer, x.c, last[x.writer])
		}
		last[x.writer] = x.c
	}
	st, err := r.Stats(id, key)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(got))+dropped.Load() != st.Recorded {
		t.Fatalf("drainer delivered %d + dropped %d != %d indices reserved", len(got), dropped.Load(), st.Recorded)
	}
	if owned.Load() < rounds*perRound/2 || windows.Load() == 0 || liveDrain.Load() == 0 {
		t.Fatalf("owner recorded %d, readers checked %d windows, drainer took %d samples while it ran: too little happened",
			owned.Load(), windows.Load(), liveDrain.Load())
	}
	t.Logf("owner recorded %d, %d samples succeeded in all, drained %d, dropped %d, windows %d",
		owned.Load(), len(succeeded), len(got), dropped.Load(), windows.Load())
}

// TestOwnerDeadTakeover simulates an owner that died in the middle of a
// record (its sequence left odd) in a process that no longer exists: Own
// takes the key over, abandons the half-written record, and the history
// stays readable and untorn; the dead Writer cannot write any more.
func TestOwnerDeadTakeover(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("owner liveness is checked with kill(pid, 0) on Linux only")
	}
	for _, how := range []string{"own", "drop", "no-token"} {
		t.Run(how, func(t *testing.T) {
			r := newTestRegistry(t, smallCfg())
			id, err := r.Register(Schema{Name: "own", History: 8, MaxKeys: 4, Fields: []Field{{Name: "v", Type: U64, Count: 2}}})
			if err != nil {
				t.Fatal(err)
			}
			s, _ := r.Schema(id)
			rec := func(v uint64) []byte { return u64rec(s, v, ^v) }
			dead, err := r.Own(id, 5)
			if err != nil {
				t.Fatal(err)
			}
			for v := uint64(1); v <= 20; v++ {
				if err := dead.Record(rec(v)); err != nil {
					t.Fatal(err)
				}
			}
			so := r.slotOff(s, dead.p)
			tok := atomic.LoadUint64(r.u64(so + slotOwner))
			if how == "no-token" {
				// The owner died between the state CAS and the token
				// store (before writing anything): no valid token.
				atomic.StoreUint64(r.u64(so+slotOwner), tok^1)
			} else {
				// The owner died mid-record: index 20 in progress, payload
				// half written, write index not advanced; its pid is gone.
				ro := r.recOff(s, dead.p, 20)
				atomic.StoreUint64(r.u64(ro+recSeq), 2*20+1)
				atomic.StoreUint64(r.u64(ro+recHdrSize), 999)
				atomic.StoreUint64(r.u64(so+slotOwner), uint64(deadPID(t))<<32|tok&0xffffffff)
			}
			if how == "drop" {
				if err := r.DropKey(id, 5); err != nil {
					t.Fatalf("DropKey of a dead owner's key: %v", err)
				}
				if err := r.Record(id, 5, rec(1)); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := r.Own(id, 5)
			if err != nil {
				t.Fatalf("takeover: %v", err)
			}
			if err := dead.Record(rec(0)); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("dead Writer still records: %v", err)
			}
			for v := uint64(21); v <= 60; v++ {
				if err := w.Record(rec(v)); err != nil {
					t.Fatalf("record %d after takeover: %v", v, err)
				}
			}
			var win Window
			if err := r.ReadWindow(id, 5, 8, &win); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < win.Len(); i++ {
				a, b := binary.LittleEndian.Uint64(win.Record(i)), binary.LittleEndian.Uint64(win.Record(i)[8:])
				if b != ^a || a < 53 {
					t.Fatalf("window record %d = (%d, %#x): torn or stale", i, a, b)
				}
			}
			if win.Len() != 8 {
				t.Fatalf("window has %d records, want 8", win.Len())
			}
		})
	}
}

// TestOwnedWritePathMatchesSlowPath compares what the fast path (assembly
// on amd64 without -race) writes with what the slow path writes, byte for
// byte, over several laps and record sizes.
func TestOwnedWritePathMatchesSlowPath(t *testing.T) {
	for _, words := range []int{1, 3, 8} {
		r := newTestRegistry(t, smallCfg())
		id, err := r.Register(Schema{Name: "p", History: 4, MaxKeys: 2, Fields: []Field{{Name: "v", Type: U64, Count: words}}})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := r.Schema(id)
		w, err := r.Own(id, 1)
		if err != nil {
			t.Fatal(err)
		}
		rec := s.NewRecord()
		var win Window
		for n := uint64(0); n < 20; n++ {
			for i := range words {
				binary.LittleEndian.PutUint64(rec[8*i:], n*1000+uint64(i))
			}
			fast := w.hot.next >= w.hot.fastFrom
			if err := w.Record(rec); err != nil {
				t.Fatal(err)
			}
			if fast != (n >= 4) {
				t.Fatalf("record %d: fast path %v, want it from the second lap on", n, fast)
			}
			ro := r.recOff(s, w.p, n)
			if seq := atomic.LoadUint64(r.u64(ro + recSeq)); seq != 2*n+2 {
				t.Fatalf("words %d record %d: seq %d, want %d", words, n, seq, 2*n+2)
			}
			if wi := atomic.LoadUint64(r.u64(r.slotOff(s, w.p) + slotWriteIdx)); wi != n+1 {
				t.Fatalf("write index %d after record %d", wi, n)
			}
			if err := r.ReadWindow(id, 1, 1, &win); err != nil || string(win.Record(0)) != string(rec) || win.Index[0] != n {
				t.Fatalf("words %d record %d: read back %x at %v (%v), wrote %x", words, n, win.Data, win.Index, err, rec)
			}
		}
	}
}

// deadPID returns the pid of a process that has exited (and been reaped).
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	pid := cmd.Process.Pid
	if processAlive(pid) {
		t.Skipf("pid %d was reused at once", pid)
	}
	return pid
}
