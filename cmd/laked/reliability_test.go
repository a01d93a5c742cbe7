package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// TestMetricsOnUnixSocket: metrics_addr "unix:/path" serves /metrics on
// a unix socket of mode 0600 instead of loopback TCP (which every local
// user can read).
func TestMetricsOnUnixSocket(t *testing.T) {
	ms := filepath.Join(t.TempDir(), "metrics.sock")
	startLaked(t, "--metrics-addr", "unix:"+ms)
	var fi os.FileInfo
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err = os.Stat(ms); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("metrics socket mode %#o, want 0600", perm)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ms)
	}}, Timeout: 5 * time.Second}
	// The file exists from bind, before listen: retry a refused connect.
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err = hc.Get("http://laked/metrics"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "lake_") {
		t.Fatalf("metrics over the unix socket: %d %.200s", resp.StatusCode, b)
	}
}

// attackLimits are the budgets TestAttacksOnLakedProcess gives laked
// (LAKED_LIMITS_* variables), and attackBudget what laked's RSS must stay
// under whatever the attackers do: the global budgets plus a working set
// for the Go runtime, the demo model and laked's own buffers.
var attackLimits = map[string]uint64{
	"REGION_BYTES":         32 << 20,
	"TOTAL_REGION_BYTES":   256 << 20,
	"TOTAL_QUEUED_BYTES":   64 << 20,
	"SESSION_QUEUED_BYTES": 16 << 20,
	"SESSION_DEVICE_BYTES": 64 << 20,
	"TOTAL_DEVICE_BYTES":   128 << 20,
}

const attackWorkingSet = 128 << 20

func attackBudget() uint64 {
	return attackLimits["TOTAL_REGION_BYTES"] + attackLimits["TOTAL_QUEUED_BYTES"] + attackLimits["TOTAL_DEVICE_BYTES"] + attackWorkingSet
}

