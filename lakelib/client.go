package lakelib

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lakeos/lake/shm"
)

// DefaultSocket is laked's default unix socket.
const DefaultSocket = "/run/lake/laked.sock"

// Options tune a Client.
type Options struct {
	// Region sizes to ask laked for; zero fields take shm.DefaultConfig.
	Region shm.Config
	// BusyPoll makes waiting callers spin on the completion ring until
	// their completion arrives instead of sleeping (lowest latency, burns
	// a core while waiting).
	BusyPoll bool
	// SpinMax bounds the adaptive spin before a waiting caller sleeps.
	SpinMax time.Duration
	// Reconnect makes the client survive a laked restart: when laked's
	// socket closes, the client keeps its region and re-attaches it to
	// the next laked on the same socket (PROTOCOL.md, "Re-attach"). Calls
	// keep waiting meanwhile (bounded by their contexts); calls the old
	// laked had consumed but not completed fail with ErrLostInRestart.
	// Without Reconnect, or if no laked comes back within
	// ReconnectTimeout, calls fail with ErrDaemonGone.
	Reconnect bool
	// ReconnectTimeout bounds the wait for a new laked (default 10 s).
	ReconnectTimeout time.Duration
}

// call states. A call moves free -> pending (submitted) -> completing
// (its results being written) -> done (results readable by its caller)
// -> free, or pending -> abandoned (its caller gave up) -> free when the
// completion arrives. Only a caller that saw done reads a call's results:
// a wake token is only a hint (it may be a late one from an earlier use
// of the slot).
const (
	callFree       = 0
	callPending    = 1
	callDone       = 2
	callAbandoned  = 3
	callCompleting = 4
)

// call is one in-flight submission. Its index in Client.calls is the low
// half of the tag; gen, the high half, changes at every reuse, so a stale
// completion can never be taken for a new call.
type call struct {
	state atomic.Uint32
	gen   atomic.Uint32
	pos   atomic.Uint32 // submission ring position, valid while published
	// published is set with pos under submitMu once the submission is in
	// the ring; a re-attach only judges published calls.
	published atomic.Bool
	op        shm.Opcode
	status    shm.Status
	results   [2]uint64
	wake      chan struct{}
	release   func() // frees arena buffers once laked is done with them
	// staged: stageOff is an arena block to free once laked is done with
	// it (Predict's staging, without a closure: no allocation per call)
	staged   bool
	stageOff uint64
}

// testHookCompleted, if set (by tests only, before any client exists),
// runs in complete after a call is marked done and before its caller is
// woken: it widens that window so tests can check no late wake-up is
// taken for a later call.
var testHookCompleted func()

// Client is a connection to laked.
type Client struct {
	opts    Options
	socket  string
	connMu  sync.Mutex // guards conn (swapped by a re-attach)
	conn    *net.UnixConn
	mapping *shm.Mapping
	region  *shm.Region
	sq      *shm.SQ
	cq      *shm.CQ
	arena   *shm.Arena

	calls []call
	free  chan uint32 // free call indices; its capacity bounds calls in flight

	reapMu sync.Mutex
	reaped []shm.CQE
	leader sync.Mutex // held by the one caller sleeping on the CQ doorbell

	// parked counts callers that stopped spinning and sleep on their
	// wake channel; the background reaper only sleeps on the completion
	// doorbell (which makes laked pay a futex wake per post) while some
	// caller is parked, and otherwise waits for parkSignal.
	parked     atomic.Int32
	parkSignal chan struct{}

	closed    chan struct{} // closed by Close
	dead      chan struct{} // closed when laked goes away
	deadOnce  sync.Once
	closeOnce sync.Once
	strays    atomic.Uint64
	sleeps    atomic.Uint64 // waits whose spin ran out (the caller slept)
	reaperWG  sync.WaitGroup

	// submitMu orders submissions against a re-attach: submitters hold
	// it shared from claiming a ring position until the call records it,
	// so the re-attach sees every published call's position.
	submitMu sync.RWMutex
	restarts atomic.Uint64

	// life guards the mapping: calls hold it shared, Close takes it
	// exclusively before unmapping, so no call can touch unmapped memory.
	life     sync.RWMutex
	unmapped bool
}

