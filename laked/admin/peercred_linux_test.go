package admin

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAdminChecksPeerCredentials: with the socket's mode widened to 0666
// (by mistake), a process of another user is still refused; one whose
// group is the socket's group, and root, are served.
func TestAdminChecksPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another user")
	}
	p := filepath.Join(t.TempDir(), "admin.sock")
	for d := filepath.Dir(p); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil { // the temp dirs are 0700
			t.Fatal(err)
		}
	}
	l, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "served") })}
	go srv.Serve(l)
	defer srv.Close()
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	ask := func(uid, gid int) string {
		t.Helper()
		// Connect with these effective ids (SO_PEERCRED records them at
		// connect), then become root again at once.
		if err := syscall.Setresgid(-1, gid, -1); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setresuid(-1, uid, -1); err != nil {
			syscall.Setresgid(-1, 0, -1)
			t.Fatal(err)
		}
		c, err := net.Dial("unix", p)
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic(err)
		}
		if err := syscall.Setresgid(-1, 0, -1); err != nil {
			panic(err)
		}
		if err != nil {
			t.Fatalf("connect as %d:%d: %v", uid, gid, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := ask(0, 0); !strings.Contains(got, "served") {
		t.Fatalf("root not served: %q", got)
	}
	if got := ask(nobody, nobody); got != "" {
		t.Fatalf("another user was answered: %q", got)
	}
	if l.Refused() != 1 {
		t.Fatalf("refused %d connections, want 1", l.Refused())
	}
	if err := os.Chown(p, -1, nobody); err != nil {
		t.Fatal(err)
	}
	if got := ask(nobody, nobody); !strings.Contains(got, "served") {
		t.Fatalf("a member of the socket's group not served: %q", got)
	}
}
