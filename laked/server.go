package laked

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked/backend"
)

// Config tunes a Server. Zero fields take the defaults in DefaultConfig.
type Config struct {
	// MaxBatch is the most items one predict batch holds.
	MaxBatch int
	// MaxWait is the longest a batch waits for more requests, which it
	// does only when the GPU is usable and the placer's hint asks for a
	// larger batch; the wait adapts below it to the arrival rate (see
	// batcher).
	MaxWait time.Duration
	// BusyPoll makes the poller (and the kernel's session reader) spin
	// instead of sleeping when idle (lowest latency, a core kept busy).
	BusyPoll bool
	// IdleSpin is the idle window: the poller (poller.go), once no ring
	// has work, spins this long for the next submission before it sleeps
	// and the sessions' doorbells are armed; the kernel's session reader
	// does the same on its ring (at most SpinReaders such readers spin at
	// once; the others sleep at once; the poller is not counted).
	// Negative: never spin.
	IdleSpin time.Duration
	// IdleYield makes a reader (the poller, a kernel session's reader)
	// in its idle window yield its CPU to other
	// threads (sched_yield) once it has found nothing for
	// shm.SpinOSYield: a client woken onto the reader's CPU then runs at
	// once instead of after the window, at the price of the reader
	// losing its CPU for a time slice when other threads want it.
	IdleYield bool
	// SpinReaders bounds the session readers of their own (the
	// kernel's /dev/lake sessions) spinning at once (0: max(1,
	// GOMAXPROCS/2)); BusyPoll readers and the poller are not counted.
	SpinReaders int
	// MaxClients bounds concurrent sessions; a handshake beyond it is
	// refused before laked creates anything for it.
	MaxClients int
	// Limits are the resource budgets (zero fields: DefaultLimits).
	Limits Limits
	// Backend runs device operations; nil means none (ops other than
	// nop, init, model_info, model_fetch and predict complete with "not
	// supported").
	Backend backend.Backend
	// GPU, when non-nil, is a GPU backend that GPUModels may use.
	GPU backend.Backend
	// Placer decides CPU or GPU per batch; nil means always CPU.
	Placer Placer
	// Logger receives state changes (never per-request lines at info).
	Logger zerolog.Logger
}

// DefaultConfig holds the defaults.
var DefaultConfig = Config{
	MaxBatch:   64,
	MaxWait:    200 * time.Microsecond,
	IdleSpin:   time.Millisecond,
	MaxClients: 256,
}

// BatchInfo is what a Placer sees about one batch.
type BatchInfo struct {
	Model      uint32
	Items      int           // items in the batch, and those of its large requests' later pieces (see batcher.decide)
	QueueDepth int           // requests waiting behind it
	CPUPerItem time.Duration // recent CPU cost per item (0: unknown)
	GPUPerItem time.Duration // recent GPU cost per item (0: unknown)
	// KernelItems counts the items submitted by kernel clients
	// (/dev/lake): the policy's reserved kernel GPU share applies to them.
	KernelItems int
}

// Placer decides where a predict batch runs: it returns true for the GPU.
// PolicyPlacer adapts the eBPF policy engine (package policy) to it.
type Placer interface {
	Place(BatchInfo) bool
}

// HintPlacer is a Placer that also returns the policy's batch-size hint:
// the batch size at which it would place the batch on the GPU (0: no
// hint). laked waits for more requests only when the hint is larger than
// the batch (see batcher).
type HintPlacer interface {
	Placer
	PlaceHint(BatchInfo) (gpu bool, hint int)
}

// PlacerFunc adapts a function to Placer.
type PlacerFunc func(BatchInfo) bool

// Place implements Placer.
func (f PlacerFunc) Place(b BatchInfo) bool { return f(b) }

// regionKey identifies a region file (device and inode), so that laked
// never serves one region twice.
type regionKey struct{ dev, ino uint64 }

// ErrShutdown is returned by Attach once the server is shutting down.
var ErrShutdown = errors.New("laked: shutting down")

// ErrTooManyClients is returned by Attach when MaxClients are attached.
var ErrTooManyClients = errors.New("laked: too many clients")

// Server is a running laked core.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	models models
	stats  stats

	mu       sync.Mutex
	sessions map[uint32]*session
	reserved int                // session places handed out by reserve, not yet attached
	regions  map[regionKey]bool // region files being served (unix transport)
	nextID   uint32

	limits         Limits
	regionBytes    budget       // bytes of client regions mapped (unix transport)
	inflightBudget budget       // accepted predicts not yet completed
	queuedBudget   budget       // bytes held for them
	handshakes     atomic.Int32 // handshakes in progress
	userHandshakes userCounts   // handshakes in progress by uid (limits.user_handshakes)
	userClients    userCounts   // client places by uid (limits.user_clients)
	closing        bool
	wg             sync.WaitGroup // sessions

	placer    atomic.Pointer[Placer]
	spinSlots chan struct{} // a token per session reader spinning now
	poller    *poller       // serves the userspace sessions' rings
	done      chan struct{} // closed when batchers must stop
	stopOnce  sync.Once
}

