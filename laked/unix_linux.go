//go:build linux

package laked

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lakeos/lake/shm"
)

// handshakeTimeout bounds how long a connecting client may take to say
// hello.
const handshakeTimeout = 5 * time.Second

// unixTransport serves a memfd region handed to a client over a unix
// socket. The connection carries nothing after the handshake: its closing
// is the client's departure.
type unixTransport struct {
	bellTransport
	conn    *net.UnixConn
	mapping *shm.Mapping
	region  *shm.Region
	gone    chan struct{}
	name    string
	root    bool // the peer's uid is 0

	mu     sync.Mutex // guards closed: no region access after Close
	closed bool

	key     regionKey // identity of the region's file
	release func()    // forgets key in the server's set of served regions
}

func keyOf(fd int) (regionKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return regionKey{}, err
	}
	return regionKey{uint64(st.Dev), st.Ino}, nil
}

// claimRegion records that k is served; false if it already is.
func (s *Server) claimRegion(k regionKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.regions == nil {
		s.regions = map[regionKey]bool{}
	}
	if s.regions[k] {
		return false
	}
	s.regions[k] = true
	return true
}

func (s *Server) releaseRegion(k regionKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.regions, k)
}

func (u *unixTransport) Region() *shm.Region   { return u.region }
func (u *unixTransport) Gone() <-chan struct{} { return u.gone }
func (u *unixTransport) String() string        { return u.name }

// Kick wakes the session's reader (it may sleep on the SQ doorbell).
func (u *unixTransport) Kick() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.closed {
		_ = u.sq.Kick()
	}
}

func (u *unixTransport) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	u.closed = true
	var err error
	select {
	case <-u.gone:
		// The client left (it did not just lose laked to a restart or a
		// drain, after which it may re-attach the region): free the
		// region's pages, so that a client that kept the memfd cannot
		// keep memory laked was charged for alive.
		err = u.mapping.Discard()
	default:
	}
	err = errors.Join(err, u.conn.Close(), u.mapping.Close())
	if u.release != nil {
		u.release()
	}
	return err
}

// watch waits for the client to close its end (or send anything, which
// the protocol does not allow) and then wakes the session.
func (u *unixTransport) watch() {
	var b [1]byte
	_, _ = u.conn.Read(b[:]) // EOF, error or a protocol violation: all end the session
	close(u.gone)
	u.Kick()
}

// peerName describes the connecting process for logs.
func peerName(c *net.UnixConn) string {
	name, _ := peer(c)
	return name
}

// peer describes the connecting process and says whether it runs as
// root (uid 0, from SO_PEERCRED; false when that cannot be read).
func peer(c *net.UnixConn) (name string, root bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return "unix", false
	}
	name = "unix"
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			name = fmt.Sprintf("unix:pid=%d,uid=%d", cred.Pid, cred.Uid)
			root = cred.Uid == 0
		}
	})
	return name, root
}

// unknownUID stands for a peer whose credentials cannot be read: such
// peers share one per-uid budget.
const unknownUID = ^uint32(0)

// peerUID is the connecting process's uid (SO_PEERCRED), or unknownUID.
func peerUID(c *net.UnixConn) uint32 {
	uid := unknownUID
	raw, err := c.SyscallConn()
	if err != nil {
		return uid
	}
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = cred.Uid
		}
	})
	return uid
}

// Trusted: a peer running as root may load arbitrary GPU modules.
func (u *unixTransport) Trusted() bool { return u.root }

// Listen creates laked's unix socket at path (mode 0600; the directory is
// created 0755 if missing; a stale socket from a dead laked is removed,
// a live one is an error).
func Listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("laked: socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("laked: another laked is listening on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("laked: remove stale socket %s: %w", path, err)
	}
	// The socket is created with mode 0600 by bind itself (umask 0177
	// around it), so it is never reachable with a wider mode, not even
	// between bind and a chmod.
	umaskMu.Lock()
	old := unix.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	umaskMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("laked: listen on %s: %w", path, err)
	}
	return l, nil
}

// umaskMu serialises Listen's umask changes (the umask is per process).
var umaskMu sync.Mutex

// Serve accepts clients on l until l is closed, handing each a region.
func (s *Server) Serve(l *net.UnixListener) error {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn().Err(err).Msg("accept")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		uid := peerUID(c)
		if !s.userHandshakes.take(uid, s.limits.UserHandshakes) {
			s.stats.refused.Add(1)
			_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
			_ = s.reply(c, shm.StatusBusy, "too many handshakes from uid")
			c.Close()
			continue
		}
		if n := s.handshakes.Add(1); int(n) > s.limits.Handshakes {
			s.handshakes.Add(-1)
			s.userHandshakes.give(uid)
			s.stats.refused.Add(1)
			_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
			_ = s.reply(c, shm.StatusBusy, "too many handshakes at once")
			c.Close()
			continue
		}
		go func() {
			defer s.handshakes.Add(-1)
			defer s.userHandshakes.give(uid)
			if err := s.handshake(c, uid); err != nil {
				s.log.Warn().Err(err).Str("peer", peerName(c)).Msg("handshake failed")
				c.Close()
			}
		}()
	}
}

func (s *Server) reply(c *net.UnixConn, st shm.Status, msg string) error {
	r := shm.Reply{Status: st, Message: msg}
	_ = shm.SendMsgFD(c, r.Encode(), -1)
	return fmt.Errorf("%s: %s", st, msg)
}

