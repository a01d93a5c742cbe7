package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/lakedtest"
	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// TestMain lets the test binary act as laked: the process tests re-run
// it with LAKE_TEST_RUN_LAKED=1 so that laked really is a separate
// process, without a separate build step.
func TestMain(m *testing.M) {
	if os.Getenv("LAKE_TEST_RUN_LAKED") == "1" {
		if err := run(os.Args[1:]); err != nil {
			os.Stderr.WriteString("laked: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startLaked runs laked as a child process on a temp socket and waits
// until it accepts clients.
func startLaked(t *testing.T, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	return startLakedOn(t, filepath.Join(t.TempDir(), "laked.sock"), extra...)
}

// startLakedOn is startLaked on a given socket path.
func startLakedOn(t *testing.T, sock string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "laked.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--config", empty, "--socket", sock, "--log-level", "warn", "--linnos-weights", "none",
		"--admin-socket", "", "--metrics-addr", ""}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LAKE_TEST_RUN_LAKED=1")
	watchRaces(t, cmd) // kills and reaps cmd when the test ends
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{})
		cancel()
		if err == nil {
			c.Close()
			return cmd, sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("laked did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dial(t *testing.T, sock string) *lakelib.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := lakelib.Dial(ctx, sock, lakelib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTwoClientsAgainstLakedProcess is the core acceptance test: laked is
// a separate process; two clients at once run the vector_add sequence and
// batched predicts and check the results.
func TestTwoClientsAgainstLakedProcess(t *testing.T) {
	_, sock := startLaked(t)
	lakedtest.TwoClients(t, sock)
}

// TestKillLakedMidFlight kills laked with SIGKILL while clients have
// calls in flight: every call returns (a result or ErrDaemonGone), none
// hangs, and later calls fail fast.
func TestKillLakedMidFlight(t *testing.T) {
	cmd, sock := startLaked(t)
	c := dial(t, sock)
	var ok, gone, other atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := make([]byte, 32*16)
			out := make([]byte, 8*16)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := c.Predict(ctx, modelDemoMLP, 16, in, out)
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, lakelib.ErrDaemonGone):
					gone.Add(1)
					return
				default:
					other.Add(1)
					t.Errorf("unexpected error: %v", err)
					return
				}
			}
		}()
	}
	for ok.Load() < 200 {
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(stop)
		t.Fatal("calls still hanging 10 s after laked was killed")
	}
	t.Logf("before the kill %d calls completed; after it %d failed with ErrDaemonGone", ok.Load(), gone.Load())
	if gone.Load() != 6 {
		t.Fatalf("%d of 6 callers saw ErrDaemonGone (others: %d)", gone.Load(), other.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Nop(ctx); !errors.Is(err, lakelib.ErrDaemonGone) {
		t.Fatalf("call after death: %v", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatalf("call after death took %v: should fail fast", time.Since(start))
	}
}

// TestSIGTERMDrains stops laked with SIGTERM under load: every call in
// flight completes or fails with an error, and laked exits 0.
func TestSIGTERMDrains(t *testing.T) {
	cmd, sock := startLaked(t)
	c := dial(t, sock)
	var wg sync.WaitGroup
	var okN atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := c.Predict(ctx, modelDemoMLP, 4, make([]byte, 128), make([]byte, 32))
				cancel()
				if err == nil {
					okN.Add(1)
					continue
				}
				if !errors.Is(err, lakelib.ErrDaemonGone) && !errors.Is(err, lakelib.ErrStatus(shm.StatusShutdown)) {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
		}()
	}
	for okN.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("laked exit after SIGTERM: %v", err)
	}
}

// TestKillAndRestartUnderLoad kills laked with SIGKILL while three
// clients (three goroutines each) have predicts in flight, starts a new
// laked on the same socket, and checks that every call returned exactly
// once: completed with the right answer, or failed with ErrLostInRestart
// (the old laked had taken it and died), never lost, never answered twice.
func TestKillAndRestartUnderLoad(t *testing.T) {
	cmd, sock := startLaked(t)
	ref, err := kernels.ParseMLP(laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	var issued, returned, ok, lost, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var clients []*lakelib.Client
	for k := 0; k < 3; k++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{Reconnect: true, ReconnectTimeout: 20 * time.Second})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(k, g int) {
				defer wg.Done()
				in := make([]float32, 8*4)
				out := make([]byte, 8*4)
				want := make([]float32, 2*4)
				for it := 0; ; it++ {
					select {
					case <-stop:
						return
					default:
					}
					for i := range in {
						in[i] = float32((k*31+g*7+it+i)%13) * 0.5
					}
					issued.Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err := c.Predict(ctx, modelDemoMLP, 4, laked.Float32sToBytes(in), out)
					cancel()
					returned.Add(1)
					switch {
					case err == nil:
						_ = ref.Forward(in, want, 4)
						for i, v := range laked.BytesToFloat32s(out) {
							if v != want[i] {
								t.Errorf("client %d: wrong answer after %d calls", k, it)
								return
							}
						}
						ok.Add(1)
					case errors.Is(err, lakelib.ErrLostInRestart):
						lost.Add(1)
					default:
						other.Add(1)
						t.Errorf("client %d: %v", k, err)
						return
					}
				}
			}(k, g)
		}
	}
	waitFor := func(n int64, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for ok.Load() < n {
			if time.Now().After(deadline) {
				close(stop)
				t.Fatalf("%s: only %d calls completed", what, ok.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(300, "before the kill")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	beforeRestart := ok.Load()
	startLakedOn(t, sock)
	waitFor(beforeRestart+300, "after the restart")
	close(stop)
	wg.Wait()
	var strays, restarts uint64
	for _, c := range clients {
		strays += c.Strays()
		restarts += c.Restarts()
	}
	fmt.Printf("kill -9 and restart under load: %d calls issued, %d returned: %d completed, %d failed as lost in the restart, %d other errors; %d stray completions; %d client re-attaches\n",
		issued.Load(), returned.Load(), ok.Load(), lost.Load(), other.Load(), strays, restarts)
	if issued.Load() != returned.Load() || ok.Load()+lost.Load() != issued.Load() || other.Load() != 0 {
		t.Fatal("some call was not accounted for exactly once")
	}
	if strays != 0 {
		t.Fatalf("%d completions matched no call (a duplicate or a stale tag)", strays)
	}
	if restarts != 3 {
		t.Fatalf("%d re-attaches, want one per client", restarts)
	}
}

// TestNotifyReadyUnderSupervisor runs laked the way systemd does, with a
// NOTIFY_SOCKET, and checks that it says READY=1 once it serves clients,
// pings the watchdog, and says STOPPING=1 on SIGTERM.
func TestNotifyReadyUnderSupervisor(t *testing.T) {
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sock := filepath.Join(dir, "laked.sock")
	empty := filepath.Join(dir, "laked.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0") // find a free loopback port
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := pl.Addr().String()
	pl.Close()
	cmd := exec.Command(os.Args[0], "--config", empty, "--socket", sock, "--log-level", "warn", "--linnos-weights", "none",
		"--admin-socket", filepath.Join(dir, "admin.sock"), "--metrics-addr", metricsAddr)
	cmd.Env = append(os.Environ(), "LAKE_TEST_RUN_LAKED=1", "NOTIFY_SOCKET="+notify, "WATCHDOG_USEC=200000")
	watchRaces(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	seen := map[string]bool{}
	read := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		deadline := time.Now().Add(20 * time.Second)
		for !seen[want] {
			_ = conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v (seen %v)", want, err, seen)
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				seen[line] = true
			}
		}
	}
	read("READY=1")
	// READY means serving: a client gets an answer at once.
	c := dial(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Nop(ctx); err != nil {
		t.Fatalf("not serving after READY=1: %v", err)
	}
	// The metrics endpoint and the admin socket are up too.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics endpoint: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "lake_submissions_total") {
		t.Fatalf("metrics endpoint without lake_submissions_total:\n%.400s", body)
	}
	read("WATCHDOG=1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	read("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("laked exit: %v", err)
	}
}
