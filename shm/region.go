package shm

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Region is a mapped region with a validated layout. It gives typed access
// to the header words and the areas; it owns no memory (see Mapping).
type Region struct {
	mem    []byte
	layout Layout
}

// ErrUnaligned is returned for memory that is not 64-byte aligned.
var ErrUnaligned = errors.New("shm: region memory is not 64-byte aligned")

// NewRegion initialises a fresh region in mem (which must be at least
// the layout's size and 64-byte aligned; an mmap is page aligned).
func NewRegion(mem []byte, cfg Config, clientID uint32) (*Region, error) {
	l, err := cfg.Layout()
	if err != nil {
		return nil, err
	}
	if err := checkAligned(mem); err != nil {
		return nil, err
	}
	if err := WriteHeader(mem, l, clientID); err != nil {
		return nil, err
	}
	return &Region{mem: mem[:l.RegionSize], layout: l}, nil
}

// OpenRegion validates the header of an existing, untrusted region.
func OpenRegion(mem []byte) (*Region, error) {
	if err := checkAligned(mem); err != nil {
		return nil, err
	}
	l, err := ReadLayout(mem)
	if err != nil {
		return nil, err
	}
	return &Region{mem: mem[:l.RegionSize], layout: l}, nil
}

func checkAligned(mem []byte) error {
	if len(mem) == 0 {
		return fmt.Errorf("%w: empty", ErrBadLayout)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%CacheLine != 0 {
		return ErrUnaligned
	}
	return nil
}

// Layout returns the region's validated geometry.
func (r *Region) Layout() Layout { return r.layout }

// Bytes returns the whole region.
func (r *Region) Bytes() []byte { return r.mem }

// Arena returns the data arena.
func (r *Region) Arena() []byte {
	return r.mem[r.layout.ArenaOff : r.layout.ArenaOff+r.layout.ArenaSize : r.layout.ArenaOff+r.layout.ArenaSize]
}

// Features returns the features area (nil when the region has none).
func (r *Region) Features() []byte {
	if r.layout.FeaturesSize == 0 {
		return nil
	}
	end := r.layout.FeaturesOff + r.layout.FeaturesSize
	return r.mem[r.layout.FeaturesOff:end:end]
}

// ClientID returns the id laked gave this region's client.
func (r *Region) ClientID() uint32 { return r.word(OffClientID).Load() }

// SetClientID records the client id laked serves the region under (laked
// only: a re-attaching laked gives the region its own id).
func (r *Region) SetClientID(id uint32) { r.word(OffClientID).Store(id) }

// word returns the header word at off as an atomic.
func (r *Region) word(off uintptr) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&r.mem[off]))
}

// DaemonState reads the daemon-state word.
func (r *Region) DaemonState() DaemonState { return DaemonState(r.word(OffDaemonState).Load()) }

// SetDaemonState writes the daemon-state word (laked only).
func (r *Region) SetDaemonState(s DaemonState) { r.word(OffDaemonState).Store(uint32(s)) }

// DaemonEpoch reads the attach counter laked bumps on every attach.
func (r *Region) DaemonEpoch() uint32 { return r.word(OffDaemonEpoch).Load() }

// BumpDaemonEpoch increments the attach counter (laked only).
func (r *Region) BumpDaemonEpoch() uint32 { return r.word(OffDaemonEpoch).Add(1) }

// ArenaRange checks that [off, off+n) lies inside the arena and returns
// it. It is the one bounds check every arena access goes through.
func (r *Region) ArenaRange(off, n uint64) ([]byte, error) {
	size := r.layout.ArenaSize
	if off > size || n > size-off {
		return nil, fmt.Errorf("arena range [%d, +%d) outside arena of %d bytes", off, n, size)
	}
	a := r.layout.ArenaOff
	return r.mem[a+off : a+off+n : a+off+n], nil
}

// SQ returns the submission ring of the region.
func (r *Region) SQ() *SQ {
	return &SQ{
		slots: r.mem[r.layout.SQEsOff : r.layout.SQEsOff+uint64(r.layout.SQEntries)*SlotSize],
		mask:  r.layout.SQEntries - 1,
		tail:  r.word(OffSQTail),
		head:  r.word(OffSQHead),
		Bell:  Bell{Seq: r.word(OffSQWakeSeq), Waiters: r.word(OffSQNeedWakeup)},
	}
}

// CQ returns the completion ring of the region.
func (r *Region) CQ() *CQ {
	return &CQ{
		slots: r.mem[r.layout.CQEsOff : r.layout.CQEsOff+uint64(r.layout.CQEntries)*SlotSize],
		mask:  r.layout.CQEntries - 1,
		tail:  r.word(OffCQTail),
		head:  r.word(OffCQHead),
		Bell:  Bell{Seq: r.word(OffCQWakeSeq), Waiters: r.word(OffCQWaiters)},
	}
}
