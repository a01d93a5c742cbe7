//go:build linux

package lakec

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakeos/lake/features"
	"github.com/lakeos/lake/laked/kernelstats"
	"github.com/lakeos/lake/shm"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildOut  []byte
	buildDir  string
	tempDirs  []string // more directories for TestMain to remove
)

// cTestBinary compiles testdata/lake_c_test.c with lake_client.c once per
// test binary run, with ASan and UBSan when the compiler supports them.
func cTestBinary(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the C library tests (CI has gcc)")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "lakec-test-")
		if buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "lake_c_test")
		args := []string{"-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
			"-I", ".", "-I", filepath.Join("..", "include"),
			"-o", bin, filepath.Join("testdata", "lake_c_test.c"), filepath.Join("src", "lake_client.c")}
		san := []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all"}
		buildOut, buildErr = exec.Command(cc, append(san, args...)...).CombinedOutput()
		if buildErr != nil {
			// a toolchain without the sanitizer runtimes: plain build
			buildOut, buildErr = exec.Command(cc, args...).CombinedOutput()
		}
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatalf("compiling the C tests: %v\n%s", buildErr, buildOut)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// runTimeout bounds one run of the C test binary.
var runTimeout = 40 * time.Second

// runC runs the C test binary with args and returns its stdout; a hang
// (a lost doorbell wake-up) ends at the deadline and fails the test.
func runC(t *testing.T, args ...string) string {
	t.Helper()
	bin := cTestBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v: did not finish (hung?)\nstdout:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
	}
	if err != nil {
		t.Fatalf("%v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func wantLines(t *testing.T, out string, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		if !strings.Contains(out, "\n"+p) && !strings.HasPrefix(out, p) {
			t.Errorf("output lacks %q:\n%s", p, out)
		}
	}
}

// TestCRingUnit runs the single-threaded tests of lake_ring.h and the
// library: layout, rings across wrap-around, full rings, a hostile
// consumer, reset, attach validation.
func TestCRingUnit(t *testing.T) {
	out := runC(t, "unit")
	wantLines(t, out, "ok layout", "ok rings", "ok hostile-consumer", "ok client-attach")
}

// TestCThreadsDoorbells runs 4 producer threads through the lock-free
// submission path, a consumer thread playing laked and the main thread
// reaping, all sleeping on the futex doorbells without timeouts: every
// tag must complete exactly once and no wake-up may be lost.
func TestCThreadsDoorbells(t *testing.T) {
	out := runC(t, "threads")
	wantLines(t, out, "ok threads 80000")
}