// rssOf reads a process's resident set (VmRSS) in bytes.
func rssOf(t *testing.T, pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("laked is gone: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// cpuOf reads a process's user+system CPU time.
func cpuOf(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("laked is gone: %v", err)
	}
	// Fields after the command name (which may hold spaces) in parens.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

// rssWatch samples a process's RSS every 5 ms until stopped and keeps the
// peak.
type rssWatch struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(t *testing.T, pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
						kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						if kb<<10 > w.peak.Load() {
							w.peak.Store(kb << 10)
						}
					}
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *rssWatch) Stop() uint64 { close(w.stop); <-w.done; return w.peak.Load() }

// TestAttacksOnLakedProcess is the attack suite of docs/RELIABILITY.md:
// every hostile behaviour of issue 13 against a laked process with small
// budgets, LAKE_ATTACK_ROUNDS times (default 1): region flooding past
// total_region_bytes, handshakes opened and never finished, re-attach
// with a regular file, a pipe and an unsealed memfd shrunk afterwards,
// predicts flooding past the queued-bytes budgets, device memory filled
// and written past the device budgets, kernel launches left running by a
// departing client, doorbells rung and rewritten with nothing submitted,
// and the admin loader pointed at /dev/zero and a FIFO. After each attack laked must be alive and serve a well-behaved
// client correctly; its RSS is sampled throughout and must stay under
// the global budget (asserted without -race, which inflates memory).
func TestAttacksOnLakedProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("attack suite")
	}
	rounds := 1
	if s := os.Getenv("LAKE_ATTACK_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("LAKE_ATTACK_ROUNDS=%q", s)
		}
		rounds = n
	}
	for k, v := range attackLimits {
		t.Setenv("LAKED_LIMITS_"+k, strconv.FormatUint(v, 10))
	}
	t.Setenv("LAKED_LIMITS_LAUNCH_TIMEOUT", "2s")
	adminSock := filepath.Join(t.TempDir(), "admin.sock")
	cmd, sock := startLaked(t, "--admin-socket", adminSock, "--log-level", "error")
	pid := cmd.Process.Pid
	// laked in a memory cgroup limited to the budget (four times it
	// under -race, which multiplies memory): the kernel's accounting of
	// what laked is charged, beside its RSS.
	cgLimit := attackBudget()
	if raceBuild {
		cgLimit *= 4
	}
	cg, cgErr := newMemCgroup(t, pid, cgLimit)
	if cgErr != nil {
		t.Logf("laked's cgroup memory not measured: %v", cgErr)
	}
	w := watchRSS(t, pid)
	base := rssOf(t, pid)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref, err := kernels.ParseMLP(laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	healthy := func(what string) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("laked died during %s: %v", what, err)
		}
		var c *lakelib.Client
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			c, err = lakelib.Dial(dctx, sock, lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 64 << 10}})
			dcancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("after %s no well-behaved client can attach: %v", what, err)
		}
		defer c.Close()
		in := make([]float32, 8*4)
		for i := range in {
			in[i] = float32(i%13) * 0.3
		}
		want := make([]float32, 2*4)
		ref.Forward(in, want, 4)
		out := make([]byte, 8*4)
		if _, err := c.Predict(ctx, 2, 4, laked.Float32sToBytes(in), out); err != nil {
			t.Fatalf("after %s a well-behaved predict fails: %v", what, err)
		}
		for i, v := range laked.BytesToFloat32s(out) {
			if v != want[i] {
				t.Fatalf("after %s a well-behaved predict is wrong", what)
			}
		}
	}
	attacks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"region flood", func(t *testing.T) {
			var cs []*lakelib.Client
			defer func() {
				for _, c := range cs {
					c.Close()
				}
			}()
			refused := 0
			for i := 0; i < 40; i++ {
				dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
				c, err := lakelib.Dial(dctx, sock, lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 30 << 20}})
				dcancel()
				if err != nil {
					if !strings.Contains(err.Error(), "total_region_bytes") {
						t.Fatalf("region flood: %v", err)
					}
					refused++
					continue
				}
				// Touch the whole arena, as a hostile client would.
				a := c.Region().Arena()
				for j := 0; j < len(a); j += 4096 {
					a[j] = 1
				}
				cs = append(cs, c)
			}
			if refused == 0 {
				t.Fatal("no region refused past total_region_bytes")
			}
		}},
		{"unfinished handshakes", func(t *testing.T) {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := 0; i < 300; i++ {
				c, err := net.Dial("unix", sock)
				if err != nil {
					break
				}
				conns = append(conns, c)
			}
		}},
		{"re-attach with unsafe fds", func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "region")
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(1 << 20)
			var p [2]int
			syscall.Pipe(p[:])
			mfd, _ := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
			unix.Ftruncate(mfd, 1<<20)
			for _, fd := range []int{int(f.Fd()), p[0], mfd} {
				nc, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				c := nc.(*net.UnixConn)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				shm.SendMsgFD(c, (&shm.Hello{Kind: shm.HelloReattach}).Encode(), fd)
				msg, rfd, err := shm.RecvMsgFD(c)
				if rfd >= 0 {
					unix.Close(rfd)
				}
				if err == nil {
					if rep, err := shm.DecodeReply(msg); err == nil && rep.Status == shm.StatusOK {
						t.Fatal("laked accepted an unsafe re-attach fd")
					}
				}
				unix.Ftruncate(fd, 0)
				c.Close()
			}
			f.Close()
			syscall.Close(p[0])
			syscall.Close(p[1])
			unix.Close(mfd)
			time.Sleep(300 * time.Millisecond) // a SIGBUS would strike now
		}},
		{"predict flood", func(t *testing.T) {
			const items = 65536 // 2 MiB in, 512 KiB out per predict
			var wg sync.WaitGroup
			var busy, ok atomic.Int64
			for k := 0; k < 6; k++ {
				dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
				c, err := lakelib.Dial(dctx, sock, lakelib.Options{Region: shm.Config{SQEntries: 64, CQEntries: 64, ArenaSize: 4 << 20}})
				dcancel()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				in, err := c.AllocHost(8 * 4 * items)
				if err != nil {
					t.Fatal(err)
				}
				out, err := c.AllocHost(2 * 4 * items)
				if err != nil {
					t.Fatal(err)
				}
				es, cs := make([]shm.SQE, 64), make([]shm.CQE, 64)
				for i := range es {
					es[i] = shm.SQE{Opcode: shm.OpPredict, Args: [shm.NumArgs]uint64{2, items, in.Offset(), 8 * 4 * items, out.Offset(), 2 * 4 * items}}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := 0; r < 3; r++ {
						if err := c.Batch(ctx, es, cs); err != nil {
							t.Error(err)
							return
						}
						for _, cq := range cs {
							switch cq.Status {
							case shm.StatusOK:
								ok.Add(1)
							case shm.StatusBusy:
								busy.Add(1)
							default:
								t.Errorf("flooding predict: %v", cq.Status)
							}
						}
					}
				}()
			}
			wg.Wait()
			t.Logf("predict flood: %d ran, %d refused busy", ok.Load(), busy.Load())
			if busy.Load() == 0 {
				t.Fatal("no predict refused past the queued-bytes budgets")
			}
		}},
		{"device memory", func(t *testing.T) {
			var cs []*lakelib.Client
			defer func() {
				for _, c := range cs {
					c.Close()
				}
			}()
			chunk := make([]byte, 4<<20)
			for i := range chunk {
				chunk[i] = byte(i)
			}
			oom := 0
			for k := 0; k < 4; k++ {
				c := dial(t, sock)
				cs = append(cs, c)
				x, err := c.CtxCreate(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for j := 0; j < 8; j++ {
					p, err := x.MemAlloc(ctx, 16<<20)
					if err != nil {
						oom++
						continue
					}
					for off := uint64(0); off < 16<<20; off += uint64(len(chunk)) {
						if err := x.MemcpyHtoD(ctx, p+lakelib.DevPtr(off), chunk); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if oom == 0 {
				t.Fatal("no allocation refused past the device budgets")
			}
		}},
		{"runaway kernels of a departing client", func(t *testing.T) {
			c := dial(t, sock)
			x, err := c.CtxCreate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// vector_add over 2 Mi floats, 1000 times on each of two
			// streams: seconds of work, left queued by a client that leaves.
			// Each stream writes its own output: two streams writing one
			// buffer is the client's own data race (unordered writes, as
			// on a GPU), which a -race build of laked would report.
			n := uint64(2 << 20)
			var ptr [4]lakelib.DevPtr
			for i := range ptr {
				// The previous attack's device memory is freed as its
				// sessions end: wait for it.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if ptr[i], err = x.MemAlloc(ctx, 4*n); err == nil || time.Now().After(deadline) {
						break
					}
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			mod, err := x.ModuleLoadData(ctx, []byte("lake_builtin"))
			if err != nil {
				t.Fatal(err)
			}
			fn, err := x.ModuleGetFunction(ctx, mod, "vector_add")
			if err != nil {
				t.Fatal(err)
			}
			for s := 0; s < 2; s++ {
				st, err := x.StreamCreate(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 1000; i++ {
					if err := x.LaunchKernel(ctx, fn, lakelib.Dim3{X: 1, Y: 1, Z: 1}, lakelib.Dim3{X: 1, Y: 1, Z: 1}, 0, st, uint64(ptr[0]), uint64(ptr[1]), uint64(ptr[2+s]), n); err != nil {
						t.Fatal(err)
					}
				}
			}
			time.Sleep(100 * time.Millisecond) // both streams are running
			c.Close()
			// laked goes quiet soon after: some half second within the
			// next 5 s uses under 100 ms of CPU (asserted without -race).
			// A liveness check on a shared machine;
			// TestDepartedClientsKernelsStop in laked is the exact one.
			quiet := false
			for deadline := time.Now().Add(5 * time.Second); !quiet && time.Now().Before(deadline); {
				c0 := cpuOf(t, pid)
				time.Sleep(500 * time.Millisecond)
				quiet = cpuOf(t, pid)-c0 < 100*time.Millisecond
			}
			switch {
			case quiet:
			case raceBuild:
				// Under -race on a loaded machine laked's teardown and GC
				// can keep it busy this long; asserted without -race.
				t.Log("laked was still busy 5 s after the client left (race build: not asserted)")
			default:
				t.Fatal("laked kept using CPU for 5 s after the client left: its kernels kept running")
			}
		}},
		{"doorbell storm", func(t *testing.T) {
			// Four clients ring and rewrite their submission doorbells
			// for a second without publishing anything: laked backs off
			// (laked TestDoorbellStormIsBackedOff) instead of spinning a
			// session goroutine on each; it uses under 300 ms of CPU in
			// that second (asserted without -race). Measured: 60-70 ms
			// (20 ms with the four clients idle), 570 ms without the
			// backoff.
			var cs []*lakelib.Client
			defer func() {
				for _, c := range cs {
					c.Close()
				}
			}()
			for i := 0; i < 4; i++ {
				dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
				c, err := lakelib.Dial(dctx, sock, lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 64 << 10}})
				dcancel()
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			time.Sleep(50 * time.Millisecond) // laked's poller naps: the sessions' goroutines wait on the doorbells
			c0 := cpuOf(t, pid)
			end := time.Now().Add(time.Second)
			var wg sync.WaitGroup
			for _, c := range cs {
				wg.Add(1)
				go func(b shm.Bell) {
					defer wg.Done()
					for time.Now().Before(end) {
						_ = b.Kick()
					}
				}(c.Region().SQ().Bell)
			}
			wg.Wait()
			used := cpuOf(t, pid) - c0
			t.Logf("laked used %v of CPU during a 1 s doorbell storm from 4 clients", used)
			if !raceBuild && used > 300*time.Millisecond {
				t.Fatalf("laked used %v of CPU during a 1 s doorbell storm: it spins on clients' doorbells", used)
			}
		}},
		{"admin loader on /dev/zero and a FIFO", func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			ac := admin.NewClient(adminSock, 10*time.Second)
			for _, p := range []string{"/dev/zero", fifo} {
				actx, acancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := ac.LoadModel(actx, 9, admin.KindMLP, p, false)
				acancel()
				if err == nil || !strings.Contains(err.Error(), "not a regular file") {
					t.Fatalf("admin load of %s: %v", p, err)
				}
			}
		}},
	}
	peakAfter := map[string]uint64{}
	for r := 0; r < rounds; r++ {
		for _, a := range attacks {
			t.Run(a.name, a.run)
			healthy(a.name)
			peakAfter[a.name] = max(peakAfter[a.name], w.peak.Load())
		}
	}
	peak := w.Stop()
	t.Logf("laked RSS: %d MiB at start, peak %d MiB over %d round(s) of %d attacks; budget %d MiB (race build: %v)",
		base>>20, peak>>20, rounds, len(attacks), attackBudget()>>20, raceBuild)
	if !raceBuild && peak > attackBudget() {
		t.Fatalf("laked RSS peaked at %d MiB, over the %d MiB budget", peak>>20, attackBudget()>>20)
	}
	if cg != nil {
		cgPeak, err := cg.peak()
		if err != nil {
			t.Fatalf("cgroup peak: %v", err)
		}
		hits, err := cg.limitHits()
		if err != nil {
			t.Fatalf("cgroup limit hits: %v", err)
		}
		t.Logf("laked's memory cgroup: peak %d MiB, limit %d MiB, limit reached %d times", cgPeak>>20, cgLimit>>20, hits)
		if !raceBuild && hits > 0 {
			t.Fatalf("laked's cgroup reached its %d MiB limit (the budget) %d times", cgLimit>>20, hits)
		}
	}
}