// Dial connects to laked's socket and maps a new region.
func Dial(ctx context.Context, socket string, opts Options) (*Client, error) {
	cfg := opts.Region
	d := shm.DefaultConfig
	if cfg.SQEntries == 0 {
		cfg.SQEntries = d.SQEntries
	}
	if cfg.CQEntries == 0 {
		cfg.CQEntries = max(d.CQEntries, cfg.SQEntries)
	}
	if cfg.ArenaSize == 0 {
		cfg.ArenaSize = d.ArenaSize
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("lakelib: connect to laked at %s: %w", socket, err)
	}
	conn := nc.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	hello := shm.Hello{Kind: shm.HelloNew, Config: cfg}
	if err := shm.SendMsgFD(conn, hello.Encode(), -1); err != nil {
		// laked may have refused the connection before reading the hello
		// (too many handshakes): its reason is still readable.
		err = fmt.Errorf("lakelib: %w", err)
		if msg, fd, rerr := shm.RecvMsgFD(conn); rerr == nil {
			if fd >= 0 {
				closeFD(fd)
			}
			if rep, derr := shm.DecodeReply(msg); derr == nil && rep.Status != shm.StatusOK {
				err = fmt.Errorf("lakelib: handshake: laked refused: %s: %s", rep.Status, rep.Message)
			}
		}
		conn.Close()
		return nil, err
	}
	msg, fd, err := shm.RecvMsgFD(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	rep, err := shm.DecodeReply(msg)
	if err != nil || rep.Status != shm.StatusOK || fd < 0 {
		if fd >= 0 {
			closeFD(fd)
		}
		conn.Close()
		if err == nil {
			err = fmt.Errorf("laked refused: %s: %s", rep.Status, rep.Message)
		}
		return nil, fmt.Errorf("lakelib: handshake: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	m, err := shm.MapFD(fd, rep.RegionSize)
	if err != nil {
		closeFD(fd)
		conn.Close()
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	region, err := shm.OpenRegion(m.Mem)
	if err != nil {
		m.Close()
		conn.Close()
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	c, err := newClient(region, opts)
	if err != nil {
		m.Close()
		conn.Close()
		return nil, err
	}
	c.conn, c.mapping, c.socket = conn, m, socket
	go c.watch(conn)
	return c, nil
}

func newClient(region *shm.Region, opts Options) (*Client, error) {
	l := region.Layout()
	arena, err := shm.NewArena(l.ArenaSize)
	if err != nil {
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	n := l.SQEntries // at most one ring of calls in flight: the CQ (>= SQ) never overflows
	c := &Client{
		opts: opts, region: region, sq: region.SQ(), cq: region.CQ(), arena: arena,
		calls:      make([]call, n),
		free:       make(chan uint32, n),
		reaped:     make([]shm.CQE, 64),
		parkSignal: make(chan struct{}, 1),
		closed:     make(chan struct{}),
		dead:       make(chan struct{}),
	}
	for i := range c.calls {
		c.calls[i].wake = make(chan struct{}, 1)
		c.free <- uint32(i)
	}
	c.reaperWG.Add(1)
	go c.reaper()
	return c, nil
}

// watch waits for laked's end of the connection to close; then the
// client re-attaches (Options.Reconnect) or fails every waiter with
// ErrDaemonGone.
func (c *Client) watch(conn *net.UnixConn) {
	var b [1]byte
	_, _ = conn.Read(b[:])
	select {
	case <-c.closed:
		return
	default:
	}
	if c.opts.Reconnect {
		if err := c.reattach(); err == nil {
			return
		}
	}
	c.markDead()
}

func (c *Client) markDead() {
	c.deadOnce.Do(func() {
		close(c.dead)
		c.life.RLock()
		if !c.unmapped {
			_ = c.cq.Bell.Kick()
		}
		c.life.RUnlock()
	})
}

// Close ends the session. Calls still waiting fail with ErrClosed.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.cq.Bell.Kick()
		c.reaperWG.Wait()
		// Waiting calls see closed and return; new ones refuse.
		c.life.Lock()
		c.unmapped = true
		c.connMu.Lock()
		if c.conn != nil {
			err = c.conn.Close()
		}
		c.connMu.Unlock()
		if c.mapping != nil {
			err = errors.Join(err, c.mapping.Close())
		}
		c.life.Unlock()
	})
	return err
}

// ClientID is laked's id for this session.
func (c *Client) ClientID() uint32 { return c.region.ClientID() }

// Strays counts completions whose tag matched no pending call (a laked
// bug or a corrupted region; never expected).
func (c *Client) Strays() uint64 { return c.strays.Load() }

// Sleeps counts the calls whose caller stopped spinning for its
// completion and slept (on the completion doorbell or its wake channel):
// each such call paid a wake-up.
func (c *Client) Sleeps() uint64 { return c.sleeps.Load() }

func (c *Client) failErr() error {
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	select {
	case <-c.dead:
		return ErrDaemonGone
	default:
	}
	return nil
}

// acquire takes a free call slot, waiting for one if all are in flight.
func (c *Client) acquire(ctx context.Context) (uint32, error) {
	select {
	case i := <-c.free:
		return i, nil
	default:
	}
	select {
	case i := <-c.free:
		return i, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("lakelib: waiting for a free slot: %w", ctx.Err())
	case <-c.closed:
		return 0, ErrClosed
	case <-c.dead:
		return 0, ErrDaemonGone
	}
}

func (c *Client) releaseCall(i uint32) {
	cl := &c.calls[i]
	if cl.release != nil {
		cl.release()
		cl.release = nil
	}
	if cl.staged {
		c.arena.Free(cl.stageOff)
		cl.staged = false
	}
	cl.gen.Add(1)
	cl.published.Store(false)
	cl.state.Store(callFree)
	// Drain a wake token a late delivery may have left (best effort: a
	// token can still arrive after this; wait ignores it).
	select {
	case <-cl.wake:
	default:
	}
	c.free <- i
}

// submit publishes e for call slot i. The caller fills everything but
// the tag.
func (c *Client) submit(ctx context.Context, i uint32, e *shm.SQE) error {
	cl := &c.calls[i]
	cl.op = e.Opcode
	e.Tag = uint64(cl.gen.Load())<<32 | uint64(i)
	cl.state.Store(callPending)
	for {
		err := c.publish(cl, e)
		if err == nil {
			break
		}
		if !errors.Is(err, shm.ErrRingFull) {
			return fmt.Errorf("lakelib: submit: %w", err)
		}
		// Ring full: laked is behind. Wait a little (it frees slots as
		// it consumes) unless the call must end.
		if err := c.failErr(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("lakelib: submission ring full: %w", ctx.Err())
		}
		runtime.Gosched()
	}
	return c.sq.Bell.Ring()
}

// publish claims a ring position for cl and publishes e there.
func (c *Client) publish(cl *call, e *shm.SQE) error {
	c.submitMu.RLock()
	defer c.submitMu.RUnlock()
	pos, err := c.sq.TrySubmitPos(e)
	if err == nil {
		cl.pos.Store(pos)
		cl.published.Store(true)
	}
	return err
}

// reap drains the completion ring and delivers each completion to its
// call. Callers hold reapMu.
func (c *Client) reapLocked() int {
	total := 0
	for {
		n := c.cq.Reap(c.reaped)
		for _, e := range c.reaped[:n] {
			c.deliver(e)
		}
		total += n
		if n < len(c.reaped) {
			return total
		}
	}
}

func (c *Client) deliver(e shm.CQE) {
	i, gen := uint32(e.Tag), uint32(e.Tag>>32)
	if int(i) >= len(c.calls) {
		c.strays.Add(1)
		return
	}
	cl := &c.calls[i]
	if cl.gen.Load() != gen {
		c.strays.Add(1)
		return
	}
	c.complete(i, e.Status, e.Results)
}

// complete hands a result to call i (its generation already checked).
func (c *Client) complete(i uint32, st shm.Status, res [2]uint64) {
	cl := &c.calls[i]
	if cl.state.CompareAndSwap(callPending, callCompleting) {
		// Only the completion that won the call writes its results, and
		// before its caller can see done.
		cl.status, cl.results = st, res
		cl.state.Store(callDone)
		if h := testHookCompleted; h != nil {
			h()
		}
		// The caller may have seen done while spinning, returned and
		// freed the slot already: this token may then reach the slot's
		// next call, which therefore checks the state on every wake-up.
		select {
		case cl.wake <- struct{}{}:
		default:
		}
		return
	}
	if cl.state.Load() == callAbandoned {
		// The caller gave up; laked is done with the call now.
		c.releaseCall(i)
		return
	}
	c.strays.Add(1)
}

// tryReap reaps if no one else is.
func (c *Client) tryReap() {
	if c.reapMu.TryLock() {
		c.reapLocked()
		c.reapMu.Unlock()
	}
}

// reaper is the background reaper: it sleeps on the completion doorbell
// and delivers completions to callers that are sleeping too.
func (c *Client) reaper() {
	defer c.reaperWG.Done()
	for {
		select {
		case <-c.closed:
			return
		default:
		}
		if c.parked.Load() == 0 {
			// Nobody is asleep: callers reap for themselves while they
			// spin. Wait until one parks (or the client closes).
			select {
			case <-c.parkSignal:
			case <-c.closed:
				return
			case <-c.dead:
				select {
				case <-c.parkSignal:
				case <-c.closed:
					return
				}
			}
		}
		c.reapMu.Lock()
		n := c.reapLocked()
		c.reapMu.Unlock()
		if n > 0 {
			continue
		}
		if c.parked.Load() > 0 {
			_ = c.cq.Bell.Wait(c.readyOrStopped, 100*time.Millisecond)
		}
	}
}

func (c *Client) readyOrStopped() bool {
	if c.cq.Ready() {
		return true
	}
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// wait waits for call i to complete. On success the caller owns the slot
// and must releaseCall it after reading the results.
func (c *Client) wait(ctx context.Context, i uint32) error {
	cl := &c.calls[i]
	spin := shm.Spinner{Max: c.opts.SpinMax, Forever: c.opts.BusyPoll}
	done := func() bool {
		if cl.state.Load() == callDone {
			return true
		}
		c.tryReap()
		return cl.state.Load() == callDone
	}
	stop := func() bool { return ctx.Err() != nil || c.failErr() != nil }
	if spin.Spin(done, stop) {
		return nil
	}
	c.sleeps.Add(1)
	// Leader: if nobody else is reaping, sleep on the completion doorbell
	// ourselves and reap when laked rings it: one wake-up per call
	// (laked's futex wake of this thread) instead of two (the background
	// reaper's, then this goroutine's).
	if c.leader.TryLock() {
		err := c.lead(ctx, i)
		c.leader.Unlock()
		if c.parked.Load() > 0 {
			// Followers may have parked while we led: wake the reaper.
			select {
			case c.parkSignal <- struct{}{}:
			default:
			}
		}
		return err
	}
	c.parked.Add(1)
	defer c.parked.Add(-1)
	select {
	case c.parkSignal <- struct{}{}:
	default:
	}
	// Re-check after announcing: the completion may have arrived while
	// nobody was reaping.
	if done() {
		return nil
	}
	for {
		select {
		case <-cl.wake:
			if cl.state.Load() == callDone {
				return nil
			}
			// A late token meant for an earlier call in this slot.
		case <-ctx.Done():
			return c.abandon(i, fmt.Errorf("lakelib: %s: %w", cl.op, ctx.Err()))
		case <-c.closed:
			return c.abandon(i, ErrClosed)
		case <-c.dead:
			return c.afterDeath(i)
		}
	}
}

// lead reaps for everyone, sleeping on the completion doorbell, until
// call i completes or must be given up. Callers hold c.leader (one
// leader sleeps in the kernel at a time; other callers park). The reap
// lock is held only while reaping, never while sleeping, so a re-attach
// can always take it.
func (c *Client) lead(ctx context.Context, i uint32) error {
	cl := &c.calls[i]
	ready := func() bool {
		return c.cq.Ready() || c.failErr() != nil || ctx.Err() != nil
	}
	for {
		c.tryReap()
		if cl.state.Load() == callDone {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return c.abandon(i, fmt.Errorf("lakelib: %s: %w", cl.op, err))
		}
		select {
		case <-c.closed:
			return c.abandon(i, ErrClosed)
		case <-c.dead:
			return c.afterDeath(i)
		default:
		}
		wait := 20 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < wait {
				wait = max(left, time.Microsecond)
			}
		}
		_ = c.cq.Bell.Wait(ready, wait)
	}
}

// afterDeath settles call i once laked has gone: laked may have posted
// its completion before it went away, so reap once more; otherwise the
// call is abandoned with ErrDaemonGone.
func (c *Client) afterDeath(i uint32) error {
	c.reapMu.Lock()
	c.reapLocked()
	c.reapMu.Unlock()
	if c.calls[i].state.Load() == callDone {
		return nil
	}
	return c.abandon(i, ErrDaemonGone)
}

// abandon gives up on call i. If the completion raced in, it is taken
// after all.
func (c *Client) abandon(i uint32, err error) error {
	cl := &c.calls[i]
	if cl.state.CompareAndSwap(callPending, callAbandoned) {
		return err // the slot is released when (if) the completion arrives
	}
	// Completed meanwhile: the caller reads the result once it is written.
	for cl.state.Load() == callCompleting {
		runtime.Gosched()
	}
	return nil
}

// do runs one operation synchronously and returns its results.
//
// release, if not nil, frees the call's arena buffers; it runs exactly
// once, when laked can no longer touch them. after, if not nil, runs on
// success before release (to copy results out of the arena).
func (c *Client) do(ctx context.Context, e *shm.SQE, release, after func()) ([2]uint64, error) {
	return c.doCall(ctx, e, release, false, 0, after)
}

// doStaged is do for a call whose arena block at off (from c.arena) is
// freed when laked can no longer touch it; it allocates nothing.
func (c *Client) doStaged(ctx context.Context, e *shm.SQE, off uint64, after func()) ([2]uint64, error) {
	return c.doCall(ctx, e, nil, true, off, after)
}

func (c *Client) doCall(ctx context.Context, e *shm.SQE, release func(), staged bool, off uint64, after func()) ([2]uint64, error) {
	c.life.RLock()
	defer c.life.RUnlock()
	drop := func() {
		if release != nil {
			release()
		}
		if staged {
			c.arena.Free(off)
		}
	}
	if c.unmapped {
		drop()
		return [2]uint64{}, ErrClosed
	}
	if err := c.failErr(); err != nil {
		drop()
		return [2]uint64{}, err
	}
	i, err := c.acquire(ctx)
	if err != nil {
		drop()
		return [2]uint64{}, err
	}
	c.calls[i].release = release
	c.calls[i].staged, c.calls[i].stageOff = staged, off
	if err := c.submit(ctx, i, e); err != nil {
		// Not published: nobody else knows the slot.
		c.releaseCall(i)
		return [2]uint64{}, err
	}
	if err := c.wait(ctx, i); err != nil {
		return [2]uint64{}, err
	}
	cl := &c.calls[i]
	st, res, op := cl.status, cl.results, cl.op
	if st == shm.StatusOK && after != nil {
		after()
	}
	c.releaseCall(i)
	if st == statusLost {
		return res, fmt.Errorf("%w: %s", ErrLostInRestart, op)
	}
	if st != shm.StatusOK {
		return res, &StatusError{Op: op, Status: st}
	}
	return res, nil
}
