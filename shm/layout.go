package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic is the first word of every region: the bytes "LAKE".
const Magic uint32 = 0x454B414C

// Protocol version. A reader accepts any minor version of its major.
const (
	VersionMajor uint16 = 1
	VersionMinor uint16 = 1
)

// Fixed sizes of the layout.
const (
	HeaderSize = 4096 // the header page
	SlotSize   = 64   // one submission or completion slot
	PageSize   = 4096 // alignment of every area
	CacheLine  = 64
)

// Header field offsets (PROTOCOL.md, "Header").
const (
	OffMagic        = 0x000 // u32
	OffVersionMajor = 0x004 // u16
	OffVersionMinor = 0x006 // u16
	OffHeaderSize   = 0x008 // u32
	OffFlags        = 0x00C // u32
	OffRegionSize   = 0x010 // u64
	OffSQEntries    = 0x018 // u32
	OffCQEntries    = 0x01C // u32
	OffSlotSize     = 0x020 // u32
	OffClientID     = 0x024 // u32
	OffSQEsOff      = 0x028 // u64
	OffCQEsOff      = 0x030 // u64
	OffArenaOff     = 0x038 // u64
	OffArenaSize    = 0x040 // u64
	OffFeaturesOff  = 0x048 // u64
	OffFeaturesSize = 0x050 // u64
	OffDaemonEpoch  = 0x058 // u32, bumped by laked at every attach
	OffDaemonState  = 0x05C // u32, DaemonState

	// Ring control words, one cache line each so that the two sides
	// never write the same line.
	OffSQTail       = 0x080 // u32, producers (clients) reserve here
	OffSQHead       = 0x0C0 // u32, consumer (laked)
	OffSQWakeSeq    = 0x100 // u32, futex word laked sleeps on
	OffSQNeedWakeup = 0x104 // u32, non-zero while laked may sleep
	OffCQTail       = 0x140 // u32, producer (laked)
	OffCQHead       = 0x180 // u32, consumer (client)
	OffCQWakeSeq    = 0x1C0 // u32, futex word clients sleep on
	OffCQWaiters    = 0x1C4 // u32, number of client sleepers
)

// Header flags.
const (
	// FlagKernelClient marks a region whose client is the kernel module
	// (/dev/lake); its doorbell is the device's poll/ioctl.
	FlagKernelClient uint32 = 1 << 0
	// FlagFeatures marks a region whose features area holds a feature
	// registry (package features).
	FlagFeatures uint32 = 1 << 1
	// knownFlags is the set a reader of this version understands.
	knownFlags = FlagKernelClient | FlagFeatures
)

// DaemonState is the value of the daemon-state header word.
type DaemonState uint32

// Daemon states.
const (
	DaemonDetached DaemonState = 0 // no laked serves the region
	DaemonServing  DaemonState = 1 // laked serves the region
	DaemonDraining DaemonState = 2 // laked is shutting down: new submissions fail
)

// Limits of ring and area sizes that a region may declare.
const (
	MinEntries      = 8
	MaxSQEntries    = 1 << 14
	MaxCQEntries    = 1 << 15
	MaxArenaSize    = 1 << 30
	MaxFeaturesSize = 1 << 30
)

// Config chooses the sizes of a new region.
type Config struct {
	SQEntries    uint32 // power of two, MinEntries..MaxSQEntries
	CQEntries    uint32 // power of two, >= SQEntries, <= MaxCQEntries
	ArenaSize    uint64 // bytes, multiple of PageSize, <= MaxArenaSize
	FeaturesSize uint64 // bytes, multiple of PageSize (0: no area)
	Flags        uint32
}

// DefaultConfig is what a client gets when it asks for nothing.
var DefaultConfig = Config{SQEntries: 256, CQEntries: 512, ArenaSize: 16 << 20}

// Errors returned by layout validation.
var (
	ErrBadMagic   = errors.New("shm: bad magic")
	ErrBadVersion = errors.New("shm: unsupported protocol version")
	ErrBadLayout  = errors.New("shm: invalid region layout")
	ErrBadConfig  = errors.New("shm: invalid region config")
)

