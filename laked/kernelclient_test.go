package laked

import (
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/shm"
)

// kernelTransport is a memTransport that says its client is the kernel.
type kernelTransport struct{ memTransport }

func (t *kernelTransport) Kernel() bool  { return true }
func (t *kernelTransport) Trusted() bool { return true }

func newKernelMemSession(tb testing.TB, srv *Server) *session {
	tb.Helper()
	s := newMemSession(tb, srv)
	mt := s.t.(*memTransport)
	return newSession(srv, 2, &kernelTransport{*mt})
}

// trustCounter is a TrustedBackend on the CPU backend counting which
// constructor laked used.
type trustCounter struct {
	*cpu.Backend
	mu               sync.Mutex
	plain, trustedNo int
}

func (b *trustCounter) NewContext() (backend.Context, error) {
	b.mu.Lock()
	b.plain++
	b.mu.Unlock()
	return b.Backend.NewContext()
}

func (b *trustCounter) NewTrustedContext() (backend.Context, error) {
	b.mu.Lock()
	b.trustedNo++
	b.mu.Unlock()
	return b.Backend.NewContext()
}

// TestTrustedContexts: the kernel's session gets trusted contexts from a
// TrustedBackend, an ordinary client plain ones.
func TestTrustedContexts(t *testing.T) {
	be := &trustCounter{Backend: cpu.New(backend.Limits{})}
	srv, err := New(Config{Backend: be, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	plain := newMemSession(t, srv)
	defer plain.teardown()
	kern := newKernelMemSession(t, srv)
	defer kern.teardown()
	if plain.trusted || plain.kernel || !kern.trusted || !kern.kernel {
		t.Fatalf("plain trusted=%v kernel=%v; kernel trusted=%v kernel=%v", plain.trusted, plain.kernel, kern.trusted, kern.kernel)
	}
	plain.handle(&shm.SQE{Opcode: shm.OpCtxCreate, Tag: 1})
	kern.handle(&shm.SQE{Opcode: shm.OpCtxCreate, Tag: 2})
	kern.handle(&shm.SQE{Opcode: shm.OpCtxCreate, Tag: 3})
	for _, s := range []*session{plain, kern} {
		for _, c := range s.pending {
			if c.Status != shm.StatusOK {
				t.Fatalf("ctx_create: %v", c.Status)
			}
		}
	}
	if be.plain != 1 || be.trustedNo != 2 {
		t.Fatalf("plain %d trusted %d contexts, want 1 and 2", be.plain, be.trustedNo)
	}
}

// recordPlacer records what it is asked.
type recordPlacer struct {
	mu    sync.Mutex
	infos []BatchInfo
}

func (r *recordPlacer) Place(b BatchInfo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos = append(r.infos, b)
	return false
}

// TestKernelItemsReachThePlacer: a batch's items from the kernel's
// session are counted in BatchInfo.KernelItems, a userspace client's
// are not.
func TestKernelItemsReachThePlacer(t *testing.T) {
	rp := &recordPlacer{}
	srv, err := New(Config{Logger: zerolog.Nop(), Placer: rp, MaxWait: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMLPModel("mlp", DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterModel(2, m); err != nil {
		t.Fatal(err)
	}
	predict := func(s *session, n int) {
		t.Helper()
		// 8 float32 in, 2 out per item: inputs at 0, outputs after them.
		in, out := uint64(32*n), uint64(8*n)
		s.handle(&shm.SQE{Opcode: shm.OpPredict, Tag: 9, Args: [6]uint64{2, uint64(n), 0, in, in, out}})
		s.runQueued()
		if len(s.pending) != 0 {
			t.Fatalf("predict refused: %+v", s.pending)
		}
	}
	user := newMemSession(t, srv)
	defer user.teardown()
	kern := newKernelMemSession(t, srv)
	defer kern.teardown()
	predict(user, 3)
	predict(kern, 5)
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.infos) != 2 {
		t.Fatalf("%d placements: %+v", len(rp.infos), rp.infos)
	}
	if rp.infos[0].Items != 3 || rp.infos[0].KernelItems != 0 {
		t.Errorf("user batch %+v", rp.infos[0])
	}
	if rp.infos[1].Items != 5 || rp.infos[1].KernelItems != 5 {
		t.Errorf("kernel batch %+v", rp.infos[1])
	}
}

// registering is a CPU backend that records host registrations.
type registering struct {
	*cpu.Backend
	mu         sync.Mutex
	registered map[*byte]int
	fail       bool
}

func (b *registering) RegisterHost(mem []byte) (func() error, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail {
		return nil, backend.ErrNotSupported
	}
	b.registered[&mem[0]] = len(mem)
	return func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.registered, &mem[0])
		return nil
	}, nil
}

// TestRegionRegisteredWhileAttached: a backend that can page-lock host
// memory has each client's region registered until the client leaves;
// a failed registration does not refuse the client.
func TestRegionRegisteredWhileAttached(t *testing.T) {
	be := &registering{Backend: cpu.New(backend.Limits{}), registered: map[*byte]int{}}
	srv, err := New(Config{Backend: be, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemSession(t, srv)
	mem := s.region.Bytes()
	if be.registered[&mem[0]] != len(mem) {
		t.Fatalf("region not registered: %v", be.registered)
	}
	s.teardown()
	if len(be.registered) != 0 {
		t.Fatalf("still registered after teardown: %v", be.registered)
	}
	be.fail = true
	s = newMemSession(t, srv)
	s.handle(&shm.SQE{Opcode: shm.OpNop, Tag: 1})
	if len(s.pending) != 1 || s.pending[0].Status != shm.StatusOK {
		t.Fatalf("client without registration: %+v", s.pending)
	}
	s.teardown()
}
