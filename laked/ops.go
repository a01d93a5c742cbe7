package laked

import (
	"errors"
	"slices"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/shm"
)

// handle validates and runs one copied submission. Synchronous operations
// append their completion to s.pending; an accepted predict completes
// later from its batcher.
func (s *session) handle(e *shm.SQE) {
	st, r0, r1, async := s.exec(e)
	if async {
		return
	}
	s.pending = append(s.pending, shm.CQE{Tag: e.Tag, Status: st, Results: [2]uint64{r0, r1}})
}

// argsZeroFrom reports whether e.Args[i:] are all zero (unused args must
// be, so that a later protocol version can give them meaning).
func argsZeroFrom(e *shm.SQE, i int) bool {
	for ; i < shm.NumArgs; i++ {
		if e.Args[i] != 0 {
			return false
		}
	}
	return true
}

// nargs is the number of arguments each opcode uses.
var nargs = [...]int{
	shm.OpNop: 0, shm.OpInit: 1, shm.OpCtxCreate: 1, shm.OpCtxDestroy: 1,
	shm.OpCtxSynchronize: 1, shm.OpMemAlloc: 2, shm.OpMemFree: 2,
	shm.OpMemcpyHtoD: 4, shm.OpMemcpyDtoH: 4, shm.OpMemcpyHtoDAsync: 5,
	shm.OpMemcpyDtoHAsync: 5, shm.OpModuleLoad: 3, shm.OpModuleUnload: 2,
	shm.OpModuleGetFunction: 4, shm.OpLaunchKernel: 4, shm.OpStreamCreate: 1,
	shm.OpStreamDestroy: 2, shm.OpStreamSynchronize: 2, shm.OpPredict: 6,
	shm.OpModelInfo: 1, shm.OpModelFetch: 3,
}