// New creates a Server.
func New(cfg Config) (*Server, error) {
	d := DefaultConfig
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = d.MaxBatch
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = d.MaxWait
	}
	if cfg.IdleSpin == 0 {
		cfg.IdleSpin = d.IdleSpin
	}
	if cfg.SpinReaders == 0 {
		cfg.SpinReaders = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = d.MaxClients
	}
	switch {
	case cfg.MaxBatch < 1 || cfg.MaxBatch > 65536:
		return nil, fmt.Errorf("laked: max batch %d: want 1..65536", cfg.MaxBatch)
	case cfg.MaxWait < 0 || cfg.MaxWait > time.Second:
		return nil, fmt.Errorf("laked: max wait %v: want 0..1s", cfg.MaxWait)
	case cfg.IdleSpin > time.Second:
		return nil, fmt.Errorf("laked: idle spin %v: want at most 1s", cfg.IdleSpin)
	case cfg.SpinReaders < 1:
		return nil, fmt.Errorf("laked: spin readers %d: want at least 1", cfg.SpinReaders)
	case cfg.MaxClients < 1:
		return nil, fmt.Errorf("laked: max clients %d: want at least 1", cfg.MaxClients)
	}
	lim := cfg.Limits.withDefaults()
	if err := lim.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sessions: map[uint32]*session{}, done: make(chan struct{}), stats: newStats(), limits: lim,
		spinSlots: make(chan struct{}, cfg.SpinReaders)}
	s.poller = newPoller(s)
	s.regionBytes.max = lim.TotalRegionBytes
	s.inflightBudget.max = uint64(lim.TotalInflight)
	s.queuedBudget.max = lim.TotalQueuedBytes
	if cfg.Placer != nil {
		s.SetPlacer(cfg.Placer)
	}
	return s, nil
}

// SetPlacer swaps the placement policy; batches in progress finish with
// the old one.
func (s *Server) SetPlacer(p Placer) { s.placer.Store(&p) }

func (s *Server) placeHint(b BatchInfo) (gpu bool, hint int) {
	if p := s.placer.Load(); p != nil {
		if hp, ok := (*p).(HintPlacer); ok {
			gpu, hint = hp.PlaceHint(b)
		} else {
			gpu = (*p).Place(b)
		}
	}
	if gpu {
		s.stats.decisionsGPU.Add(1)
	} else {
		s.stats.decisionsCPU.Add(1)
	}
	return gpu, hint
}

func (s *Server) gpuAvailable() bool { return s.cfg.GPU != nil }

// Attach serves a client region over t until the client goes away or the
// server shuts down. It returns at once; the session runs on its own
// goroutine. On error t is left open for the caller to close.
func (s *Server) Attach(t Transport) (uint32, error) {
	id, err := s.reserve()
	if err != nil {
		return 0, err
	}
	if err := s.attachReserved(id, t); err != nil {
		return 0, err
	}
	return id, nil
}

// reserve takes a place for a session under MaxClients and a client id
// no other session of this server has, before a transport creates
// anything for the client. The place is given back by attachReserved
// (which uses it) or unreserve.
func (s *Server) reserve() (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return 0, ErrShutdown
	}
	if n := len(s.sessions) + s.reserved; n >= s.cfg.MaxClients {
		return 0, fmt.Errorf("%w: %d of max_clients %d attached or attaching", ErrTooManyClients, n, s.cfg.MaxClients)
	}
	s.reserved++
	s.nextID++
	return s.nextID, nil
}

func (s *Server) unreserve() {
	s.mu.Lock()
	s.reserved--
	s.mu.Unlock()
}

// attachReserved starts the session of a reserved id over t; the
// reservation is used up either way. On error t is left open.
func (s *Server) attachReserved(id uint32, t Transport) error {
	// Built outside the server lock: it registers the region with the
	// GPU backend (cuMemHostRegister pins every page of it, milliseconds
	// for a large arena), which must not hold up the other sessions'
	// handshakes and departures. The reservation keeps its place.
	sess := newSession(s, id, t)
	s.mu.Lock()
	s.reserved--
	if s.closing {
		s.mu.Unlock()
		if sess.unregister != nil {
			if err := sess.unregister(); err != nil {
				s.log.Warn().Err(err).Uint32("client", id).Msg("unregister region")
			}
		}
		return ErrShutdown
	}
	s.sessions[id] = sess
	s.wg.Add(1)
	s.mu.Unlock()
	s.stats.sessions.Add(1)
	s.stats.sessionsSeen.Add(1)
	s.log.Info().Uint32("client", id).Str("transport", t.String()).Msg("client attached")
	go func() {
		defer s.wg.Done()
		sess.run()
		s.mu.Lock()
		delete(s.sessions, id)
		s.mu.Unlock()
		s.stats.sessions.Add(-1)
		s.log.Info().Uint32("client", id).Str("transport", t.String()).Msg("client detached")
	}()
	return nil
}

// Shutdown stops accepting sessions, answers every submission still in
// the rings (running what is already in flight, failing what is not yet
// started with "shutting down"), and waits for all sessions to end or for
// ctx to expire.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	// Drain outside s.mu: a session tearing down takes its own lock and
	// then s.mu (to forget its region).
	for _, sess := range sessions {
		sess.drain()
	}
	doneCh := make(chan struct{})
	go func() { s.wg.Wait(); close(doneCh) }()
	var err error
	select {
	case <-doneCh:
	case <-ctx.Done():
		err = fmt.Errorf("laked: shutdown: %w", ctx.Err())
	}
	s.stopOnce.Do(func() { close(s.done) })
	s.log.Info().Msg("laked stopped")
	return err
}

// SessionInfo describes one attached client.
type SessionInfo struct {
	ClientID  uint32
	Transport string
	Contexts  int
	Departed  bool // the client has left; laked is ending the session
}

// Sessions lists the attached clients.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for id, sess := range s.sessions {
		out = append(out, SessionInfo{ClientID: id, Transport: sess.t.String(), Contexts: int(sess.nctx.Load()), Departed: sess.gone()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out
}

// Healthy reports whether the server is serving (for the systemd
// watchdog): not shutting down, and its lock is not wedged.
func (s *Server) Healthy() bool {
	locked := make(chan bool, 1)
	go func() {
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		locked <- !closing
	}()
	select {
	case ok := <-locked:
		return ok
	case <-time.After(time.Second):
		return false
	}
}
