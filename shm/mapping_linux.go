//go:build linux

package shm

import (
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
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
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

// MapFD maps size bytes of fd shared, read-write. The Mapping takes
// ownership of fd. It refuses a file smaller than size, which would fault
// on access, and a memfd that is not sealed against shrinking.
func MapFD(fd int, size uint64) (*Mapping, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: fstat region fd: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		if uint64(st.Size) < size {
			return nil, fmt.Errorf("%w: region file is %d bytes, need %d", ErrBadLayout, st.Size, size)
		}
		if seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err == nil && seals&unix.F_SEAL_SHRINK == 0 {
			return nil, fmt.Errorf("%w: memfd region is not sealed against shrinking", ErrBadLayout)
		}
	}
	if size == 0 || size > 1<<40 {
		return nil, fmt.Errorf("%w: region size %d", ErrBadLayout, size)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap region (%d bytes): %w", size, err)
	}
	return &Mapping{Mem: mem, fd: fd}, nil
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
