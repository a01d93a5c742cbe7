//go:build linux

package laked_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/shm"
)

// smallRegion is a valid region config of a few pages.
var smallRegion = shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 64 << 10}

// regionFD makes a memfd holding a valid region (header written) with the
// given seals (0: none) and extra bytes past the region's end.
func regionFD(t *testing.T, seals int, extra uint64) int {
	t.Helper()
	l, err := smallRegion.Layout()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.MemfdCreate("test-region", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	size := l.RegionSize + extra
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, int(l.RegionSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shm.NewRegion(mem, smallRegion, 7); err != nil {
		t.Fatal(err)
	}
	unix.Munmap(mem)
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

// reattach sends a re-attach hello carrying fd (-1: none) and returns
// laked's reply; the connection stays open until the test ends.
func reattach(t *testing.T, sock string, fd int) shm.Reply {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := nc.(*net.UnixConn)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := shm.SendMsgFD(c, (&shm.Hello{Kind: shm.HelloReattach}).Encode(), fd); err != nil {
		t.Fatal(err)
	}
	msg, rfd, err := shm.RecvMsgFD(c)
	if err != nil {
		t.Fatalf("no reply from laked: %v", err)
	}
	if rfd >= 0 {
		unix.Close(rfd)
	}
	rep, err := shm.DecodeReply(msg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestReattachRefusesUnsafeFDs: a re-attach hello may only carry a memfd
// sealed against shrinking and growing (and further sealing), of a
// region's size within limits.region_bytes. Everything else is refused
// before laked maps it; shrinking the refused file afterwards cannot hurt
// laked, which keeps serving.
func TestReattachRefusesUnsafeFDs(t *testing.T) {
	srv, sock := startServer(t, laked.Config{Limits: laked.Limits{RegionBytes: 1 << 20}})
	good := dial(t, sock, lakelib.Options{Region: smallRegion})
	all := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

	regular := func(t *testing.T) int {
		// A regular file holding a valid region (on the test's temp dir,
		// and on /var/tmp, which is rarely tmpfs).
		for _, dir := range []string{t.TempDir(), "/var/tmp"} {
			f, err := os.CreateTemp(dir, "region")
			if err != nil {
				continue
			}
			t.Cleanup(func() { os.Remove(f.Name()) })
			src := regionFD(t, 0, 0)
			var st unix.Stat_t
			unix.Fstat(src, &st)
			buf := make([]byte, st.Size)
			unix.Pread(src, buf, 0)
			unix.Close(src)
			f.Write(buf)
			fd, err := unix.Dup(int(f.Fd()))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			return fd
		}
		t.Fatal("no directory for a temp file")
		return -1
	}
	cases := []struct {
		name string
		fd   func(t *testing.T) int
	}{
		{"regular file", regular},
		{"pipe", func(t *testing.T) int {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(p[1]) })
			return p[0]
		}},
		{"/dev/zero", func(t *testing.T) int {
			fd, err := unix.Open("/dev/zero", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Skip(err)
			}
			return fd
		}},
		{"unsealed memfd", func(t *testing.T) int { return regionFD(t, 0, 0) }},
		{"memfd sealed against shrinking only", func(t *testing.T) int { return regionFD(t, unix.F_SEAL_SHRINK, 0) }},
		{"memfd sealed but not against growing", func(t *testing.T) int { return regionFD(t, unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL, 0) }},
		{"sealed memfd above limits.region_bytes", func(t *testing.T) int { return regionFD(t, all, 4<<20) }},
		{"sealed memfd of 1 TiB", func(t *testing.T) int {
			fd, err := unix.MemfdCreate("huge", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Ftruncate(fd, 1<<40); err != nil {
				t.Skip("cannot size a memfd to 1 TiB:", err)
			}
			unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, all)
			return fd
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fd := tc.fd(t)
			defer unix.Close(fd)
			for i := 0; i < 3; i++ { // repeated: no state left behind
				rep := reattach(t, sock, fd)
				if rep.Status == shm.StatusOK {
					t.Fatalf("laked accepted a re-attach with a %s", tc.name)
				}
				// Shrink what laked was offered: it must not have mapped it.
				unix.Ftruncate(fd, 0)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := good.Nop(ctx)
				cancel()
				if err != nil {
					t.Fatalf("laked stopped serving after a refused %s: %v", tc.name, err)
				}
			}
		})
	}
	if got := srv.Stats().Refused; got == 0 {
		t.Fatal("refused handshakes not counted")
	}
	if n := len(srv.Sessions()); n != 1 {
		t.Fatalf("%d sessions attached, want only the well-behaved client", n)
	}
}

// TestReattachedRegionCannotShrink: a region laked accepts for re-attach
// can no longer be truncated by the client (so laked's mapping never
// faults), and laked serves it under an id of its own.
func TestReattachedRegionCannotShrink(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	first := dial(t, sock, lakelibOptions())
	fd := regionFD(t, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL, 0)
	defer unix.Close(fd)
	rep := reattach(t, sock, fd)
	if rep.Status != shm.StatusOK {
		t.Fatalf("sealed region refused: %v %s", rep.Status, rep.Message)
	}
	if rep.ClientID == first.ClientID() {
		t.Fatalf("re-attached region got id %d, the other client has %d", rep.ClientID, first.ClientID())
	}
	if err := unix.Ftruncate(fd, 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("truncating a served region: %v, want EPERM", err)
	}
	waitFor(t, "both sessions", func() bool { return len(srv.Sessions()) >= 2 })
	var ids []uint32
	for _, s := range srv.Sessions() {
		ids = append(ids, s.ClientID)
	}
	found := false
	for _, id := range ids {
		found = found || id == rep.ClientID
	}
	if !found {
		t.Fatalf("reply id %d is not a session id (%v)", rep.ClientID, ids)
	}
	l, _ := smallRegion.Layout()
	mem, err := unix.Mmap(fd, 0, int(l.RegionSize), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	r, err := shm.OpenRegion(mem)
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientID() != rep.ClientID {
		t.Fatalf("region header says client %d, reply %d", r.ClientID(), rep.ClientID)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestMaxClientsRefusedAtHandshake: a client beyond max_clients gets a
// clear refusal at the handshake (not a session that fails every call),
// and laked creates no region for it.
func TestMaxClientsRefusedAtHandshake(t *testing.T) {
	_, sock := startServer(t, laked.Config{MaxClients: 2})
	a := dial(t, sock, lakelibOptions())
	dial(t, sock, lakelibOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := openFDs(t)
	for i := 0; i < 50; i++ {
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{})
		if err == nil {
			c.Close()
			t.Fatal("a third client was attached with max_clients 2")
		}
		if !strings.Contains(err.Error(), "too many clients") {
			t.Fatalf("refusal does not say why: %v", err)
		}
	}
	if after := openFDs(t); after > before+2 {
		t.Fatalf("refused handshakes left %d descriptors open", after-before)
	}
	a.Close()
	// The place frees once the session is gone.
	awaitServed(t, ctx, sock, lakelib.Options{}, "no place after a client left")
}

// TestConcurrentDialsGetUniqueIDs: clients dialling at once get distinct
// ids, each the id of its session in laked.
func TestConcurrentDialsGetUniqueIDs(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	const n = 24
	clients := make([]*lakelib.Client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := lakelib.Dial(ctx, sock, lakelib.Options{Region: smallRegion})
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	// laked attaches a session just after its reply: wait for all.
	waitFor(t, "every session", func() bool { return len(srv.Sessions()) >= n })
	sessions := map[uint32]bool{}
	for _, s := range srv.Sessions() {
		sessions[s.ClientID] = true
	}
	seen := map[uint32]bool{}
	for _, c := range clients {
		id := c.ClientID()
		if seen[id] {
			t.Fatalf("two clients got id %d", id)
		}
		seen[id] = true
		if !sessions[id] {
			t.Fatalf("client id %d is not a session id of laked", id)
		}
	}
}

// TestRegionBudgets: a region above limits.region_bytes is refused; once
// limits.total_region_bytes is taken, further clients are refused as
// busy until one leaves.
func TestRegionBudgets(t *testing.T) {
	l, _ := smallRegion.Layout()
	_, sock := startServer(t, laked.Config{Limits: laked.Limits{RegionBytes: 2 * l.RegionSize, TotalRegionBytes: 2 * l.RegionSize}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := lakelib.Dial(ctx, sock, lakelib.Options{Region: shm.Config{SQEntries: 8, CQEntries: 8, ArenaSize: 1 << 20}}); err == nil || !strings.Contains(err.Error(), "region_bytes") {
		t.Fatalf("region above the limit: %v", err)
	}
	a := dial(t, sock, lakelib.Options{Region: smallRegion})
	dial(t, sock, lakelib.Options{Region: smallRegion})
	_, err := lakelib.Dial(ctx, sock, lakelib.Options{Region: smallRegion})
	if err == nil || !strings.Contains(err.Error(), "total_region_bytes") {
		t.Fatalf("third region within a two-region budget: %v", err)
	}
	a.Close()
	for {
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{Region: smallRegion})
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("budget not given back when a client left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenSocketMode: the client socket is 0600 whatever the process
// umask, and Listen leaves the umask as it found it.
func TestListenSocketMode(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	path := t.TempDir() + "/laked.sock"
	l, err := laked.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode %#o, want 0600", perm)
	}
	if now := unix.Umask(0); now != 0 {
		t.Fatalf("umask left at %#o", now)
	}
}

// TestDepartedClientsRegionIsDiscarded: a client that leaves but keeps
// its region's memfd open cannot keep the region's memory alive: laked
// frees the pages (the memfd reads zeros afterwards).
func TestDepartedClientsRegionIsDiscarded(t *testing.T) {
	srv, sock := startServer(t, laked.Config{})
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.UnixConn)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := shm.SendMsgFD(c, (&shm.Hello{Kind: shm.HelloNew, Config: smallRegion}).Encode(), -1); err != nil {
		t.Fatal(err)
	}
	msg, fd, err := shm.RecvMsgFD(c)
	if err != nil || fd < 0 {
		t.Fatalf("handshake: %v (fd %d)", err, fd)
	}
	defer unix.Close(fd)
	rep, err := shm.DecodeReply(msg)
	if err != nil || rep.Status != shm.StatusOK {
		t.Fatalf("handshake: %v %v", rep.Status, err)
	}
	mem, err := unix.Mmap(fd, 0, int(rep.RegionSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	l, _ := smallRegion.Layout()
	arena := mem[l.ArenaOff : l.ArenaOff+l.ArenaSize]
	for i := 0; i < len(arena); i += 4096 { // the arena resident too
		arena[i] = 0x5a
	}
	blocks := func() int64 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks
	}
	if blocks() == 0 {
		t.Fatal("region holds no pages before the client leaves")
	}
	c.Close() // leave, keeping the fd and the mapping
	waitFor(t, "the session to end", func() bool { return srv.Usage().Sessions == 0 })
	waitFor(t, "the region's pages to be freed", func() bool { return blocks() == 0 })
	if arena[4096] != 0 {
		t.Fatal("the discarded region still holds the client's data")
	}
}

// TestUserHandshakesCap: one uid holding connections that never say
// hello gets at most limits.user_handshakes handshake places; its next
// connection is refused at once with a reason, and a place frees when
// one of its connections goes.
func TestUserHandshakesCap(t *testing.T) {
	srv, sock := startServer(t, laked.Config{Limits: laked.Limits{Handshakes: 16, UserHandshakes: 3}})
	if got := srv.Limits().UserHandshakes; got != 3 {
		t.Fatalf("limits user handshakes %d", got)
	}
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The accept loop counts the idle connections as it accepts them.
	for {
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{Region: smallRegion})
		if err != nil {
			if !strings.Contains(err.Error(), "too many handshakes from uid") {
				t.Fatalf("refusal does not say why: %v", err)
			}
			break
		}
		c.Close()
		if ctx.Err() != nil {
			t.Fatal("a fourth handshake of one uid was served with limits.user_handshakes 3")
		}
		time.Sleep(5 * time.Millisecond)
	}
	idle[0].Close()
	idle = idle[1:]
	awaitServed(t, ctx, sock, lakelib.Options{Region: smallRegion}, "no handshake place after one of the uid's connections closed")
}

// awaitServed dials sock with opts until a client is attached and
// answers a nop, failing the test with why once ctx ends first.
func awaitServed(t *testing.T, ctx context.Context, sock string, opts lakelib.Options, why string) {
	t.Helper()
	for {
		c, err := lakelib.Dial(ctx, sock, opts)
		if err == nil {
			if err := c.Nop(ctx); err != nil {
				t.Fatal(err)
			}
			c.Close()
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: %v", why, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUserClientsCap: one uid attaches at most limits.user_clients
// clients; the next is refused at the handshake with a reason, and the
// place frees when one of them leaves.
func TestUserClientsCap(t *testing.T) {
	_, sock := startServer(t, laked.Config{Limits: laked.Limits{UserClients: 2}})
	a := dial(t, sock, lakelib.Options{Region: smallRegion})
	dial(t, sock, lakelib.Options{Region: smallRegion})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{Region: smallRegion})
		if err == nil {
			c.Close()
			t.Fatal("a third client of one uid was attached with limits.user_clients 2")
		}
		if !strings.Contains(err.Error(), "too many clients of this uid") {
			t.Fatalf("refusal does not say why: %v", err)
		}
	}
	a.Close()
	awaitServed(t, ctx, sock, lakelib.Options{Region: smallRegion}, "no place after one of the uid's clients left")
}

// TestUserLimitsValidated: a per-uid handshake cap above the global one,
// or negative caps, are refused at start.
func TestUserLimitsValidated(t *testing.T) {
	for _, l := range []laked.Limits{{Handshakes: 4, UserHandshakes: 5}, {UserHandshakes: -1}, {UserClients: -1}} {
		if _, err := laked.New(laked.Config{Limits: l}); err == nil {
			t.Errorf("limits %+v accepted", l)
		}
	}
}