// handshake reads a hello, creates (or re-attaches) the region and
// attaches the session. Everything the client sends is untrusted: the
// client's place under max_clients and the region's budget are taken
// before laked creates or maps anything, and a re-attached region must be
// a sealed memfd (shm.MapFD), so no client can make laked's mapping
// fault.
func (s *Server) handshake(c *net.UnixConn, uid uint32) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	msg, fd, err := shm.RecvMsgFD(c)
	if err != nil {
		return err
	}
	closeFD := func() {
		if fd >= 0 {
			unix.Close(fd)
			fd = -1
		}
	}
	// refuse closes the client's fd, counts the refusal and replies why.
	refuse := func(st shm.Status, why string) error {
		closeFD()
		s.stats.refused.Add(1)
		return s.reply(c, st, why)
	}
	h, err := shm.DecodeHello(msg)
	if err != nil {
		closeFD()
		return s.reply(c, shm.StatusInvalidValue, trimMsg(err.Error()))
	}
	id, err := s.reserve()
	if err != nil {
		if errors.Is(err, ErrShutdown) {
			return refuse(shm.StatusShutdown, "laked is shutting down")
		}
		return refuse(shm.StatusBusy, "too many clients (max_clients)")
	}
	attached := false
	defer func() {
		if !attached {
			s.unreserve()
		}
	}()
	if !s.userClients.take(uid, s.limits.UserClients) {
		return refuse(shm.StatusBusy, "too many clients of this uid")
	}
	defer func() {
		if !attached {
			s.userClients.give(uid)
		}
	}()
	var size uint64
	switch h.Kind {
	case shm.HelloNew:
		if fd >= 0 {
			closeFD()
			return s.reply(c, shm.StatusInvalidValue, "unexpected fd with new hello")
		}
		l, _ := h.Config.Layout() // validated by DecodeHello
		size = l.RegionSize
	case shm.HelloReattach:
		if fd < 0 {
			return s.reply(c, shm.StatusInvalidValue, "re-attach without a region fd")
		}
		if size, err = shm.FDSize(fd); err != nil {
			return refuse(shm.StatusInvalidValue, "re-attach fd: not a sealed memfd")
		}
	}
	if size > s.limits.RegionBytes {
		return refuse(shm.StatusOutOfMemory, "region above limits.region_bytes")
	}
	if !s.regionBytes.take(size) {
		return refuse(shm.StatusBusy, "limits.total_region_bytes full")
	}
	defer func() {
		if !attached {
			s.regionBytes.give(size)
		}
	}()
	var m *shm.Mapping
	var region *shm.Region
	switch h.Kind {
	case shm.HelloNew:
		m, err = shm.CreateMemfd(fmt.Sprintf("lake-client-%d", id), size)
		if err != nil {
			return s.reply(c, shm.StatusOutOfMemory, trimMsg(err.Error()))
		}
		region, err = shm.NewRegion(m.Mem, h.Config, id)
		if err != nil {
			m.Close()
			return s.reply(c, shm.StatusInternal, trimMsg(err.Error()))
		}
	case shm.HelloReattach:
		m, err = shm.MapFD(fd, size)
		if err != nil {
			closeFD()
			return s.reply(c, shm.StatusInvalidValue, trimMsg(err.Error()))
		}
		fd = -1 // the mapping owns it
		region, err = shm.OpenRegion(m.Mem)
		if err != nil {
			m.Close()
			return s.reply(c, shm.StatusInvalidValue, trimMsg(err.Error()))
		}
	}
	key, err := keyOf(m.FD())
	if err != nil {
		m.Close()
		return s.reply(c, shm.StatusInternal, trimMsg(err.Error()))
	}
	if !s.claimRegion(key) {
		m.Close()
		return s.reply(c, shm.StatusBusy, "region is already served")
	}
	var resume uint32
	if h.Kind == shm.HelloReattach {
		// This laked's id for the session (the old laked's may be taken).
		region.SetClientID(id)
		resume = region.SQ().ResumeConsumer()
		s.log.Info().Uint32("client", id).Uint32("resume_head", resume).Msg("client re-attached its region")
	}
	t := &unixTransport{
		bellTransport: newBellTransport(region),
		conn:          c, mapping: m, region: region,
		gone: make(chan struct{}),
		key:  key,
	}
	t.name, t.root = peer(c)
	t.release = func() {
		s.releaseRegion(key)
		s.regionBytes.give(size)
		s.userClients.give(uid)
	}
	r := shm.Reply{Status: shm.StatusOK, ClientID: id, RegionSize: region.Layout().RegionSize, ResumeHead: resume}
	sendFD := -1
	if h.Kind == shm.HelloNew {
		sendFD = m.FD()
	}
	if err := shm.SendMsgFD(c, r.Encode(), sendFD); err != nil {
		s.releaseRegion(key)
		m.Close()
		return err
	}
	_ = c.SetDeadline(time.Time{})
	// From here the transport gives the place and the budget back.
	attached = true
	if err := s.attachReserved(id, t); err != nil {
		t.Close()
		return err
	}
	go t.watch()
	return nil
}

func trimMsg(s string) string {
	if len(s) > 31 {
		return s[:31]
	}
	return s
}

var _ io.Closer = (*unixTransport)(nil)