func (s *session) exec(e *shm.SQE) (st shm.Status, r0, r1 uint64, async bool) {
	if !e.Opcode.Valid() {
		return shm.StatusBadOpcode, 0, 0, false
	}
	if (e.Opcode != shm.OpPredict && (e.Flags != 0 || e.Pad != 0)) || !argsZeroFrom(e, nargs[e.Opcode]) {
		return shm.StatusInvalidValue, 0, 0, false
	}
	a := &e.Args
	switch e.Opcode {
	case shm.OpNop:
		return shm.StatusOK, 0, 0, false
	case shm.OpInit:
		if a[0] != 0 {
			return shm.StatusInvalidValue, 0, 0, false
		}
		return shm.StatusOK, uint64(shm.VersionMajor)<<16 | uint64(shm.VersionMinor), 0, false
	case shm.OpModelInfo:
		sm := s.srv.models.lookup(uint32(a[0]))
		if sm == nil || a[0] > 0xffffffff {
			return shm.StatusNotFound, 0, 0, false
		}
		return shm.StatusOK, uint64(sm.info.InputBytes) | uint64(sm.info.OutputBytes)<<32, sm.current.Load().version, false
	case shm.OpPredict:
		st := s.acceptPredict(e)
		return st, 0, 0, st == shm.StatusOK
	case shm.OpModelFetch:
		st, r0, r1 := s.modelFetch(e)
		return st, r0, r1, false
	}

	// Everything else is a device operation.
	b := s.srv.cfg.Backend
	if b == nil {
		return shm.StatusNotSupported, 0, 0, false
	}
	if e.Opcode == shm.OpCtxCreate {
		if a[0] != 0 {
			return shm.StatusInvalidValue, 0, 0, false
		}
		if len(s.ctxs) >= maxContextsPerSession {
			return shm.StatusOutOfMemory, 0, 0, false
		}
		var c backend.Context
		var err error
		if tb, ok := b.(backend.TrustedBackend); ok && s.trusted {
			c, err = tb.NewTrustedContext()
		} else {
			c, err = b.NewContext()
		}
		if err != nil {
			return statusOf(err), 0, 0, false
		}
		s.nextCtx++
		s.ctxMu.Lock()
		s.ctxs[s.nextCtx] = c
		s.ctxMu.Unlock()
		s.nctx.Store(int32(len(s.ctxs)))
		return shm.StatusOK, s.nextCtx, 0, false
	}
	c, ok := s.ctxs[a[0]]
	if !ok {
		return shm.StatusInvalidHandle, 0, 0, false
	}
	switch e.Opcode {
	case shm.OpCtxDestroy:
		s.ctxMu.Lock()
		delete(s.ctxs, a[0])
		s.ctxMu.Unlock()
		s.nctx.Store(int32(len(s.ctxs)))
		return statusOf(c.Destroy()), 0, 0, false
	case shm.OpCtxSynchronize:
		return statusOf(c.Synchronize()), 0, 0, false
	case shm.OpMemAlloc:
		if a[1] > s.srv.limits.SessionDeviceBytes-min(s.deviceBytes(), s.srv.limits.SessionDeviceBytes) {
			return shm.StatusOutOfMemory, 0, 0, false // limits.session_device_bytes
		}
		p, err := c.MemAlloc(a[1])
		return statusOf(err), uint64(p), 0, false
	case shm.OpMemFree:
		return statusOf(c.MemFree(backend.DevPtr(a[1]))), 0, 0, false
	case shm.OpMemcpyHtoD, shm.OpMemcpyHtoDAsync:
		src, err := s.region.ArenaRange(a[2], a[3])
		if err != nil {
			return shm.StatusOutOfBounds, 0, 0, false
		}
		if e.Opcode == shm.OpMemcpyHtoD {
			return statusOf(c.MemcpyHtoD(backend.DevPtr(a[1]), src)), 0, 0, false
		}
		return statusOf(c.MemcpyHtoDAsync(backend.DevPtr(a[1]), src, backend.Handle(a[4]))), 0, 0, false
	case shm.OpMemcpyDtoH, shm.OpMemcpyDtoHAsync:
		dst, err := s.region.ArenaRange(a[1], a[3])
		if err != nil {
			return shm.StatusOutOfBounds, 0, 0, false
		}
		if e.Opcode == shm.OpMemcpyDtoH {
			return statusOf(c.MemcpyDtoH(dst, backend.DevPtr(a[2]))), 0, 0, false
		}
		return statusOf(c.MemcpyDtoHAsync(dst, backend.DevPtr(a[2]), backend.Handle(a[4]))), 0, 0, false
	case shm.OpModuleLoad:
		img, err := s.region.ArenaRange(a[1], a[2])
		if err != nil {
			return shm.StatusOutOfBounds, 0, 0, false
		}
		m, err := c.ModuleLoad(append([]byte(nil), img...)) // copy before use
		return statusOf(err), uint64(m), 0, false
	case shm.OpModuleUnload:
		return statusOf(c.ModuleUnload(backend.Handle(a[1]))), 0, 0, false
	case shm.OpModuleGetFunction:
		if a[3] == 0 || a[3] > maxNameLen {
			return shm.StatusInvalidValue, 0, 0, false
		}
		name, err := s.region.ArenaRange(a[2], a[3])
		if err != nil {
			return shm.StatusOutOfBounds, 0, 0, false
		}
		f, err := c.ModuleGetFunction(backend.Handle(a[1]), string(name)) // string() copies
		return statusOf(err), uint64(f), 0, false
	case shm.OpLaunchKernel:
		if a[3] < shm.LaunchDescHeader || a[3] > shm.LaunchDescHeader+shm.MaxLaunchParams {
			return shm.StatusInvalidValue, 0, 0, false
		}
		raw, err := s.region.ArenaRange(a[2], a[3])
		if err != nil {
			return shm.StatusOutOfBounds, 0, 0, false
		}
		desc := append([]byte(nil), raw...) // copy before validating
		var d shm.LaunchDesc
		if err := shm.DecodeLaunchDesc(desc, &d); err != nil {
			return shm.StatusInvalidValue, 0, 0, false
		}
		grid := backend.Dim3{X: d.Grid[0], Y: d.Grid[1], Z: d.Grid[2]}
		block := backend.Dim3{X: d.Block[0], Y: d.Block[1], Z: d.Block[2]}
		return statusOf(c.LaunchKernel(backend.Handle(a[1]), grid, block, d.SharedMem, backend.Handle(d.Stream), d.Params)), 0, 0, false
	case shm.OpStreamCreate:
		h, err := c.StreamCreate()
		return statusOf(err), uint64(h), 0, false
	case shm.OpStreamDestroy:
		return statusOf(c.StreamDestroy(backend.Handle(a[1]))), 0, 0, false
	case shm.OpStreamSynchronize:
		return statusOf(c.StreamSynchronize(backend.Handle(a[1]))), 0, 0, false
	}
	return shm.StatusBadOpcode, 0, 0, false
}

