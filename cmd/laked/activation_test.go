package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lakeos/lake/internal/unitfile"
	"github.com/lakeos/lake/laked/admin"
	"github.com/lakeos/lake/lakelib"
)

// fakeSupervisor stands in for systemd's laked.socket and
// laked-admin.socket: it owns the two listening sockets and passes them to
// each laked it starts, as descriptors 3 and 4 with LISTEN_PID set to
// laked's pid (a shell sets it before exec, as systemd does after fork).
type fakeSupervisor struct {
	t                  *testing.T
	dir, sock, adminSk string
	files              []*os.File
}

func newFakeSupervisor(t *testing.T) *fakeSupervisor {
	t.Helper()
	dir := t.TempDir()
	s := &fakeSupervisor{t: t, dir: dir, sock: filepath.Join(dir, "laked.sock"), adminSk: filepath.Join(dir, "laked-admin.sock")}
	for _, p := range []string{s.sock, s.adminSk} {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close(); l.Close() })
		s.files = append(s.files, f)
	}
	return s
}

// start runs laked with the passed sockets and names; the config names
// the same paths, as deploy/laked.yaml and the socket units do.
func (s *fakeSupervisor) start(names string) (*exec.Cmd, *bytes.Buffer) {
	s.t.Helper()
	empty := filepath.Join(s.t.TempDir(), "laked.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		s.t.Fatal(err)
	}
	args := []string{"-c", `export LISTEN_PID=$$; exec "$0" "$@"`, os.Args[0],
		"--config", empty, "--socket", s.sock, "--admin-socket", s.adminSk, "--device", "",
		"--log-level", "info", "--log-format", "json", "--linnos-weights", "none", "--metrics-addr", ""}
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = append(os.Environ(), "LAKE_TEST_RUN_LAKED=1", "LISTEN_FDS=2", "LISTEN_FDNAMES="+names)
	cmd.ExtraFiles = s.files
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if strings.Contains(log.String(), raceReport) {
			s.t.Errorf("laked reported a data race:\n%s", log.String())
		}
	})
	return cmd, &log
}

// TestSocketActivation runs laked under the fake supervisor: it serves
// clients and the admin API on the passed sockets, leaves them in place
// when it stops, and a client that connects while laked is down waits and
// is served by the next laked instead of failing.
func TestSocketActivation(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh to play the supervisor's fork-and-exec")
	}
	s := newFakeSupervisor(t)
	cmd, log := s.start("client:admin")
	c := dial(t, s.sock) // no wait for laked: the socket listens from the start
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Nop(ctx); err != nil {
		t.Fatal(err)
	}
	ac := admin.NewClient(s.adminSk, 5*time.Second)
	defer ac.Close()
	st, err := ac.Status(ctx)
	if err != nil {
		t.Fatalf("admin API on the passed socket: %v", err)
	}
	if len(st.Sessions) < 1 {
		t.Fatalf("status shows %d sessions, want the client attached", len(st.Sessions))
	}
	c.Close()

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("laked exit: %v\n%s", err, log)
	}
	if !strings.Contains(log.String(), "listening on a socket the service manager passed") {
		t.Fatalf("laked did not report the passed sockets:\n%s", log)
	}
	for _, p := range []string{s.sock, s.adminSk} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("%s after laked stopped: %v (laked must leave the supervisor's sockets)", p, err)
		}
	}

	// laked is down; a client connects and waits in the backlog.
	type result struct {
		c   *lakelib.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := lakelib.Dial(ctx, s.sock, lakelib.Options{})
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("dial returned while no laked ran: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	s.start("client:admin")
	r := <-done
	if r.err != nil {
		t.Fatalf("a client that connected during the restart failed: %v", r.err)
	}
	defer r.c.Close()
	if err := r.c.Nop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSocketActivationRejectsUnknownNames checks that laked refuses to
// start when the units pass a socket it has no role for.
func TestSocketActivationRejectsUnknownNames(t *testing.T) {
	s := newFakeSupervisor(t)
	cmd, log := s.start("client:metrics")
	err := cmd.Wait()
	if err == nil || !strings.Contains(log.String(), `"metrics"`) {
		t.Fatalf("laked with an unknown passed socket: %v\n%s", err, log)
	}
	// Same role twice.
	cmd, log = s.start("client:laked.socket")
	if err := cmd.Wait(); err == nil || !strings.Contains(log.String(), "two sockets for client") {
		t.Fatalf("laked with two client sockets: %v\n%s", err, log)
	}
}

// TestSocketUnitsMatchLaked checks deploy/*.socket against laked: each
// passes a socket under a name laked takes, at the path of the config key
// for that role, mode 0600, to laked.service, which lists them in
// Sockets=.
func TestSocketUnitsMatchLaked(t *testing.T) {
	defaults := map[string]any{}
	for _, k := range keys {
		defaults[k.name] = k.def
	}
	keyOf := map[string]string{"client": "socket", "admin": "admin_socket"}
	svc, err := unitfile.Parse("../../deploy/laked.service")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, v := range svc["Service"]["Sockets"] {
		for _, s := range strings.Fields(v) {
			listed[s] = true
		}
	}
	roles := map[string]string{}
	for _, unit := range []string{"laked.socket", "laked-admin.socket"} {
		u, err := unitfile.Parse("../../deploy/" + unit)
		if err != nil {
			t.Fatal(err)
		}
		name, _ := u.Get("Socket", "FileDescriptorName")
		role := passedNames[name]
		if role == "" {
			t.Fatalf("%s: FileDescriptorName=%q is not a name laked takes", unit, name)
		}
		if other, dup := roles[role]; dup {
			t.Fatalf("%s and %s both pass the %s socket", other, unit, role)
		}
		roles[role] = unit
		if path, _ := u.Get("Socket", "ListenStream"); path != defaults[keyOf[role]] {
			t.Errorf("%s: ListenStream=%s, but the default %s is %v", unit, path, keyOf[role], defaults[keyOf[role]])
		}
		for k, want := range map[string]string{"SocketMode": "0600", "SocketUser": "root", "Service": "laked.service"} {
			if got, _ := u.Get("Socket", k); got != want {
				t.Errorf("%s: %s=%q, want %q", unit, k, got, want)
			}
		}
		if !listed[unit] {
			t.Errorf("laked.service does not list %s in Sockets=", unit)
		}
	}
}
