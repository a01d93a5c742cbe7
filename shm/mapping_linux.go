//go:build linux

package shm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mapping is a shared mapping of a region file (a memfd, a file on
// /dev/shm, or /dev/lake).
type Mapping struct {
	Mem []byte
	fd  int
}

// CreateMemfd creates an anonymous shared-memory file of size bytes
// (sealed against shrinking, so a client cannot truncate it under laked
// and make its mapping fault) and maps it.
func CreateMemfd(name string, size uint64) (*Mapping, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create %q: %w", name, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: size memfd to %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, RegionSeals); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: seal memfd: %w", err)
	}
	m, err := MapFD(fd, size)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return m, nil
}

// RegionSeals are the seals a region memfd must carry before either side
// maps it: it can neither shrink (which would make the other side's
// mapping fault with SIGBUS) nor grow, and no seal can be added or
// removed any more.
const RegionSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// ErrNotSealedMemfd is returned by MapFD for a descriptor that is not a
// memfd carrying RegionSeals (a regular file, a pipe, a device, an
// unsealed memfd).
var ErrNotSealedMemfd = errors.New("shm: region fd is not a sealed memfd")

// MapFD maps a region memfd of exactly size bytes shared, read-write; on
// success the Mapping owns fd, on error the caller still does. fd comes
// from the other side of a handshake and is untrusted: it must be a
// regular file carrying RegionSeals (so its size is fixed for good: no
// one can truncate it under the mapping), be size bytes long, and size
// must be a region size (0 < size <= MaxRegionSize).
func MapFD(fd int, size uint64) (*Mapping, error) {
	if size == 0 || size > MaxRegionSize() {
		return nil, fmt.Errorf("%w: region size %d: want 1..%d", ErrBadLayout, size, MaxRegionSize())
	}
	got, err := sealedSize(fd)
	if err != nil {
		return nil, err
	}
	if got != size {
		return nil, fmt.Errorf("%w: region file is %d bytes, want %d", ErrBadLayout, got, size)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap region (%d bytes): %w", size, err)
	}
	return &Mapping{Mem: mem, fd: fd}, nil
}

// FDSize returns the size of a sealed region memfd (what a re-attach
// maps), refusing what MapFD refuses and a size no region has.
func FDSize(fd int) (uint64, error) {
	size, err := sealedSize(fd)
	if err != nil {
		return 0, err
	}
	if size < HeaderSize || size > MaxRegionSize() {
		return 0, fmt.Errorf("%w: region file is %d bytes: want %d..%d", ErrBadLayout, size, HeaderSize, MaxRegionSize())
	}
	return size, nil
}

// sealedSize checks that fd is a regular file carrying RegionSeals and
// returns its (now fixed) size.
func sealedSize(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("shm: fstat region fd: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fmt.Errorf("%w: file type %#o", ErrNotSealedMemfd, st.Mode&unix.S_IFMT)
	}
	// Seals first: once SHRINK and GROW are on, the size read next is
	// the size for good.
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: F_GET_SEALS: %v", ErrNotSealedMemfd, err)
	}
	if seals&RegionSeals != RegionSeals {
		return 0, fmt.Errorf("%w: seals %#x, want %#x", ErrNotSealedMemfd, seals, RegionSeals)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("shm: fstat region fd: %w", err)
	}
	if st.Size < 0 {
		return 0, fmt.Errorf("%w: region file size %d", ErrBadLayout, st.Size)
	}
	return uint64(st.Size), nil
}

// MapFile maps an existing region file by path (for example a file on
// /dev/shm shared by a C client), reading its size from the file.
func MapFile(path string) (*Mapping, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: open region %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: stat region %s: %w", path, err)
	}
	if st.Size < HeaderSize {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrBadLayout, path, st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: mmap %s: %w", path, err)
	}
	return &Mapping{Mem: mem, fd: fd}, nil
}

// NewAnonymous maps size bytes of anonymous shared memory (tests, and
// in-process clients).
func NewAnonymous(size uint64) (*Mapping, error) {
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap anonymous %d bytes: %w", size, err)
	}
	return &Mapping{Mem: mem, fd: -1}, nil
}

// FD returns the mapped file's descriptor (-1 for anonymous memory).
func (m *Mapping) FD() int { return m.fd }

// File returns an *os.File for the descriptor, for passing it on; the
// Mapping keeps its own descriptor.
func (m *Mapping) File(name string) (*os.File, error) {
	nfd, err := unix.Dup(m.fd)
	if err != nil {
		return nil, fmt.Errorf("shm: dup region fd: %w", err)
	}
	unix.CloseOnExec(nfd)
	return os.NewFile(uintptr(nfd), name), nil
}

// Discard frees the file's pages (fallocate PUNCH_HOLE over its whole
// length; the size and seals stay): another process still holding the
// fd, or a mapping, then reads zeros and holds no memory. laked discards
// a region whose client is gone, so that a client keeping the fd cannot
// keep memory charged to laked alive.
func (m *Mapping) Discard() error {
	if m.fd < 0 || m.Mem == nil {
		return nil
	}
	if err := unix.Fallocate(m.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, int64(len(m.Mem))); err != nil {
		return fmt.Errorf("shm: discard region pages: %w", err)
	}
	return nil
}

// Close unmaps the memory and closes the descriptor.
func (m *Mapping) Close() error {
	var err error
	if m.Mem != nil {
		err = unix.Munmap(m.Mem)
		m.Mem = nil
	}
	if m.fd >= 0 {
		if cerr := unix.Close(m.fd); err == nil {
			err = cerr
		}
		m.fd = -1
	}
	return err
}