// TestCThreadsDoorbellsTSan runs the same threaded test built with
// ThreadSanitizer, which checks the C atomics and orderings for data
// races.
func TestCThreadsDoorbellsTSan(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the C library tests (CI has gcc)")
	}
	bin := filepath.Join(t.TempDir(), "lake_c_test_tsan")
	out, err := exec.Command(cc, "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-tsan",
		"-pthread", "-fsanitize=thread", "-I", ".", "-I", filepath.Join("..", "include"),
		"-o", bin, filepath.Join("testdata", "lake_c_test.c"), filepath.Join("src", "lake_client.c")).CombinedOutput()
	if err != nil {
		t.Skipf("gcc cannot build with -fsanitize=thread here (no TSan runtime?): %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, bin, "threads").CombinedOutput()
	if bytes.Contains(out, []byte("unexpected memory mapping")) {
		t.Skipf("ThreadSanitizer cannot run on this kernel's address layout:\n%s", out)
	}
	if ctx.Err() != nil || err != nil {
		t.Fatalf("threads under TSan: %v (%v)\n%s", err, ctx.Err(), out)
	}
	if bytes.Contains(out, []byte("ThreadSanitizer")) {
		t.Fatalf("ThreadSanitizer reports:\n%s", out)
	}
	wantLines(t, string(out), "ok threads 80000")
}

// TestCFeatureRegistryReadByGo creates a registry and records LinnOS
// samples from C (lake_feat_create.h, lake_features.h), then reads it
// with the Go features package: the C creator and Go must agree.
func TestCFeatureRegistryReadByGo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "features.bin")
	runC(t, "features", path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mem := aligned(len(raw))
	copy(mem, raw)
	if want := features.SizeFor(features.Config{MaxSchemas: 8, ArenaBytes: 256 << 10}); len(mem) != want {
		t.Fatalf("C registry is %d bytes, Go SizeFor says %d", len(mem), want)
	}
	reg, err := features.Attach(mem)
	if err != nil {
		t.Fatalf("Go cannot attach the C registry: %v", err)
	}
	l, err := features.NewLinnOS(reg, 8)
	if err != nil {
		t.Fatalf("NewLinnOS on the C registry: %v", err)
	}
	var w features.Window
	if err := reg.ReadWindow(l.Arrivals(), 7, 4, &w); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for i := 0; i < w.Len(); i++ {
		got = append(got, binary.LittleEndian.Uint32(w.Record(i)))
	}
	if want := []uint32{3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("device 7 arrivals = %v, want %v", got, want)
	}
	// the LinnOS vector Go builds from C's records: the last 4 reads'
	// pending counts 3..6, pending now 12, their latencies 300..600
	vec, err := l.Features(7, 12, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{0, 0, 3, 0, 0, 4, 0, 0, 5, 0, 0, 6, 0, 1, 2, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0}
	if !slices.Equal(vec, want) {
		t.Errorf("LinnOS vector = %v\nwant            %v", vec, want)
	}
	var cw features.Window
	if err := reg.ReadWindow(l.Completions(), 7, 1, &cw); err != nil || cw.Len() != 1 {
		t.Fatalf("completion window: %v (%d records)", err, cw.Len())
	}
	if c, err := features.DecodeLinnOSCompletion(cw.Record(0)); err != nil || c != (features.LinnOSCompletion{LatencyUs: 600, Pending: 6, ArriveSeq: 5, DoneSeq: 6}) {
		t.Errorf("C completion record decodes to %+v (%v)", c, err)
	}
	keys, err := reg.Keys(l.Arrivals())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("arrival keys = %v, want devices 7 and 9", keys)
	}
	id, err := reg.Lookup("c.two")
	if err != nil {
		t.Fatal(err)
	}
	info, err := reg.Schema(id)
	if err != nil {
		t.Fatal(err)
	}
	if info.RecordSize() != 24 {
		t.Errorf("c.two record size = %d, want 24 (u8[3] then f64[2] at 8)", info.RecordSize())
	}
	// the dm-linnos statistics C recorded, as laked exports them: the
	// newest target record (field k of the 14 counters = 1001+k), the
	// replica's record, under the names of the target's dmsetup status
	pr := prometheus.NewRegistry()
	pr.MustRegister(kernelstats.New(reg))
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			lv := map[string]string{}
			for _, l := range m.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			if mf.GetName() == "lake_kernel_stat" {
				stats[lv["schema"]+"/"+lv["key"]+"/"+lv["field"]] = m.GetGauge().GetValue()
			}
		}
	}
	tgt := "stats.dm_linnos/" + strconv.Itoa(253<<20|2) + "/"
	for k, name := range []string{"reads", "predictions", "revokes", "capped", "bypassed", "all_slow", "fallbacks",
		"deadline_miss", "laked_ok", "laked_err", "laked_bad", "read_errors", "write_errors", "failovers"} {
		if v, ok := stats[tgt+name]; !ok || v != float64(1001+k) {
			t.Errorf("%s%s = %v (exported %v), want %d", tgt, name, v, ok, 1001+k)
		}
	}
	if stats[tgt+"accuracy"] != 937 || stats[tgt+"bypass"] != 1 {
		t.Errorf("accuracy %v bypass %v, want 937 and 1", stats[tgt+"accuracy"], stats[tgt+"bypass"])
	}
	dev := "stats.dm_linnos_dev/" + strconv.Itoa(253<<20) + "/"
	for name, want := range map[string]float64{"reads": 11, "errors": 2, "version": 5, "pending": 3, "model": 1} {
		if stats[dev+name] != want {
			t.Errorf("%s%s = %v, want %v", dev, name, stats[dev+name], want)
		}
	}
	if n := len(stats); n != 16+5 {
		t.Errorf("%d kernel statistics exported, want 21: %v", n, stats)
	}
}

