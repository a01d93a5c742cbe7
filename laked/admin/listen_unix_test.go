//go:build unix

package admin

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenModeAndStaleSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "laked-admin.sock")
	// A stale socket from a dead laked: bound, then its listener gone
	// without unlinking.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	l, err := Listen(p)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != SocketMode || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v, want socket %o", fi.Mode(), SocketMode)
	}
	if l.Path() != p {
		t.Fatalf("path %q", l.Path())
	}
	// Reachable under its final name.
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// A second laked must not steal a live socket.
	if _, err := Listen(p); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	// No temporary leftovers next to it.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the socket", len(ents))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "laked-admin.sock")
	if err := os.WriteFile(p, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(p); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "precious" {
		t.Fatal("regular file was replaced")
	}
	if _, err := Listen(filepath.Join(p, "under-a-file.sock")); err == nil {
		t.Fatal("Listen below a regular file succeeded")
	}
	l, err := Listen(filepath.Join(t.TempDir(), "new", "dir", "admin.sock"))
	if err != nil {
		t.Fatalf("Listen in a missing directory: %v", err)
	}
	l.Close()
	if _, err := Listen(""); err == nil {
		t.Fatal("Listen on an empty path succeeded")
	}
}
