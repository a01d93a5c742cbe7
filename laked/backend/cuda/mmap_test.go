//go:build cuda

package cuda

import (
	"golang.org/x/sys/unix"
)

// memfdMap maps n bytes of a memfd shared, as laked maps a client's
// region (a sealed memfd): shmem pages, which the driver can page-lock
// (cuMemHostRegister) whatever the file system of the test's temporary
// folder. A writable shared mapping of a regular file on a disk file
// system may be refused a long-term pin by recent kernels.
func memfdMap(n int) ([]byte, error) {
	fd, err := unix.MemfdCreate("lake-test-region", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(n)); err != nil {
		return nil, err
	}
	return unix.Mmap(fd, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func munmap(b []byte) error { return unix.Munmap(b) }
