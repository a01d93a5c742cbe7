package shm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// compileC builds one of testdata's C programs against lake_shm.h, or
// skips the test when no C compiler is installed.
func compileC(t *testing.T, src string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Skip("no C compiler (gcc or cc) on PATH: cannot check the C side")
		}
	}
	_, file, _, _ := runtime.Caller(0)
	inc := filepath.Join(filepath.Dir(file), "..", "lakelib", "include")
	bin := filepath.Join(t.TempDir(), strings.TrimSuffix(src, ".c"))
	cmd := exec.Command(cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I", inc, "-o", bin, filepath.Join("testdata", src))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("compile %s: %v\n%s", src, err, out)
	}
	return bin
}

func TestCLayoutMatches(t *testing.T) {
	bin := compileC(t, "layout.c")
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run layout program: %v", err)
	}
	got := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("bad line %q", sc.Text())
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		got[f[0]] = v
	}
	want := map[string]uint64{
		"lake_region_header.magic": OffMagic, "lake_region_header.version_major": OffVersionMajor,
		"lake_region_header.version_minor": OffVersionMinor, "lake_region_header.header_size": OffHeaderSize,
		"lake_region_header.flags": OffFlags, "lake_region_header.region_size": OffRegionSize,
		"lake_region_header.sq_entries": OffSQEntries, "lake_region_header.cq_entries": OffCQEntries,
		"lake_region_header.slot_size": OffSlotSize, "lake_region_header.client_id": OffClientID,
		"lake_region_header.sqes_off": OffSQEsOff, "lake_region_header.cqes_off": OffCQEsOff,
		"lake_region_header.arena_off": OffArenaOff, "lake_region_header.arena_size": OffArenaSize,
		"lake_region_header.features_off": OffFeaturesOff, "lake_region_header.features_size": OffFeaturesSize,
		"lake_region_header.daemon_epoch": OffDaemonEpoch, "lake_region_header.daemon_state": OffDaemonState,
		"lake_region_header.sq_tail": OffSQTail, "lake_region_header.sq_head": OffSQHead,
		"lake_region_header.sq_wake_seq": OffSQWakeSeq, "lake_region_header.sq_need_wakeup": OffSQNeedWakeup,
		"lake_region_header.cq_tail": OffCQTail, "lake_region_header.cq_head": OffCQHead,
		"lake_region_header.cq_wake_seq": OffCQWakeSeq, "lake_region_header.cq_waiters": OffCQWaiters,
		"sizeof.lake_region_header": HeaderSize,
		"lake_sqe.seq":              sqeOffSeq, "lake_sqe.opcode": sqeOffOpcode, "lake_sqe.flags": sqeOffFlags,
		"lake_sqe.pad": sqeOffPad, "lake_sqe.tag": sqeOffTag, "lake_sqe.args": sqeOffArgs,
		"sizeof.lake_sqe": SlotSize,
		"lake_cqe.status": cqeOffStatus, "lake_cqe.tag": cqeOffTag, "lake_cqe.results": cqeOffResults,
		"sizeof.lake_cqe":       SlotSize,
		"lake_launch_desc.grid": 0, "lake_launch_desc.block": 12, "lake_launch_desc.shared_mem": 24,
		"lake_launch_desc.param_bytes": 28, "lake_launch_desc.stream": 32,
		"sizeof.lake_launch_desc": LaunchDescHeader,
		"sizeof.lake_hello":       HandshakeLen, "sizeof.lake_reply": HandshakeLen,
		"const.LAKE_MAGIC": uint64(Magic), "const.LAKE_HELLO_MAGIC": uint64(HelloMagic),
		"const.LAKE_REPLY_MAGIC": uint64(ReplyMagic),
		"const.LAKE_OP_NOP":      uint64(OpNop), "const.LAKE_OP_MODEL_INFO": uint64(OpModelInfo),
		"const.LAKE_OP_PREDICT": uint64(OpPredict), "const.LAKE_OP_LAUNCH_KERNEL": uint64(OpLaunchKernel),
		"const.LAKE_ERR_CONTEXT_DESTROYED": uint64(StatusContextDestroyed),
		"const.LAKE_ERR_SHUTDOWN":          uint64(StatusShutdown),
		"const.LAKE_OP_MODEL_FETCH":        uint64(OpModelFetch),
		"const.LAKE_ERR_BUFFER_TOO_SMALL":  uint64(StatusBufferTooSmall),
		"const.LAKE_VERSION_MAJOR":         uint64(VersionMajor),
		"const.LAKE_VERSION_MINOR":         uint64(VersionMinor),
	}
	want["const.LAKE_ERR_DEADLINE"] = uint64(StatusDeadline)
	want["const.LAKE_SQE_F_DEADLINE"] = uint64(FlagDeadline)
	want["const.LAKE_DEADLINE_BITS"] = DeadlineBits
	want["const.LAKE_MAX_DEADLINE_AHEAD_US"] = uint64(MaxDeadlineAhead / time.Microsecond)
	for i, ns := range []uint64{0, 999, 1000, 123456789012, 8388607999, 8388608000, 0xffffffffffffffff} {
		var e SQE
		SetDeadline(&e, int64(ns))
		want[fmt.Sprintf("deadline.%d", i)] = uint64(e.Flags)<<16 | uint64(e.Pad)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("C program did not print %s", k)
			continue
		}
		if g != w {
			t.Errorf("%s: C says %d, Go says %d", k, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("C printed %d values, test knows %d: keep them in step", len(got), len(want))
	}
}

// TestCRingPeer runs a C producer/consumer (lake_shm.h's ring helpers)
// against the Go consumer/producer over a region file.
func TestCRingPeer(t *testing.T) {
	bin := compileC(t, "ringpeer.c")
	cfg := Config{SQEntries: 8, CQEntries: 16, ArenaSize: PageSize}
	l, _ := cfg.Layout()
	path := filepath.Join(t.TempDir(), "region")
	if err := os.WriteFile(path, make([]byte, l.RegionSize), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := MapFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, err := NewRegion(m.Mem, cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100 // more than the ring holds: exercises wrap-around and back-pressure
	cmd := exec.Command(bin, path, strconv.Itoa(n))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sq, cq := r.SQ(), r.CQ()
	buf := make([]SQE, 8)
	seen := 0
	for seen < n {
		k := sq.Consume(buf)
		for i := 0; i < k; i++ {
			e := buf[i]
			if e.Opcode != OpNop || e.Tag != uint64(1000+seen) || e.Args[0] != uint64(seen) {
				t.Fatalf("submission %d: got %+v", seen, e)
			}
			c := []CQE{{Status: Status(seen % 3), Tag: e.Tag}}
			for cq.Post(c) == 0 {
				runtime.Gosched()
			}
			seen++
		}
		if k == 0 {
			runtime.Gosched()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("C peer: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != n {
		t.Fatalf("C peer reaped %d completions, want %d", len(lines), n)
	}
	for i, ln := range lines {
		want := strconv.Itoa(1000+i) + " " + strconv.Itoa(i%3)
		if ln != want {
			t.Fatalf("completion %d: C read %q, want %q", i, ln, want)
		}
	}
}