// TestCConnectToGoHandshake runs the C library's handshake against a laked
// stand-in written with the shm package: hello, reply with the memfd by
// SCM_RIGHTS, then one nop answered through the futex doorbells.
func TestCConnectToGoHandshake(t *testing.T) {
	bin := cTestBinary(t)
	sock := filepath.Join(t.TempDir(), "laked.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() { srvErr <- serveOne(ln) }()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "connect", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("C client: %v\n%s", err, out)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("Go side: %v", err)
	}
	wantLines(t, string(out), "ok connect client=5 status=0 r0=4242")
}

// serveOne plays laked for one client: handshake, one submission, one
// completion.
func serveOne(ln *net.UnixListener) error {
	_ = ln.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := ln.AcceptUnix()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, shm.HandshakeLen)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	h, err := shm.DecodeHello(b)
	if err != nil {
		return err
	}
	if h.Kind != shm.HelloNew || h.Config.SQEntries != 8 || h.Config.CQEntries != 16 || h.Config.ArenaSize != 4096 {
		return errors.New("unexpected hello")
	}
	l, err := h.Config.Layout()
	if err != nil {
		return err
	}
	m, err := shm.CreateMemfd("lakec-test", l.RegionSize)
	if err != nil {
		return err
	}
	defer m.Close()
	r, err := shm.NewRegion(m.Mem, h.Config, 5)
	if err != nil {
		return err
	}
	reply := shm.Reply{Status: shm.StatusOK, ClientID: 5, RegionSize: l.RegionSize}
	if err := shm.SendMsgFD(c, reply.Encode(), m.FD()); err != nil {
		return err
	}
	sq, cq := r.SQ(), r.CQ()
	deadline := time.Now().Add(30 * time.Second)
	var in [1]shm.SQE
	for sq.Consume(in[:]) == 0 {
		if time.Now().After(deadline) {
			return errors.New("no submission")
		}
		if err := sq.Bell.Wait(sq.Pending, 100*time.Millisecond); err != nil {
			return err
		}
	}
	if in[0].Opcode != shm.OpNop || in[0].Tag != 77 {
		return errors.New("unexpected submission")
	}
	if cq.Post([]shm.CQE{{Status: shm.StatusOK, Tag: in[0].Tag, Results: [2]uint64{4242}}}) != 1 {
		return errors.New("completion ring full")
	}
	return cq.Bell.Ring()
}

// FuzzCRegion feeds hostile region bytes (header and slots) to the C ring
// code: lake_ring_init must reject what is inconsistent, and everything it
// accepts must keep every access inside the region (ASan checks).
// Each input runs in a fresh process, so fuzzing is slow; the seeds run
// in every `go test`.
func FuzzCRegion(f *testing.F) {
	f.Add(validRegionHeader(8, 16, 4096, 0))
	f.Add(validRegionHeader(16, 16, 8192, 4096))
	f.Add([]byte("LAKE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		path := filepath.Join(t.TempDir(), "region")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := runC(t, "fuzz", path)
		if !strings.HasPrefix(out, "ok fuzz ") {
			t.Fatalf("unexpected output %q", out)
		}
	})
}

// validRegionHeader returns the header page (and zeroed slots) of a
// region with these sizes, made by the Go shm package.
func validRegionHeader(sq, cq uint32, arena, feat uint64) []byte {
	cfg := shm.Config{SQEntries: sq, CQEntries: cq, ArenaSize: arena, FeaturesSize: feat}
	l, err := cfg.Layout()
	if err != nil {
		panic(err)
	}
	mem := aligned(int(l.RegionSize))
	if _, err := shm.NewRegion(mem, cfg, 1); err != nil {
		panic(err)
	}
	return mem[:l.ArenaOff]
}

// aligned returns n zero bytes at a 4096-byte aligned address.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	off := int((4096 - uintptr(unsafe.Pointer(&b[0]))%4096) % 4096)
	return b[off : off+n : off+n]
}
