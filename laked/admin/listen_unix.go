//go:build unix

package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// SocketMode is the admin socket's permission: root (laked's user) only.
const SocketMode = 0o600

// Listen creates the admin unix socket at path with mode 0600, replacing a
// stale socket left by a previous laked (but never a file that is not a
// socket, nor a socket another laked still answers on). The parent
// directory is created 0755 when missing (under systemd,
// RuntimeDirectory=lake makes /run/lake).
func Listen(path string) (*Listener, error) {
	if path == "" {
		return nil, errors.New("admin: listen: empty socket path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin: listen %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: listen %s: another process is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: listen %s: remove stale socket: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	// Bind inside a private (0700) directory, restrict the socket, then
	// rename it into place: it is never reachable with a wider mode.
	private, err := os.MkdirTemp(filepath.Dir(path), ".laked-admin-")
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, SocketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	return &Listener{UnixListener: l, path: path, uid: os.Geteuid()}, nil
}

// Listener is the admin socket's listener; Close also removes the socket
// file. Accept hands out only connections whose peer passes the
// credential check (peerAllowed: root, laked's own user, or the socket
// file's group), on top of the socket's mode.
type Listener struct {
	*net.UnixListener
	path    string
	uid     int // laked's effective uid when it listened
	once    sync.Once
	refused atomic.Uint64
}

// Accept waits for the next connection from an allowed peer; others are
// closed at once, unanswered.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if err := peerAllowed(c, l.path, l.uid); err != nil {
			l.refused.Add(1)
			c.Close()
			continue
		}
		return c, nil
	}
}

// Refused counts connections closed by the credential check.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Close stops listening and removes the socket file.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// Path is the socket's path.
func (l *Listener) Path() string { return l.path }
