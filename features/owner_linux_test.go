//go:build linux

package features

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ownerChildEnv names the registry file a re-executed test binary owns a
// key of (TestOwnerProcessKilled).
const ownerChildEnv = "LAKE_FEATURES_OWNER_CHILD"

// TestOwnerChildProcess is not a test of its own: it is the child process
// of TestOwnerProcessKilled (skipped unless ownerChildEnv is set). It owns
// key 9 of schema "own", records 100 samples, says so on stdout and keeps
// recording until it is killed.
func TestOwnerChildProcess(t *testing.T) {
	path := os.Getenv(ownerChildEnv)
	if path == "" {
		t.Skip("helper process for TestOwnerProcessKilled")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Attach(mem)
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Lookup("own")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	w, err := r.Own(id, 9)
	if err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); ; v++ {
		if err := w.Record(u64rec(s, v)); err != nil {
			t.Fatal(err)
		}
		if v == 100 {
			os.Stdout.WriteString("owned " + strconv.Itoa(os.Getpid()) + "\n")
		}
	}
}

// TestOwnerProcessKilled: another process owns a key in a shared registry
// file; while it lives Own, Record and DropKey refuse the key naming its
// pid; after it is killed (SIGKILL, possibly mid-record) Own takes the key
// over and the history reads back untorn.
func TestOwnerProcessKilled(t *testing.T) {
	path, r := mappedRegistry(t, smallCfg())
	id, err := r.Register(Schema{Name: "own", History: 8, MaxKeys: 4, Fields: []Field{{Name: "v", Type: U64}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOwnerChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), ownerChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "owned ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	for name, err := range map[string]error{
		"Record":  r.Record(id, 9, u64rec(s, 0)),
		"DropKey": r.DropKey(id, 9),
	} {
		if !errors.Is(err, ErrOwned) || !strings.Contains(err.Error(), pid) {
			t.Errorf("%s while the owner lives: %v, want ErrOwned naming pid %s", name, err, pid)
		}
	}
	if _, err := r.Own(id, 9); !errors.Is(err, ErrOwned) {
		t.Errorf("Own while the owner lives: %v", err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	w, err := r.Own(id, 9)
	if err != nil {
		t.Fatalf("takeover after the owner was killed: %v", err)
	}
	var win Window
	if err := r.ReadWindow(id, 9, 8, &win); err != nil {
		t.Fatal(err)
	}
	vals := windowVals(&win)
	if len(vals) < 7 {
		t.Fatalf("window after the kill %v: too short", vals)
	}
	for i := 1; i < len(vals); i++ {
		if vals[i] != vals[i-1]+1 {
			t.Fatalf("window after the kill %v: not the owner's consecutive samples", vals)
		}
	}
	last := vals[len(vals)-1]
	for v := last + 1; v <= last+20; v++ {
		if err := w.Record(u64rec(s, v)); err != nil {
			t.Fatalf("record after takeover: %v", err)
		}
	}
	if err := r.ReadWindow(id, 9, 8, &win); err != nil || windowVals(&win)[7] != last+20 {
		t.Fatalf("window after takeover %v, %v", windowVals(&win), err)
	}
}

// TestCRecordRefusesOwnedKey: the C producer gets -EPERM for a key a Go
// Writer owns, and records the other keys.
func TestCRecordRefusesOwnedKey(t *testing.T) {
	bin := buildCProgram(t)
	path, r := mappedRegistry(t, Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 64, MaxRecordBytes: 64, ArenaBytes: 1 << 20})
	cs := cSchema
	cs.History = 64
	id, err := r.Register(cs)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Own(id, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	out, err := exec.Command(bin, "record", path, cs.Name, "1", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("C record of an unowned key: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "record", path, cs.Name, "1", "5", "1").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), "record key 2: -1") {
		t.Fatalf("C record of an owned key: %v\n%s\nwant exit 4 and -EPERM (-1)", err, out)
	}
	if st, err := r.Stats(id, 2); err != nil || st.Recorded != 0 {
		t.Fatalf("owned key stats %+v, %v: the C producer must not reserve records", st, err)
	}
}

// TestStuckClaimOfDeadProcess: a process that died in the middle of
// inserting a key (slot left busy or claimed) no longer blocks lookups
// through that slot: its claim is cleared once its pid is gone. Claims of
// live processes, and claims without a token (pid 0: the kernel), stay.
func TestStuckClaimOfDeadProcess(t *testing.T) {
	dead := deadPID(t)
	defer func(w time.Duration) { claimWait = w }(claimWait)
	claimWait = 50 * time.Millisecond // how long the live claims below hold Record up
	for _, c := range []struct {
		name  string
		state uint64
		pid   int
		ok    bool
	}{
		{"busy, dead pid", stBusy, dead, true},
		{"claimed, dead pid", stClaimed, dead, true},
		{"busy, live pid", stBusy, 1, false},
		{"busy, this process", stBusy, os.Getpid(), false},
		{"busy, no token", stBusy, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRegistry(t, smallCfg())
			id, err := r.Register(Schema{Name: "k", History: 4, MaxKeys: 4, Fields: []Field{{Name: "v", Type: U64}}})
			if err != nil {
				t.Fatal(err)
			}
			s, _ := r.Schema(id)
			const key = 42
			so := r.slotOff(s, mix64(key)&(s.tableSize-1)) // the key's home slot
			atomic.StoreUint64(r.u64(so+slotKey), key)
			atomic.StoreUint64(r.u64(so+slotOwner), ownerToken(c.pid, 1))
			atomic.StoreUint64(r.u64(so+slotState), 1<<genShift|c.state)
			err = r.Record(id, key, u64rec(s, 7))
			if !c.ok {
				if !errors.Is(err, ErrBusy) {
					t.Fatalf("Record through a live claim: %v, want ErrBusy", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Record through a dead process's claim: %v", err)
			}
			var w Window
			if err := r.ReadWindow(id, key, 1, &w); err != nil || windowVals(&w)[0] != 7 {
				t.Fatalf("read back %v, %v", windowVals(&w), err)
			}
			if keys, _ := r.Keys(id); len(keys) != 1 {
				t.Fatalf("keys %v: the key must be live exactly once", keys)
			}
		})
	}
}

// TestCOwnerRecordsGoReads: the C owner API (lake_feat_own,
// lake_feat_owner_record, lake_feat_owner_close) follows the same protocol:
// Go reads what a C owner wrote, refuses to write while it owns the key,
// takes the key over once the C process has exited without closing, and a
// key Go owns is refused to a C owner.
func TestCOwnerRecordsGoReads(t *testing.T) {
	bin := buildCProgram(t)
	path, r := mappedRegistry(t, Config{MaxSchemas: 4, MaxKeys: 16, MaxHistory: 64, MaxRecordBytes: 64, ArenaBytes: 1 << 20})
	cs := cSchema
	cs.History = 16
	id, err := r.Register(cs)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema(id)
	iField := s.FieldIndex("i")
	lastI := func(key uint64, n int) []uint64 {
		t.Helper()
		var w Window
		if err := r.ReadWindow(id, key, n, &w); err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for j := 0; j < w.Len(); j++ {
			v, err := s.Int(w.Record(j), iField, 0)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, uint64(v))
		}
		return out
	}
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, append([]string{"own", path, cs.Name}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	// A C owner records 100 samples (several laps of the 16-record ring)
	// and closes: Go reads the last ones, shared writes work again.
	if out, code := run("3", "100", "1"); code != 0 || !strings.Contains(out, "owned recorded 100 lost 0") {
		t.Fatalf("C owner: exit %d\n%s", code, out)
	}
	if got := lastI(3, 4); fmt.Sprint(got) != "[97 98 99 100]" {
		t.Fatalf("Go reads %v after the C owner", got)
	}
	if st, err := r.Stats(id, 3); err != nil || st.Recorded != 100 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if err := r.Record(id, 3, s.NewRecord()); err != nil {
		t.Fatalf("shared record after the C owner closed: %v", err)
	}

	// A C owner that exits without closing: Go refuses to write, then
	// takes the key over (the C process is gone) and continues.
	if out, code := run("4", "40", "0"); code != 0 {
		t.Fatalf("C owner: exit %d\n%s", code, out)
	}
	if err := r.Record(id, 4, s.NewRecord()); !errors.Is(err, ErrOwned) {
		t.Fatalf("Go record of a C-owned key: %v", err)
	}
	if st, err := r.Stats(id, 4); err != nil || !st.Owned || st.OwnerPID == 0 || st.OwnerPID == os.Getpid() || st.Recorded != 40 {
		t.Fatalf("stats of the C-owned key %+v, %v: want owned by the C process", st, err)
	}
	w, err := r.Own(id, 4)
	if err != nil {
		t.Fatalf("take over from the exited C owner: %v", err)
	}
	rec := s.NewRecord()
	if err := s.SetUint(rec, iField, 0, 41); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(rec); err != nil {
		t.Fatal(err)
	}
	if got := lastI(4, 3); fmt.Sprint(got) != "[39 40 41]" {
		t.Fatalf("after takeover %v", got)
	}

	// A key Go owns is refused to a C owner.
	if out, code := run("4", "1", "1"); code != 6 {
		t.Fatalf("C owner of a Go-owned key: exit %d, want 6\n%s", code, out)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
