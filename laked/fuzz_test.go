package laked

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
	"github.com/lakeos/lake/laked/backend/kernels"
	"github.com/lakeos/lake/linnos"
	"github.com/lakeos/lake/shm"
)

// memTransport serves a region in this process's memory (no socket).
type memTransport struct {
	bellTransport
	m *shm.Mapping
	r *shm.Region
}

func (t *memTransport) Region() *shm.Region   { return t.r }
func (t *memTransport) Gone() <-chan struct{} { return nil }
func (t *memTransport) Close() error          { return t.m.Close() }
func (t *memTransport) String() string        { return "memory" }

func newMemSession(tb testing.TB, srv *Server) *session {
	tb.Helper()
	cfg := shm.Config{SQEntries: 64, CQEntries: 64, ArenaSize: 64 << 10}
	l, _ := cfg.Layout()
	m, err := shm.NewAnonymous(l.RegionSize)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := shm.NewRegion(m.Mem, cfg, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return newSession(srv, 1, &memTransport{bellTransport: newBellTransport(r), m: m, r: r})
}

// FuzzExec feeds arbitrary slot bytes (and arena contents) to laked's
// validation and execution of one submission: it must never panic, and
// every submission must yield exactly one completion carrying its tag.
func FuzzExec(f *testing.F) {
	if err := kernels.Register(); err != nil {
		f.Fatal(err)
	}
	seed := func(e shm.SQE, arena []byte) {
		b := make([]byte, shm.SlotSize)
		shm.EncodeSQE(b, &e)
		f.Add(b, arena)
	}
	seed(shm.SQE{Opcode: shm.OpNop, Tag: 1}, nil)
	seed(shm.SQE{Opcode: shm.OpCtxCreate, Tag: 2}, nil)
	seed(shm.SQE{Opcode: shm.OpMemAlloc, Tag: 3, Args: [6]uint64{1, 4096}}, nil)
	seed(shm.SQE{Opcode: shm.OpModuleLoad, Tag: 4, Args: [6]uint64{1, 0, 12}}, []byte("lake_builtin"))
	seed(shm.SQE{Opcode: shm.OpLaunchKernel, Tag: 5, Args: [6]uint64{1, 1, 0, 72}}, shm.EncodeLaunchDesc(nil, &shm.LaunchDesc{Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}, Params: make([]byte, 32)}))
	seed(shm.SQE{Opcode: shm.OpPredict, Tag: 6, Args: [6]uint64{2, 1, 0, 32, 64, 8}}, make([]byte, 32))
	past := shm.SQE{Opcode: shm.OpPredict, Tag: 8, Args: [6]uint64{2, 1, 0, 32, 64, 8}}
	shm.SetDeadline(&past, 1) // long past (or, wrapped, far ahead)
	seed(past, make([]byte, 32))
	seed(shm.SQE{Opcode: shm.OpMemcpyHtoD, Tag: 7, Args: [6]uint64{1, 0x7000_0000_0000, 0, 1 << 40}}, nil)
	seed(shm.SQE{Opcode: shm.OpModelFetch, Tag: 8, Args: [6]uint64{1, 0, 64 << 10}}, nil)
	seed(shm.SQE{Opcode: shm.OpModelFetch, Tag: 9, Args: [6]uint64{1, 0, 0}}, nil)
	seed(shm.SQE{Opcode: shm.OpModelFetch, Tag: 10, Args: [6]uint64{2, 4096, 100}}, nil)
	srv, err := New(Config{Backend: cpu.New(cpuLimitsForFuzz()), Logger: zerolog.Nop(), MaxWait: time.Microsecond})
	if err != nil {
		f.Fatal(err)
	}
	m, err := NewMLPModel("mlp", DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.RegisterModel(2, m); err != nil {
		f.Fatal(err)
	}
	var lw, lb [2][]int64 // a zero LinnOS model: its image is what model_fetch copies
	for i := range lw {
		in, out := linnos.LayerDims(0, i)
		lw[i], lb[i] = make([]int64, in*out), make([]int64, out)
	}
	lm, err := linnos.NewIntModel(0, lw[:], lb[:])
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.RegisterModel(1, NewLinnOSModel("linnos", lm)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, slot, arena []byte) {
		if len(slot) < shm.SlotSize {
			return
		}
		s := newMemSession(t, srv)
		defer s.teardown()
		copy(s.region.Arena(), arena)
		// A context and an allocation first, so that handles 1 and the
		// first device pointer exist for the fuzzed submission to use.
		s.handle(&shm.SQE{Opcode: shm.OpCtxCreate, Tag: 100})
		s.handle(&shm.SQE{Opcode: shm.OpMemAlloc, Tag: 101, Args: [6]uint64{1, 4096}})
		var e shm.SQE
		shm.DecodeSQE(slot[:shm.SlotSize], &e)
		e.Tag = 0xF00D
		s.handle(&e)
		s.postPending()
		s.runQueued()     // an accepted predict runs on this reader...
		s.inflight.Wait() // ...or on the runner that had the model
		out := make([]shm.CQE, 8)
		n := s.cq.Reap(out)
		if n != 3 {
			t.Fatalf("%d completions for 3 submissions (%s)", n, e.Opcode)
		}
		if out[2].Tag != 0xF00D && out[0].Tag != 0xF00D && out[1].Tag != 0xF00D {
			t.Fatalf("no completion carries the fuzzed tag: %+v", out[:n])
		}
	})
}

func cpuLimitsForFuzz() backend.Limits {
	return backend.Limits{MaxBytes: 16 << 20, MaxThreads: 1 << 16}
}
