//go:build linux

package sdactivate

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment variables of the protocol.
const (
	EnvPID   = "LISTEN_PID"
	EnvFDs   = "LISTEN_FDS"
	EnvNames = "LISTEN_FDNAMES"
)

// FirstFD is the first passed descriptor (SD_LISTEN_FDS_START).
const FirstFD = 3

// MaxFDs bounds $LISTEN_FDS; laked expects two.
const MaxFDs = 64

// Listener is one passed socket with its name.
type Listener struct {
	Name string
	*net.UnixListener
}

// Listeners returns the listening unix sockets passed to this process, in
// descriptor order, and unsets the LISTEN_* variables so that no child
// inherits them. It returns none, and no error, when no sockets were
// passed to this process. On error the listeners already taken are closed
// and the returned slice is nil.
func Listeners() ([]Listener, error) {
	defer func() {
		os.Unsetenv(EnvPID)
		os.Unsetenv(EnvFDs)
		os.Unsetenv(EnvNames)
	}()
	return listeners(os.Getenv, os.Getpid(), FirstFD)
}

// listeners is Listeners reading the environment through getenv, for the
// process pid, with the descriptors starting at first.
func listeners(getenv func(string) string, pid, first int) ([]Listener, error) {
	pidStr := getenv(EnvPID)
	if pidStr == "" {
		return nil, nil
	}
	p, err := strconv.Atoi(pidStr)
	if err != nil || p <= 0 {
		return nil, fmt.Errorf("socket activation: %s=%q is not a pid", EnvPID, pidStr)
	}
	if p != pid {
		return nil, nil // meant for another process (we were exec'd by it)
	}
	nStr := getenv(EnvFDs)
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 0 || n > MaxFDs {
		return nil, fmt.Errorf("socket activation: %s=%q: want a count in 0..%d", EnvFDs, nStr, MaxFDs)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = "unknown" // what sd_listen_fds_with_names reports without names
	}
	if s := getenv(EnvNames); s != "" {
		given := strings.Split(s, ":")
		if len(given) != n {
			return nil, fmt.Errorf("socket activation: %s names %d sockets, %s=%d", EnvNames, len(given), EnvFDs, n)
		}
		copy(names, given)
	}
	var out []Listener
	for i := range n {
		fd := first + i
		l, err := take(fd, names[i])
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, err
		}
		out = append(out, Listener{Name: names[i], UnixListener: l})
	}
	return out, nil
}

// take checks that fd is a listening unix stream socket and turns it into
// a listener, which then owns it. A descriptor that fails the check is not
// touched.
func take(fd int, name string) (*net.UnixListener, error) {
	fail := func(why string, a ...any) (*net.UnixListener, error) {
		return nil, fmt.Errorf("socket activation: descriptor %d (%q): %s", fd, name, fmt.Sprintf(why, a...))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail("%v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fail("not a socket (mode %#o)", st.Mode)
	}
	for _, c := range []struct {
		opt  int
		want int
		what string
	}{
		{unix.SO_DOMAIN, unix.AF_UNIX, "a unix socket"},
		{unix.SO_TYPE, unix.SOCK_STREAM, "a stream socket"},
		{unix.SO_ACCEPTCONN, 1, "listening"},
	} {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, c.opt)
		if err != nil {
			return fail("getsockopt: %v", err)
		}
		if v != c.want {
			return fail("not %s", c.what)
		}
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	l, err := net.FileListener(f) // dups fd
	f.Close()
	if err != nil {
		return fail("%v", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return fail("not a unix listener")
	}
	return ul, nil
}