// Layout is the decoded, validated geometry of a region.
type Layout struct {
	RegionSize   uint64
	SQEntries    uint32
	CQEntries    uint32
	SQEsOff      uint64
	CQEsOff      uint64
	ArenaOff     uint64
	ArenaSize    uint64
	FeaturesOff  uint64
	FeaturesSize uint64
	Flags        uint32
}

func isPow2(v uint32) bool { return v != 0 && v&(v-1) == 0 }

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// Validate checks a Config and returns a descriptive error naming the
// first bad field.
func (c Config) Validate() error {
	switch {
	case !isPow2(c.SQEntries) || c.SQEntries < MinEntries || c.SQEntries > MaxSQEntries:
		return fmt.Errorf("%w: sq entries %d: want a power of two in [%d, %d]", ErrBadConfig, c.SQEntries, MinEntries, MaxSQEntries)
	case !isPow2(c.CQEntries) || c.CQEntries < c.SQEntries || c.CQEntries > MaxCQEntries:
		return fmt.Errorf("%w: cq entries %d: want a power of two in [sq entries %d, %d]", ErrBadConfig, c.CQEntries, c.SQEntries, MaxCQEntries)
	case c.ArenaSize == 0 || c.ArenaSize%PageSize != 0 || c.ArenaSize > MaxArenaSize:
		return fmt.Errorf("%w: arena size %d: want a non-zero multiple of %d up to %d", ErrBadConfig, c.ArenaSize, PageSize, MaxArenaSize)
	case c.FeaturesSize%PageSize != 0 || c.FeaturesSize > MaxFeaturesSize:
		return fmt.Errorf("%w: features size %d: want a multiple of %d up to %d", ErrBadConfig, c.FeaturesSize, PageSize, MaxFeaturesSize)
	case c.Flags&^knownFlags != 0:
		return fmt.Errorf("%w: unknown flags %#x", ErrBadConfig, c.Flags&^knownFlags)
	}
	return nil
}

// Layout computes the geometry of a region for a valid Config: header
// page, submission slots, completion slots, arena, features area, each
// starting on a page boundary.
func (c Config) Layout() (Layout, error) {
	if err := c.Validate(); err != nil {
		return Layout{}, err
	}
	l := Layout{SQEntries: c.SQEntries, CQEntries: c.CQEntries, ArenaSize: c.ArenaSize, FeaturesSize: c.FeaturesSize, Flags: c.Flags}
	off := uint64(HeaderSize)
	l.SQEsOff = off
	off = alignUp(off+uint64(c.SQEntries)*SlotSize, PageSize)
	l.CQEsOff = off
	off = alignUp(off+uint64(c.CQEntries)*SlotSize, PageSize)
	l.ArenaOff = off
	off += c.ArenaSize
	if c.FeaturesSize > 0 {
		l.FeaturesOff = off
		off += c.FeaturesSize
	}
	l.RegionSize = off
	return l, nil
}

// MaxRegionSize is the size of the largest region a valid Config lays
// out; no region file larger than this is ever mapped.
func MaxRegionSize() uint64 {
	l, _ := Config{SQEntries: MaxSQEntries, CQEntries: MaxCQEntries, ArenaSize: MaxArenaSize, FeaturesSize: MaxFeaturesSize}.Layout()
	return l.RegionSize
}

