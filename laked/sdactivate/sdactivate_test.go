//go:build linux

package sdactivate

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testFirst is where the tests place "passed" descriptors: far above
// anything the test binary has open, so that fds 3, 4, ... stay the
// runtime's.
const testFirst = 500

// pass makes fds the test's passed sockets: fds[i] is duplicated to
// testFirst+i and the original closed, as a service manager leaves them.
func pass(t *testing.T, fds ...int) {
	t.Helper()
	for i, fd := range fds {
		if err := unix.Dup2(fd, testFirst+i); err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		t.Cleanup(func() { unix.Close(testFirst + i) })
	}
}

// unixListenerFD returns a listening unix socket at a fresh path.
func unixListenerFD(t *testing.T) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	return fd, path
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func me() string { return strconv.Itoa(os.Getpid()) }

func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// TestTwoNamedSockets takes two passed sockets by name and accepts a
// connection on each.
func TestTwoNamedSockets(t *testing.T) {
	a, pathA := unixListenerFD(t)
	b, pathB := unixListenerFD(t)
	pass(t, a, b)
	ls, err := listeners(env(map[string]string{EnvPID: me(), EnvFDs: "2", EnvNames: "client:admin"}), os.Getpid(), testFirst)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Name != "client" || ls[1].Name != "admin" {
		t.Fatalf("got %+v", ls)
	}
	for i, path := range []string{pathA, pathB} {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ls[i].SetDeadline(time.Now().Add(5 * time.Second))
		s, err := ls[i].Accept()
		if err != nil {
			t.Fatalf("accept on %s: %v", ls[i].Name, err)
		}
		s.Close()
		c.Close()
		if err := ls[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The listeners own the sockets: the passed descriptors are closed.
	if isOpen(testFirst) || isOpen(testFirst+1) {
		t.Fatal("passed descriptors left open beside the listeners")
	}
	// Closing a passed listener leaves the socket file to its creator.
	if _, err := os.Stat(pathA); err != nil {
		t.Fatalf("closing removed the socket file: %v", err)
	}
}

// TestNotForUs checks that without LISTEN_PID, or with another
// process's, nothing is taken.
func TestNotForUs(t *testing.T) {
	a, _ := unixListenerFD(t)
	pass(t, a)
	for _, vars := range []map[string]string{
		{EnvFDs: "1"},
		{EnvPID: strconv.Itoa(os.Getpid() + 1), EnvFDs: "1"},
	} {
		ls, err := listeners(env(vars), os.Getpid(), testFirst)
		if err != nil || ls != nil {
			t.Fatalf("%v: got %v, %v", vars, ls, err)
		}
	}
	if !isOpen(testFirst) {
		t.Fatal("a socket passed to another process was closed")
	}
}

// TestRejects checks malformed environments and descriptors that are not
// listening unix stream sockets; a rejected descriptor stays open, and
// sockets taken before the bad one are closed.
func TestRejects(t *testing.T) {
	regular := func(t *testing.T) int {
		f, err := os.CreateTemp(t.TempDir(), "f")
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return fd
	}
	sock := func(domain, typ int, listen bool) func(t *testing.T) int {
		return func(t *testing.T) int {
			fd, err := unix.Socket(domain, typ, 0)
			if err != nil {
				t.Fatal(err)
			}
			if domain == unix.AF_INET {
				if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
					t.Fatal(err)
				}
			}
			if listen {
				if err := unix.Listen(fd, 1); err != nil {
					t.Fatal(err)
				}
			}
			return fd
		}
	}
	cases := []struct {
		name string
		vars map[string]string
		fd   func(t *testing.T) int
		want string
	}{
		{"bad pid", map[string]string{EnvPID: "init", EnvFDs: "1"}, nil, EnvPID},
		{"zero pid", map[string]string{EnvPID: "0", EnvFDs: "1"}, nil, EnvPID},
		{"bad count", map[string]string{EnvFDs: "two"}, nil, EnvFDs},
		{"negative count", map[string]string{EnvFDs: "-1"}, nil, EnvFDs},
		{"huge count", map[string]string{EnvFDs: "100000"}, nil, EnvFDs},
		{"missing count", map[string]string{}, nil, EnvFDs},
		{"names mismatch", map[string]string{EnvFDs: "1", EnvNames: "client:admin"}, nil, EnvNames},
		{"closed fd", map[string]string{EnvFDs: "1"}, nil, "descriptor 500"},
		{"regular file", map[string]string{EnvFDs: "1"}, regular, "not a socket"},
		{"datagram", map[string]string{EnvFDs: "1"}, sock(unix.AF_UNIX, unix.SOCK_DGRAM, false), "not a stream socket"},
		{"tcp", map[string]string{EnvFDs: "1"}, sock(unix.AF_INET, unix.SOCK_STREAM, true), "not a unix socket"},
		{"not listening", map[string]string{EnvFDs: "1"}, sock(unix.AF_UNIX, unix.SOCK_STREAM, false), "not listening"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.vars[EnvPID]; !ok {
				tc.vars[EnvPID] = me()
			}
			if tc.fd != nil {
				pass(t, tc.fd(t))
			}
			ls, err := listeners(env(tc.vars), os.Getpid(), testFirst)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want an error naming %q", ls, err, tc.want)
			}
			if tc.fd != nil && !isOpen(testFirst) {
				t.Fatal("a rejected descriptor was closed")
			}
		})
	}

	t.Run("good then bad", func(t *testing.T) {
		a, path := unixListenerFD(t)
		pass(t, a, regular(t))
		if _, err := listeners(env(map[string]string{EnvPID: me(), EnvFDs: "2"}), os.Getpid(), testFirst); err == nil {
			t.Fatal("accepted a regular file")
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			t.Fatal("the socket taken before the bad one is still listening")
		}
		if !isOpen(testFirst + 1) {
			t.Fatal("the rejected descriptor was closed")
		}
	})
}

// TestListenersUnsetsEnvironment checks that the public entry point
// clears LISTEN_* so a child never inherits them.
func TestListenersUnsetsEnvironment(t *testing.T) {
	t.Setenv(EnvPID, strconv.Itoa(os.Getpid()+1))
	t.Setenv(EnvFDs, "1")
	t.Setenv(EnvNames, "client")
	if ls, err := Listeners(); err != nil || ls != nil {
		t.Fatalf("got %v, %v", ls, err)
	}
	for _, k := range []string{EnvPID, EnvFDs, EnvNames} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s still set", k)
		}
	}
}

// FuzzListeners feeds arbitrary environments: never a panic, and with
// nothing open at the descriptors, never a listener.
func FuzzListeners(f *testing.F) {
	f.Add("1", "2", "client:admin")
	f.Add("1", "64", "")
	f.Add("x", "-3", ":::")
	f.Add("1", "1", "a:b")
	f.Fuzz(func(t *testing.T, pid, n, names string) {
		if pid == "1" {
			pid = me()
		}
		ls, err := listeners(env(map[string]string{EnvPID: pid, EnvFDs: n, EnvNames: names}), os.Getpid(), 4000)
		if len(ls) != 0 {
			t.Fatalf("took %d listeners from closed descriptors (err %v)", len(ls), err)
		}
	})
}
