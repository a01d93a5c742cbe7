package laked

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Model is a model laked serves through the predict operation. Inputs and
// outputs are opaque fixed-size records: Predict reads n records of
// InputBytes each from in and writes n records of OutputBytes each to
// out. Implementations must be safe for concurrent use and must not keep
// in or out after returning.
type Model interface {
	Info() ModelInfo
	Predict(in, out []byte, n int) error
}

// ModelInfo describes a served model.
type ModelInfo struct {
	Name        string
	InputBytes  int // bytes per input record
	OutputBytes int // bytes per output record
}

// GPUModel is implemented by models that can also run a batch on a GPU
// backend. When the policy picks the GPU and the model (or the backend)
// cannot, the batch runs on the CPU and the fallback is counted.
type GPUModel interface {
	Model
	PredictGPU(in, out []byte, n int) error
}

// Errors of the model registry.
var (
	ErrModelExists   = errors.New("laked: model id already registered")
	ErrModelNotFound = errors.New("laked: no such model")
	ErrModelShape    = errors.New("laked: model record sizes do not match")
)

// MaxRecordBytes bounds a model's input or output record.
const MaxRecordBytes = 1 << 16

// servedModel is one registry entry: the current model behind an atomic
// pointer (replacement never blocks a query) and its batcher.
type servedModel struct {
	id      uint32
	info    ModelInfo
	current atomic.Pointer[modelVersion]
	b       *batcher
}

type modelVersion struct {
	m       Model
	version uint64
}

// ModelStatus is what the registry reports about one model.
type ModelStatus struct {
	ID      uint32
	Info    ModelInfo
	Version uint64
}

// models is the registry: id -> entry, copy-on-write so that lookups on
// the hot path take no lock.
type models struct {
	mu  sync.Mutex
	tab atomic.Pointer[map[uint32]*servedModel]
}

func (r *models) lookup(id uint32) *servedModel {
	t := r.tab.Load()
	if t == nil {
		return nil
	}
	return (*t)[id]
}

func (r *models) list() []ModelStatus {
	t := r.tab.Load()
	if t == nil {
		return nil
	}
	out := make([]ModelStatus, 0, len(*t))
	for id, sm := range *t {
		v := sm.current.Load()
		out = append(out, ModelStatus{ID: id, Info: sm.info, Version: v.version})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func validateInfo(info ModelInfo) error {
	if info.InputBytes <= 0 || info.InputBytes > MaxRecordBytes || info.OutputBytes <= 0 || info.OutputBytes > MaxRecordBytes {
		return fmt.Errorf("laked: model %q: record sizes %d/%d out of (0, %d]", info.Name, info.InputBytes, info.OutputBytes, MaxRecordBytes)
	}
	if info.Name == "" {
		return errors.New("laked: model without a name")
	}
	return nil
}

// RegisterModel serves m under id, starting at version 1.
func (s *Server) RegisterModel(id uint32, m Model) error {
	info := m.Info()
	if err := validateInfo(info); err != nil {
		return err
	}
	r := &s.models
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.tab.Load()
	if old != nil {
		if _, ok := (*old)[id]; ok {
			return fmt.Errorf("%w: %d", ErrModelExists, id)
		}
	}
	sm := &servedModel{id: id, info: info}
	sm.current.Store(&modelVersion{m: m, version: 1})
	sm.b = newBatcher(s, sm)
	next := make(map[uint32]*servedModel, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[id] = sm
	r.tab.Store(&next)
	go sm.b.run()
	s.log.Info().Uint32("model", id).Str("name", info.Name).Int("in", info.InputBytes).Int("out", info.OutputBytes).Msg("model loaded")
	return nil
}

// ReplaceModel atomically replaces the model served under id; queries in
// flight finish on the old model, later batches use the new one. The
// record sizes must stay the same. It returns the new version.
func (s *Server) ReplaceModel(id uint32, m Model) (uint64, error) {
	sm := s.models.lookup(id)
	if sm == nil {
		return 0, fmt.Errorf("%w: %d", ErrModelNotFound, id)
	}
	info := m.Info()
	if info.InputBytes != sm.info.InputBytes || info.OutputBytes != sm.info.OutputBytes {
		return 0, fmt.Errorf("%w: model %d takes %d/%d bytes, replacement %d/%d", ErrModelShape, id, sm.info.InputBytes, sm.info.OutputBytes, info.InputBytes, info.OutputBytes)
	}
	for {
		old := sm.current.Load()
		nv := &modelVersion{m: m, version: old.version + 1}
		if sm.current.CompareAndSwap(old, nv) {
			s.log.Info().Uint32("model", id).Uint64("version", nv.version).Msg("model replaced")
			return nv.version, nil
		}
	}
}

// Models lists the served models.
func (s *Server) Models() []ModelStatus { return s.models.list() }

// UnregisterModel stops serving id. Requests already queued for it are
// answered with "not found"; later ones never reach it.
func (s *Server) UnregisterModel(id uint32) error {
	r := &s.models
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.tab.Load()
	if old == nil {
		return fmt.Errorf("%w: %d", ErrModelNotFound, id)
	}
	sm, ok := (*old)[id]
	if !ok {
		return fmt.Errorf("%w: %d", ErrModelNotFound, id)
	}
	next := make(map[uint32]*servedModel, len(*old))
	for k, v := range *old {
		if k != id {
			next[k] = v
		}
	}
	r.tab.Store(&next)
	sm.b.stop()
	s.log.Info().Uint32("model", id).Str("name", sm.info.Name).Msg("model unloaded")
	return nil
}