// WriteHeader initialises the header page of mem for layout l: geometry,
// zeroed ring words, and each submission slot's sequence number set to its
// index (PROTOCOL.md, "Submission ring"). It is called by whoever creates
// the region, before the region is shared.
func WriteHeader(mem []byte, l Layout, clientID uint32) error {
	if uint64(len(mem)) < l.RegionSize {
		return fmt.Errorf("%w: memory is %d bytes, layout needs %d", ErrBadLayout, len(mem), l.RegionSize)
	}
	clear(mem[:HeaderSize])
	le := binary.LittleEndian
	le.PutUint32(mem[OffMagic:], Magic)
	le.PutUint16(mem[OffVersionMajor:], VersionMajor)
	le.PutUint16(mem[OffVersionMinor:], VersionMinor)
	le.PutUint32(mem[OffHeaderSize:], HeaderSize)
	le.PutUint32(mem[OffFlags:], l.Flags)
	le.PutUint64(mem[OffRegionSize:], l.RegionSize)
	le.PutUint32(mem[OffSQEntries:], l.SQEntries)
	le.PutUint32(mem[OffCQEntries:], l.CQEntries)
	le.PutUint32(mem[OffSlotSize:], SlotSize)
	le.PutUint32(mem[OffClientID:], clientID)
	le.PutUint64(mem[OffSQEsOff:], l.SQEsOff)
	le.PutUint64(mem[OffCQEsOff:], l.CQEsOff)
	le.PutUint64(mem[OffArenaOff:], l.ArenaOff)
	le.PutUint64(mem[OffArenaSize:], l.ArenaSize)
	le.PutUint64(mem[OffFeaturesOff:], l.FeaturesOff)
	le.PutUint64(mem[OffFeaturesSize:], l.FeaturesSize)
	for i := uint32(0); i < l.SQEntries; i++ {
		slot := mem[l.SQEsOff+uint64(i)*SlotSize:]
		clear(slot[:SlotSize])
		le.PutUint32(slot[sqeOffSeq:], i)
	}
	clear(mem[l.CQEsOff : l.CQEsOff+uint64(l.CQEntries)*SlotSize])
	return nil
}

// ReadLayout decodes and validates the header of an untrusted region of
// len(mem) bytes. Every area must lie inside mem, be page aligned and not
// overlap another.
func ReadLayout(mem []byte) (Layout, error) {
	if len(mem) < HeaderSize {
		return Layout{}, fmt.Errorf("%w: region is %d bytes, smaller than its header", ErrBadLayout, len(mem))
	}
	le := binary.LittleEndian
	if m := le.Uint32(mem[OffMagic:]); m != Magic {
		return Layout{}, fmt.Errorf("%w: %#x", ErrBadMagic, m)
	}
	if v := le.Uint16(mem[OffVersionMajor:]); v != VersionMajor {
		return Layout{}, fmt.Errorf("%w: major %d, this build speaks %d", ErrBadVersion, v, VersionMajor)
	}
	if hs := le.Uint32(mem[OffHeaderSize:]); hs != HeaderSize {
		return Layout{}, fmt.Errorf("%w: header size %d", ErrBadLayout, hs)
	}
	if ss := le.Uint32(mem[OffSlotSize:]); ss != SlotSize {
		return Layout{}, fmt.Errorf("%w: slot size %d", ErrBadLayout, ss)
	}
	l := Layout{
		RegionSize:   le.Uint64(mem[OffRegionSize:]),
		SQEntries:    le.Uint32(mem[OffSQEntries:]),
		CQEntries:    le.Uint32(mem[OffCQEntries:]),
		SQEsOff:      le.Uint64(mem[OffSQEsOff:]),
		CQEsOff:      le.Uint64(mem[OffCQEsOff:]),
		ArenaOff:     le.Uint64(mem[OffArenaOff:]),
		ArenaSize:    le.Uint64(mem[OffArenaSize:]),
		FeaturesOff:  le.Uint64(mem[OffFeaturesOff:]),
		FeaturesSize: le.Uint64(mem[OffFeaturesSize:]),
		Flags:        le.Uint32(mem[OffFlags:]),
	}
	cfg := Config{SQEntries: l.SQEntries, CQEntries: l.CQEntries, ArenaSize: l.ArenaSize, FeaturesSize: l.FeaturesSize, Flags: l.Flags}
	want, err := cfg.Layout()
	if err != nil {
		return Layout{}, fmt.Errorf("%w: %w", ErrBadLayout, err)
	}
	// The geometry is fully determined by the sizes: any other offsets
	// are a corrupt or foreign header.
	if want != l {
		return Layout{}, fmt.Errorf("%w: offsets do not match sizes (have %+v, want %+v)", ErrBadLayout, l, want)
	}
	if l.RegionSize > uint64(len(mem)) {
		return Layout{}, fmt.Errorf("%w: header says %d bytes, mapping has %d", ErrBadLayout, l.RegionSize, len(mem))
	}
	return l, nil
}
