package laked

import (
	"errors"
	"fmt"
	"sync"

	"github.com/lakeos/lake/liteflow/snapshot"
)

// Image kinds: what the bytes model_fetch writes are.
const (
	// ImageLinnOS is a linnos weight file of the integer kind (the LINNOSW
	// format of linnos/format.go, with its CRC).
	ImageLinnOS = "linnos"
	// ImageLiteFlow is a LiteFlow snapshot in the liteflow/snapshot codec.
	ImageLiteFlow = "liteflow"
)

// MaxImageBytes bounds an image laked hands out through model_fetch (the
// snapshot codec's own bound; a LinnOS +2 integer file is ~1.2 MB).
const MaxImageBytes = snapshot.MaxSize

// ErrNoImage means a model has no portable integer image (model_fetch
// answers "not supported").
var ErrNoImage = errors.New("laked: model has no integer image")

// ImageExporter is implemented by models that have a portable integer
// image, which model_fetch copies to a client (the kernel builds its own
// copy of the model from it, after validating it). Image must be safe for
// concurrent use and cheap after the first call for an unchanged model;
// callers never modify the returned bytes and the model must not either.
// The version model_fetch reports is the registry's (it grows with every
// ReplaceModel or TouchModel), not the image's.
type ImageExporter interface {
	Image() (kind string, data []byte, err error)
}

// modelImage returns the image of the model version v: its kind, bytes
// and an error wrapping ErrNoImage when there is none.
func modelImage(v *modelVersion) (string, []byte, error) {
	ex, ok := v.m.(ImageExporter)
	if !ok {
		return "", nil, ErrNoImage
	}
	kind, data, err := ex.Image()
	if err != nil {
		return "", nil, err
	}
	if len(data) == 0 || len(data) > MaxImageBytes {
		return "", nil, fmt.Errorf("laked: model image of %d bytes outside (0, %d]", len(data), MaxImageBytes)
	}
	return kind, data, nil
}

// ModelImage returns the image of the model served under id and the
// version it belongs to.
func (s *Server) ModelImage(id uint32) (kind string, data []byte, version uint64, err error) {
	sm := s.models.lookup(id)
	if sm == nil {
		return "", nil, 0, fmt.Errorf("%w: %d", ErrModelNotFound, id)
	}
	v := sm.current.Load()
	kind, data, err = modelImage(v)
	return kind, data, v.version, err
}

// TouchModel bumps the version of the model served under id without
// replacing it, for models that change inside (a LiteFlow router whose
// adapter installed a new snapshot): clients polling model_info see the
// new version and fetch the new image. It returns the new version.
func (s *Server) TouchModel(id uint32) (uint64, error) {
	sm := s.models.lookup(id)
	if sm == nil {
		return 0, fmt.Errorf("%w: %d", ErrModelNotFound, id)
	}
	for {
		old := sm.current.Load()
		nv := &modelVersion{m: old.m, version: old.version + 1}
		if sm.current.CompareAndSwap(old, nv) {
			return nv.version, nil
		}
	}
}

// lazyImage encodes an immutable model's image once.
type lazyImage struct {
	once sync.Once
	data []byte
	err  error
}

func (l *lazyImage) get(encode func() ([]byte, error)) ([]byte, error) {
	l.once.Do(func() { l.data, l.err = encode() })
	return l.data, l.err
}

// Served returns the model served under id and its version.
func (s *Server) Served(id uint32) (Model, uint64, bool) {
	sm := s.models.lookup(id)
	if sm == nil {
		return nil, 0, false
	}
	v := sm.current.Load()
	return v.m, v.version, true
}
