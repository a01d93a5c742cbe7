package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeManager is a NOTIFY_SOCKET datagram listener standing in for systemd.
type fakeManager struct {
	t    *testing.T
	conn *net.UnixConn
}

func listen(t *testing.T, name string) *fakeManager {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(EnvSocket, name)
	return &fakeManager{t: t, conn: conn}
}

func newFakeManager(t *testing.T) *fakeManager {
	return listen(t, filepath.Join(t.TempDir(), "notify.sock"))
}

// recv returns the next datagram, failing the test after timeout.
func (m *fakeManager) recv(timeout time.Duration) (string, error) {
	buf := make([]byte, 8192)
	if err := m.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	n, err := m.conn.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func (m *fakeManager) expect(want string) {
	m.t.Helper()
	got, err := m.recv(5 * time.Second)
	if err != nil {
		m.t.Fatalf("waiting for %q: %v", want, err)
	}
	if got != want {
		m.t.Fatalf("got %q, want %q", got, want)
	}
}

func (m *fakeManager) expectNothing(within time.Duration) {
	m.t.Helper()
	if got, err := m.recv(within); err == nil {
		m.t.Fatalf("unexpected notification %q", got)
	}
}

func TestReadyStoppingStatusWatchdog(t *testing.T) {
	m := newFakeManager(t)
	for _, tc := range []struct {
		send func() error
		want string
	}{
		{Ready, "READY=1"},
		{Watchdog, "WATCHDOG=1"},
		{func() error { return Status("serving 3 models") }, "STATUS=serving 3 models"},
		{Stopping, "STOPPING=1"},
		{func() error { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("send %q: %v", tc.want, err)
		}
		m.expect(tc.want)
	}
}

func TestReloadingCarriesMonotonicTimestamp(t *testing.T) {
	m := newFakeManager(t)
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	got, err := m.recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("reloading message %q", got)
	}
	if _, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil {
		t.Fatalf("timestamp in %q: %v", got, err)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@lake-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	m := listen(t, name)
	if err := Ready(); err != nil {
		t.Fatalf("notify abstract %s: %v", name, err)
	}
	m.expect("READY=1")
}

func TestNoSocketIsNoop(t *testing.T) {
	t.Setenv(EnvSocket, "")
	os.Unsetenv(EnvSocket)
	if err := Ready(); err != nil {
		t.Fatalf("Ready without %s: %v", EnvSocket, err)
	}
	if err := Notify("WATCHDOG=1"); err != nil {
		t.Fatal(err)
	}
}

func TestBadSocketAndState(t *testing.T) {
	for _, bad := range []string{"relative/path", "@", "vsock:2:1234", "/" + strings.Repeat("x", 200)} {
		t.Setenv(EnvSocket, bad)
		if err := Ready(); !errors.Is(err, ErrBadSocket) {
			t.Errorf("NOTIFY_SOCKET=%q: err %v, want ErrBadSocket", bad, err)
		}
	}
	// A real environment cannot hold a NUL; a substituted lookup can.
	lookupEnv = func(string) (string, bool) { return "/tmp/a\x00b", true }
	err := Ready()
	lookupEnv = os.LookupEnv
	if !errors.Is(err, ErrBadSocket) {
		t.Errorf("NUL in NOTIFY_SOCKET: err %v, want ErrBadSocket", err)
	}
	// A well-formed path nobody listens on is a send error, not a no-op.
	t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "nobody.sock"))
	if err := Ready(); err == nil {
		t.Error("notify to a missing socket succeeded")
	}
	newFakeManager(t)
	for _, bad := range []string{"", "A=\x00", strings.Repeat("x", maxStateBytes+1)} {
		if err := Notify(bad); !errors.Is(err, ErrBadState) {
			t.Errorf("Notify(%d bytes): err %v, want ErrBadState", len(bad), err)
		}
	}
	if err := Status("two\nlines"); !errors.Is(err, ErrBadState) {
		t.Errorf("Status with newline: %v", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	cases := []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"10000000", "", 10 * time.Second, true},
		{"10000000", self, 10 * time.Second, true},
		{"10000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"0", "", 0, false},
		{"-5", "", 0, false},
		{"ten", "", 0, false},
		{"99999999999999999999", "", 0, false},
		{"10000000", "notapid", 0, false},
		{"10000000", "0", 0, false},
	}
	for _, tc := range cases {
		t.Setenv(EnvWatchdogUsec, tc.usec)
		t.Setenv(EnvWatchdogPID, tc.pid)
		d, ok := WatchdogInterval()
		if d != tc.want || ok != tc.ok {
			t.Errorf("USEC=%q PID=%q: got %v %v, want %v %v", tc.usec, tc.pid, d, ok, tc.want, tc.ok)
		}
	}
}

func TestRunWatchdogPingsWhileHealthy(t *testing.T) {
	m := newFakeManager(t)
	t.Setenv(EnvWatchdogUsec, "40000") // 40 ms: pings every 20 ms
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	var healthy = make(chan bool, 1)
	healthy <- true
	state := true
	check := func() bool {
		select {
		case state = <-healthy:
		default:
		}
		return state
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWatchdog(ctx, check) }()
	for i := 0; i < 3; i++ {
		m.expect("WATCHDOG=1")
	}
	healthy <- false
	// Drain pings sent before the loop saw the change, then expect silence.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := m.recv(200 * time.Millisecond); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("watchdog kept pinging while unhealthy")
		}
	}
	healthy <- true
	m.expect("WATCHDOG=1")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunWatchdog: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunWatchdog did not stop with its context")
	}
}

func TestRunWatchdogDisabled(t *testing.T) {
	m := newFakeManager(t)
	t.Setenv(EnvWatchdogUsec, "")
	if err := RunWatchdog(context.Background(), func() bool { return true }); err != nil {
		t.Fatalf("disabled watchdog: %v", err)
	}
	// Another process's watchdog: not ours to feed.
	t.Setenv(EnvWatchdogUsec, "20000")
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getpid()+1))
	if err := RunWatchdog(context.Background(), func() bool { return true }); err != nil {
		t.Fatalf("foreign watchdog: %v", err)
	}
	m.expectNothing(100 * time.Millisecond)
	t.Setenv(EnvWatchdogPID, "")
	t.Setenv(EnvWatchdogUsec, "garbage")
	if err := RunWatchdog(context.Background(), nil); err == nil {
		t.Fatal("bad WATCHDOG_USEC accepted")
	}
}

func FuzzWatchdogEnv(f *testing.F) {
	f.Add("10000000", "")
	f.Add("1", "1")
	f.Add("-1", "x")
	f.Fuzz(func(t *testing.T, usec, pid string) {
		if strings.IndexByte(usec, 0) >= 0 || strings.IndexByte(pid, 0) >= 0 {
			return // cannot be in an environment
		}
		t.Setenv(EnvWatchdogUsec, usec)
		t.Setenv(EnvWatchdogPID, pid)
		d, err := watchdogInterval(os.Getpid())
		if err == nil && (d < 0 || d > maxWatchdog) {
			t.Fatalf("interval %v out of range", d)
		}
	})
}