// acceptPredict validates a predict submission, copies its inputs and
// queues it on the model's batcher.
func (s *session) acceptPredict(e *shm.SQE) shm.Status {
	a := &e.Args
	var deadline time.Time
	start := time.Now()
	if dl, ok := shm.DeadlineOf(e); ok {
		left := shm.DeadlineLeft(dl, shm.MonotonicNow())
		if left <= 0 {
			s.srv.stats.deadlineMissed.Add(1)
			return shm.StatusDeadline
		}
		deadline = start.Add(left)
	} else if e.Flags != 0 || e.Pad != 0 {
		return shm.StatusInvalidValue
	}
	if a[0] > 0xffffffff {
		return shm.StatusNotFound
	}
	sm := s.srv.models.lookup(uint32(a[0]))
	if sm == nil {
		return shm.StatusNotFound
	}
	n := a[1]
	if n == 0 || n > maxPredictItems {
		return shm.StatusInvalidValue
	}
	if a[3] != n*uint64(sm.info.InputBytes) || a[5] != n*uint64(sm.info.OutputBytes) {
		return shm.StatusInvalidValue
	}
	in, err := s.region.ArenaRange(a[2], a[3])
	if err != nil {
		return shm.StatusOutOfBounds
	}
	if _, err := s.region.ArenaRange(a[4], a[5]); err != nil {
		return shm.StatusOutOfBounds
	}
	// Admission: the session's and laked's in-flight and queued-bytes
	// budgets are taken before laked copies anything.
	cost := a[3] + a[5]
	if !s.admit(cost) {
		return shm.StatusBusy
	}
	r := reqPool.Get().(*predictReq)
	*r = predictReq{sess: s, tag: e.Tag, n: int(n), inOff: a[2], outOff: a[4], outLen: a[5], start: start, deadline: deadline, cost: cost}
	var p *[]byte
	if !s.leaveInArena(sm, a) {
		p = getBuf(len(in))
		copy(*p, in) // copy before use: the client may rewrite its arena
		r.in, r.inp = *p, p
	}
	s.inflight.Add(1)
	if st := sm.b.enqueue(r); st != shm.StatusOK {
		s.inflight.Done()
		s.unadmit(cost)
		if p != nil {
			bufPool.Put(p)
		}
		putReq(r)
		return st
	}
	if !slices.Contains(s.toRun, sm.b) {
		s.toRun = append(s.toRun, sm.b)
	}
	return shm.StatusOK
}

// leaveInArena reports whether a predict's inputs (a: its args) stay in
// the client's arena until its batch runs instead of being copied now:
// when the model's GPU path copies runs (GPURunsModel), the GPU backend
// registered this client's region (a GPU batch then copies them by DMA;
// a CPU batch copies them into laked's buffer when it runs), and the
// input and output ranges do not overlap (an in-place predict is copied
// now, so a piece's outputs never overwrite inputs not yet read).
func (s *session) leaveInArena(sm *servedModel, a *[shm.NumArgs]uint64) bool {
	if !s.dma || !s.srv.gpuAvailable() {
		return false
	}
	if _, ok := sm.current.Load().m.(GPURunsModel); !ok {
		return false
	}
	// Both ranges were checked against the arena: no overflow.
	return a[2]+a[3] <= a[4] || a[4]+a[5] <= a[2]
}

// modelFetch copies a model's portable integer image into the client's
// arena range [a1, a1+a2). The range is checked before the size, so a
// size query (a2 = 0) answers "buffer too small" with the bytes needed.
func (s *session) modelFetch(e *shm.SQE) (st shm.Status, r0, r1 uint64) {
	a := &e.Args
	if a[0] > 0xffffffff {
		return shm.StatusNotFound, 0, 0
	}
	sm := s.srv.models.lookup(uint32(a[0]))
	if sm == nil {
		return shm.StatusNotFound, 0, 0
	}
	dst, err := s.region.ArenaRange(a[1], a[2])
	if err != nil {
		return shm.StatusOutOfBounds, 0, 0
	}
	v := sm.current.Load()
	_, img, err := modelImage(v)
	if err != nil {
		if !errors.Is(err, ErrNoImage) {
			s.srv.log.Warn().Uint32("model", sm.id).Err(err).Msg("model_fetch: image")
		}
		return shm.StatusNotSupported, 0, v.version
	}
	if uint64(len(img)) > a[2] {
		return shm.StatusBufferTooSmall, uint64(len(img)), v.version
	}
	copy(dst, img)
	return shm.StatusOK, uint64(len(img)), v.version
}
